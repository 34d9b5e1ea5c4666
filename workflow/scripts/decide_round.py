"""One round of the sequential design (modgap.verdict.sequential.run_round)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.io import write_json
from modgap.logs import log_to_file
from modgap.verdict.sequential import Design, load_round_runs, read_round, run_round

with log_to_file(snakemake.log[0]):
    previous = read_round(snakemake.input.previous) if "previous" in snakemake.input.keys() else None
    record = run_round(
        int(snakemake.wildcards.round),
        load_round_runs(snakemake.input.metrics),
        [tuple(c) for c in snakemake.params.comparisons],
        Design.of(snakemake.params.design),
        snakemake.params.claims,
        snakemake.params.references,
        previous,
    )
    write_json(snakemake.output[0], record)
