"""Figure 2: latent space projections (modgap.figures.latent)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.data.format import read_manifest
from modgap.embeddings.dumps import load_method_dump
from modgap.figures import latent
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    dumps = {m: load_method_dump(p, s) for m, p, s in zip(params.methods, snakemake.input.embeddings, params.shifts)}
    latent.make(
        dumps,
        read_manifest(snakemake.input.data)["class_names"]
        if snakemake.input.data
        else next(iter(dumps.values()))["class_names"],
        snakemake.output.pdf,
        snakemake.output.png,
        dimensions=int(snakemake.wildcards.dimensions),
        experiment=snakemake.wildcards.experiment,
        seed=params.seed,
        labels=params.labels,
    )
