"""Train one seed of one (experiment, method) and dump its test-split embeddings (modgap.training.trainer.train_run)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.runtime import pin_cpu_kernels

pin_cpu_kernels(snakemake.params.run["train"]["portable_cpu_kernels"])  # before torch loads, below

from modgap.data import check_batch_size  # noqa: E402
from modgap.logs import log_to_file  # noqa: E402
from modgap.runtime import claim_gpu, configure_threads  # noqa: E402
from modgap.training.trainer import match_temperature, train_run  # noqa: E402

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    output = snakemake.output
    batch_size = (snakemake.params.run["train"]["batch_size"], snakemake.params.batch_size_key)
    check_batch_size(snakemake.input.data, batch_size, snakemake.params.run["dataset"])
    run = {**snakemake.params.run, "train": {**snakemake.params.run["train"], **snakemake.params.neutral}}
    if "matched" in snakemake.input.keys():  # a temperature control
        run = match_temperature(run, snakemake.input.matched)
    train_run(run, snakemake.input.data, output.model, output.log, int(snakemake.wildcards.seed), output.embeddings)
