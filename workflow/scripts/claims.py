"""Check the paper's claims on the per-seed runs once: the verdict as text (claims.txt) and as data (a table
the figures read) (modgap.verdict.report, modgap.verdict.verdict_table)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.data.format import data_notes
from modgap.io import write_text
from modgap.logs import log_to_file
from modgap.verdict.report import checked_runs, report_text
from modgap.verdict.verdict_table import verdict_table

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    families = checked_runs(snakemake.input.runs, params.claims, params.expected, params.ladders, params.references)
    notes = [note for data in snakemake.input.data for note in data_notes(data)]
    write_text(snakemake.output.table, verdict_table(families, params.claims["confidence"]).to_csv(index=False))
    write_text(snakemake.output.text, report_text(families, params.claims, params.provenance, params.labels, notes))
