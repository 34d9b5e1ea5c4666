"""The regime map: table and figure of every ladder's comparisons against CLIP's gap (modgap.figures.regime)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.figures.regime import make

with log_to_file(snakemake.log[0]):
    make(
        snakemake.input.runs,
        snakemake.params.claims,
        snakemake.params.ladders,
        snakemake.params.references,
        snakemake.params.knobs,
        snakemake.params.modality_counts,
        "image patch size",
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params.labels,
    )
