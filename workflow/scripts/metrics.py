"""Metrics of one run's embeddings (modgap.evaluate.evaluate_run)."""

from modgap.data.format import read_manifest
from modgap.evaluate import evaluate_run
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    evaluate_run(
        snakemake.input.embeddings,
        snakemake.output[0],
        retrieval=snakemake.params.retrieval,
        options=snakemake.params.options,
        n_classes=len(read_manifest(snakemake.input.data)["class_names"]),
        identity={
            "experiment": snakemake.wildcards.experiment,
            "method": snakemake.wildcards.method,
            "seed": int(snakemake.wildcards.seed),
        },
    )
