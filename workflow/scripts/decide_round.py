"""One round of the sequential design (modgap.verdict.sequential.run_round)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.io import read_json, write_json
from modgap.logs import log_to_file
from modgap.verdict.sequential import Design, run_round
from modgap.verdict.tables import load_runs

with log_to_file(snakemake.log[0]):
    previous = read_json(snakemake.input.previous) if "previous" in snakemake.input.keys() else None
    record = run_round(
        int(snakemake.wildcards.round),
        load_runs(snakemake.input.metrics),
        [tuple(c) for c in snakemake.params.comparisons],
        Design.of(snakemake.params.design),
        snakemake.params.claims,
        snakemake.params.references,
        previous,
    )
    write_json(snakemake.output[0], record)
