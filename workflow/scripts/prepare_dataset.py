"""Prepare one data set into results/data/{dataset} (modgap.data.prepare_dataset)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.data import prepare_dataset
from modgap.logs import log_to_file
from modgap.runtime import configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    prepare_dataset(
        snakemake.wildcards.dataset, snakemake.params.dataset, snakemake.output[0], snakemake.input.downloads
    )
