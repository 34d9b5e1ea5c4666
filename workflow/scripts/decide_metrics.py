"""Metrics of one seed of one method for the sequential design (modgap.metrics.per_run.evaluate_method)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.metrics.per_run import evaluate_method
from modgap.runtime import configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    evaluate_method(
        [(int(snakemake.wildcards.seed), snakemake.input.embeddings)],
        snakemake.output[0],
        experiment=snakemake.wildcards.experiment,
        method=snakemake.wildcards.method,
        retrieval=snakemake.params.retrieval,
        options=snakemake.params.options,
        epochs=snakemake.params.epochs,
    )
