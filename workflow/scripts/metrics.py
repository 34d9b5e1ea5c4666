"""Metrics, convergence and collapse of every seed of one method (modgap.evaluate.evaluate_method)."""

from modgap.evaluate import evaluate_method
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    evaluate_method(
        list(zip(snakemake.params.seeds, snakemake.input.embeddings, snakemake.input.logs)),
        snakemake.output[0],
        experiment=snakemake.wildcards.experiment,
        method=snakemake.wildcards.method,
        retrieval=snakemake.params.retrieval,
        options=snakemake.params.options,
        shift=snakemake.params.shift,
    )
