"""Aggregate every run's metrics into the study's tables (modgap.verdict.tables.write_tables)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.verdict.tables import write_tables

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    write_tables(
        snakemake.input.metrics,
        dict(snakemake.output.items()),
        params.references,
        params.seeds,
        params.definitions,
        params.provenance,
        params.labels,
    )
