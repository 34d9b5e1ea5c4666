"""The regime map: table and figure of every ladder's comparisons against CLIP's gap (modgap.figures.regime)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures.regime import make
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    make(
        snakemake.input.verdict,
        snakemake.params.baseline,
        snakemake.params.knobs,
        snakemake.params.modality_counts,
        "image patch size",
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params.labels,
    )
