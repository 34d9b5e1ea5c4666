"""The trained dose-response table (modgap.verdict.tables.write_dose_response)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.verdict.tables import write_dose_response

with log_to_file(snakemake.log[0]):
    write_dose_response(
        snakemake.input.metrics,
        snakemake.params.strengths,
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.params.seeds,
    )
