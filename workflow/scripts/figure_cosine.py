"""Figure 3: cosine histograms of true and random pairs (modgap.figures.cosine)."""

from modgap.figures import cosine
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    cosine.make(dict(zip(snakemake.params.methods, snakemake.input.embeddings)), snakemake.output.pdf,
                snakemake.output.png)  # fmt: skip
