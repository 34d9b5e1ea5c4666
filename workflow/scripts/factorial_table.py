"""The factorial's table, readings and text (modgap.verdict.factorial.write_factorial)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.verdict.factorial import write_factorial

with log_to_file(snakemake.log[0]):
    files = iter(snakemake.input.metrics)
    cells = {
        experiment: {tuple(cell): next(files) for cell in snakemake.params.cells}
        for experiment in snakemake.params.experiments
    }
    write_factorial(
        cells,
        snakemake.params.seeds,
        snakemake.params.baseline,
        snakemake.params.method,
        snakemake.params.references,
        snakemake.params.claims,
        table_csv=snakemake.output.csv,
        readings_csv=snakemake.output.readings,
        text=snakemake.output.text,
    )
