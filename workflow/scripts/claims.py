"""Check the paper's claims on the per-seed runs and show the verdicts (modgap.verdict.report)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.verdict.report import claims_report
from modgap.data.format import data_notes
from modgap.io import write_text
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    params = snakemake.params
    report = claims_report(
        snakemake.input.runs,
        params.claims,
        params.expected,
        params.ladders,
        params.references,
        params.provenance,
        params.labels,
        [note for data in snakemake.input.data for note in data_notes(data)],
    )
    write_text(snakemake.output[0], report)
