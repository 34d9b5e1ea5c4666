"""One pretrained model's embeddings of a prepared data set, as this project's dump (modgap.embeddings.from_models)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

import logging

from modgap.embeddings.from_models import write_model_dump
from modgap.logs import log_to_file
from modgap.runtime import claim_gpu, configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    _, done = write_model_dump(
        snakemake.params.model,
        snakemake.input.data,
        snakemake.output[0],
        device_key=snakemake.params.device_key,
        **snakemake.params.options,
    )
    logging.getLogger("modgap.embeddings.from_models").info("%s: %s", snakemake.params.model, done)
