"""The regime calibration's table and the rule's choice (modgap.verdict.calibration)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.verdict.calibration import make
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    make(
        snakemake.input.runs,
        params.ladders,
        params.settings,
        params.learnable,
        params.knobs,
        params.modality_counts,
        params.references,
        params.margins,
        params.rule,
        params.alpha,
        params.labels,
        snakemake.output.csv,
        snakemake.output.md,
    )
