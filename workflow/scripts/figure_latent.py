"""Figure 2: latent space projections (modgap.figures.latent)."""

from modgap.data.format import read_manifest
from modgap.figures import latent
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    latent.make(
        dict(zip(snakemake.params.methods, snakemake.input.embeddings)),
        read_manifest(snakemake.input.data)["class_names"],
        snakemake.output.pdf,
        snakemake.output.png,
        dimensions=int(snakemake.wildcards.dimensions),
    )
