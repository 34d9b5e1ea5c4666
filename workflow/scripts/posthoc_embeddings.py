"""The training-free post-hoc row: shift a trained method's embeddings (modgap.evaluate.write_shifted)."""

from modgap.evaluate import write_shifted
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    write_shifted(snakemake.input.source, snakemake.output[0], snakemake.params.strength)
