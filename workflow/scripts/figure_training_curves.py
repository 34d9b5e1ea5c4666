"""Figure 4: training curves (modgap.figures.curves)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures import curves
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    curves.make(
        [(method, seed, path) for (method, seed), path in zip(snakemake.params.runs, snakemake.input.logs)],
        snakemake.output.pdf,
        snakemake.output.png,
        experiment=snakemake.wildcards.experiment,
        labels=snakemake.params.labels,
    )
