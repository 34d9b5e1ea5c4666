"""Check the paper's claims on the per-seed runs once: the verdict as text (claims.txt) and as data (a table
the figures read) (modgap.verdict.report, modgap.verdict.verdict_table); then the same runs read as the first round
of the sequential plan (modgap.verdict.sequential.first_round_text)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.data.format import data_notes
from modgap.io import write_text
from modgap.logs import log_to_file
from modgap.verdict.evidence import read_runs
from modgap.verdict.report import checked_runs, report_text
from modgap.verdict.sequential import Design, first_round_text
from modgap.verdict.verdict_table import verdict_table

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    runs = read_runs(snakemake.input.runs)
    families = checked_runs(
        snakemake.input.runs, params.claims, params.expected, params.ladders, params.references, runs
    )
    notes = [note for data in snakemake.input.data for note in data_notes(data)]
    write_text(snakemake.output.table, verdict_table(families, params.claims["confidence"]).to_csv(index=False))
    plan = first_round_text(
        runs,
        params.finals,
        [tuple(c) for c in params.comparisons],
        Design.of(params.design),
        params.claims,
        params.references,
        params.labels,
    )
    verdict = report_text(families, params.claims, params.provenance, params.labels, notes)
    write_text(snakemake.output.text, verdict + "\n" + plan if plan else verdict)
