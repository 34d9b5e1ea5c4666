"""Figure 3: cosine histograms of true and random pairs (modgap.figures.cosine)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.embeddings.dumps import load_method_dump
from modgap.figures import cosine
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    dumps = {m: load_method_dump(p, s) for m, p, s in zip(params.methods, snakemake.input.embeddings, params.shifts)}
    cosine.make(
        dumps,
        snakemake.output.pdf,
        snakemake.output.png,
        experiment=snakemake.wildcards.experiment,
        seed=params.seed,
        labels=params.labels,
    )
