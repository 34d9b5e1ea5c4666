"""The budget figure: the comparisons along their budget ladders (modgap.figures.budget)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures import budget
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    budget.make(
        snakemake.input.verdict,
        snakemake.params.baseline,
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params.labels,
    )
