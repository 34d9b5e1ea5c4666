"""Fetch one original file of a data set, resumable and verified (modgap.data.download)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from pathlib import Path

from modgap.data.download import download
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    remote, mirror = snakemake.params.remote
    download(remote, Path(snakemake.output[0]).parent, mirror=mirror, show_progress=True)
