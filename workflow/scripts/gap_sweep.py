"""Figure 1's data: post-hoc shift sweep over every seed (modgap.metrics.per_run.gap_sweep)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

import pandas as pd

from modgap.embeddings.dumps import load_embeddings
from modgap.metrics.per_run import gap_sweep
from modgap.io import write_text
from modgap.logs import log_to_file
from modgap.runtime import configure_threads

with log_to_file(snakemake.log[0]):
    configure_threads(snakemake.threads)
    rows = gap_sweep(
        [(seed, load_embeddings(path)) for seed, path in zip(snakemake.params.seeds, snakemake.input.embeddings)],
        snakemake.params.strengths,
        snakemake.params.retrieval,
        snakemake.params.options,
    )
    write_text(snakemake.output[0], pd.DataFrame(rows).to_csv(index=False))
