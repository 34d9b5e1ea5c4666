"""The sequential verdict's text and table (modgap.verdict.sequential)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.verdict.sequential import Design, read_round, write_report

with log_to_file(snakemake.log[0]):
    write_report(
        read_round(snakemake.input.last),
        Design.of(snakemake.params.design),
        snakemake.params.claims,
        snakemake.params.labels,
        text=snakemake.output.text,
        table=snakemake.output.table,
    )
