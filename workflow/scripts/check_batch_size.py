"""Whether the largest training batch on one data set fits its prepared training split (modgap.data.check_batch_size)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.data import check_batch_size
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    check_batch_size(snakemake.input.data, snakemake.params.batch_size, snakemake.wildcards.dataset)
