"""Check the paper's claims on the main table and show the verdicts (modgap.claims)."""

from modgap.claims import claims_report
from modgap.io import write_text
from modgap.logs import log_to_file

with log_to_file(snakemake.log[0]):
    report = claims_report(snakemake.input.table, snakemake.params.thresholds, snakemake.params.modality_counts)
    write_text(snakemake.output[0], report)
    print(report)  # the reader's first stop: show it on the terminal as well
