"""The factorial's table, readings and text (modgap.verdict.factorial.write_factorial)."""

import _checkout  # noqa: F401 (first: this checkout's modgap)

from modgap.logs import log_to_file
from modgap.verdict.factorial import analyse, write_factorial

with log_to_file(snakemake.log[0]):
    files = iter(snakemake.input.metrics)
    cells = {
        experiment: {tuple(cell): next(files) for cell in snakemake.params.cells}
        for experiment in snakemake.params.experiments
    }
    baseline, method = snakemake.params.baseline, snakemake.params.method
    table, found = analyse(
        cells, snakemake.params.seeds, baseline, method, snakemake.params.references, snakemake.params.claims
    )
    write_factorial(
        table,
        found,
        baseline,
        method,
        snakemake.params.claims["confidence"],
        table_csv=snakemake.output.csv,
        readings_csv=snakemake.output.readings,
        text=snakemake.output.text,
    )
