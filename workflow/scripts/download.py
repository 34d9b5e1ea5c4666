"""Fetch one original file of a data set, resumable and verified (modgap.data.download)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from pathlib import Path

from modgap.data.download import RemoteFile, download
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    remote = RemoteFile(**snakemake.params.remote)
    download(remote, Path(snakemake.output[0]).parent, mirror=snakemake.params.mirror, show_progress=True)
