"""Train every seed of one (experiment, method) and dump their test-split embeddings (modgap.train.train_seeds)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.runtime import claim_gpu, configure_threads
from modgap.train import train_seeds

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    train_seeds(
        snakemake.params.run,
        snakemake.input.data,
        snakemake.params.seeds,
        snakemake.output.models,
        snakemake.output.logs,
        snakemake.output.embeddings,
    )
