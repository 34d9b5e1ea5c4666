"""Figure 1: gap sweep (modgap.figures.gap_sweep)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures import gap_sweep
from modgap.logs import log_to_file
from modgap.study.display import method_label

with log_to_file(snakemake.log[0]):
    gap_sweep.make(
        snakemake.input.sweep,
        snakemake.output.pdf,
        snakemake.output.png,
        title=f"{snakemake.wildcards.experiment}: post-hoc shift of {method_label(snakemake.params.source, snakemake.params.labels)}",
    )
