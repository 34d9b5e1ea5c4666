"""Train one seed of one (experiment, method) and dump its test-split embeddings (modgap.train.train_run)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.runtime import claim_gpu, configure_threads
from modgap.train import train_run

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    output = snakemake.output
    train_run(
        snakemake.params.run,
        snakemake.input.data,
        output.model,
        output.log,
        int(snakemake.wildcards.seed),
        output.embeddings,
    )
