"""One file of embeddings made elsewhere, checked, as this project's embedding dump (modgap.embeddings.external_files.import_dump)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

import logging

from modgap.embeddings.external_files import array_limit, import_dump
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    for note in import_dump(
        snakemake.input.dump, snakemake.output[0], params.modalities, array_limit(params.max_array_gib)
    ):
        logging.getLogger("modgap.embeddings.external_files").warning(note)
