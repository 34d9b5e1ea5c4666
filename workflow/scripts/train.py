"""Train one (experiment, method, seed) run (modgap.train.train_run)."""

from modgap.logs import log_to_file
from modgap.runtime import claim_gpu, configure_threads
from modgap.train import train_run

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    train_run(
        snakemake.params.run,
        snakemake.input.data,
        snakemake.output.model,
        snakemake.output.log_csv,
        seed=int(snakemake.wildcards.seed),
    )
