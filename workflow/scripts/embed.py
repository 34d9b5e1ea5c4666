"""Dump the test-split embeddings of one trained run (modgap.embed.dump_embeddings)."""

from modgap.embed import dump_embeddings
from modgap.logs import log_to_file
from modgap.runtime import claim_gpu, configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    gpu_lock = claim_gpu()  # held until the job ends
    dump_embeddings(snakemake.input.model, snakemake.input.data, snakemake.output[0])
