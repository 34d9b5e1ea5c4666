"""The trained dose-response beside the post-hoc sweep (modgap.figures.dose_response)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.figures import dose_response
from modgap.logs import log_to_file
from modgap.study.display import method_label

with log_to_file(snakemake.log[0]):
    dose_response.make(
        snakemake.input.table,
        snakemake.input.sweep,
        snakemake.output.pdf,
        snakemake.output.png,
        title=f"{snakemake.wildcards.experiment}: trained gap terms x λ vs post-hoc shift of "
        f"{method_label(snakemake.params.source, snakemake.params.labels)}",
    )
