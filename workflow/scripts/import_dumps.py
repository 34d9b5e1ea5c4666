"""One file of embeddings made elsewhere, checked, as this project's embedding dump (modgap.external.import_dump)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

import logging

from modgap.external import import_dump
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    for note in import_dump(snakemake.input.dump, snakemake.output[0], snakemake.params.modalities):
        logging.getLogger("modgap.external").warning(note)
