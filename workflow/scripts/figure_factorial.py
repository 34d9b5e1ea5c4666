"""The factorial's figure (modgap.figures.factorial)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures import factorial
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    factorial.make(snakemake.input.table, snakemake.output.pdf, snakemake.output.png, snakemake.params.labels)
