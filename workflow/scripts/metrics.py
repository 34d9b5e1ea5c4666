"""Metrics and collapse of every seed of one method (modgap.metrics.per_run.evaluate_method)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.metrics.per_run import evaluate_method
from modgap.logs import log_to_file
from modgap.runtime import configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    evaluate_method(
        list(zip(snakemake.params.seeds, snakemake.input.embeddings)),
        snakemake.output[0],
        experiment=snakemake.wildcards.experiment,
        method=snakemake.wildcards.method,
        retrieval=snakemake.params.retrieval,
        options=snakemake.params.options,
        shift=snakemake.params.shift,
        budget=snakemake.params.budget,
        epochs=snakemake.params.epochs,
    )
