"""The factorial: what the gap terms do to clustering at a fixed temperature, what the temperature does within
each loss, and what centring does to each run (docs/verdict.md, "The factorial").

Its cells are the baseline's loss (InfoNCE alone) and the method's (with the gap terms), each trained with the
temperature fixed from the first step at every value of a grid, on the same seeds, every run measured as
trained and after centring (modgap.metrics.per_run). Three seed-paired readings per experiment:

- the gap terms at each temperature: method minus baseline; "no effect" is an equivalence question, so it is
  tested as one (TOST within +-margin, the claims' margin of that metric), beside the one-sided tests of a
  gain and of a loss;
- the temperature within each loss: each seed's least-squares slope of the metric on log2(temperature), its
  mean tested against 0 (points per doubling of the temperature);
- centring: centred minus as trained, per cell (the gap's cost of that cell's runs).

Every test of one experiment's readings is one family for Holm's step-down adjustment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modgap.io import write_text
from modgap.verdict import paper
from modgap.verdict.stats import PairedSample, stepdown_levels
from modgap.verdict.tables import read_metrics

# Per-cell columns of the table: the gap as the centroid distance and as the true pairs' alignment, the
# claims' group-wise scores, retrieval, and the same after centring.
CELL_COLUMNS = {
    "gap": "centroid gap",
    "cos_true_pairs": "true-pair cosine",
    "v_measure": "V-Measure",
    "knn_acc": "kNN",
    "r1_mean": "R@1",
    "centred_gap": "centred: centroid gap",
    "centred_cos_true_pairs": "centred: true-pair cosine",
    "centred_v_measure": "centred: V-Measure",
    "centred_knn_acc": "centred: kNN",
}
# The scores whose effects are tested, with the claims' margin each is held to (modgap.verdict.paper).
TESTED = {"v_measure": "V-Measure", "knn_acc": "kNN"}
CENTRING = {"v_measure": "gap_cost_v_measure", "knn_acc": "gap_cost_knn"}


def factorial_runs(cells: Mapping[tuple[str, float], str | Path], seeds: Sequence[int]) -> pd.DataFrame:
    """One row per run: ``cells`` maps (arm, temperature) to that cell's metrics file of one experiment."""
    rows = []
    for (arm, temperature), path in cells.items():
        for record in read_metrics(path, seeds):
            rows.append({**record, "arm": arm, "temperature": float(temperature)})  # the grid's value, not float32's
    return pd.DataFrame(rows)


def cell_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over seeds of every cell column, per experiment, arm and temperature."""
    grouped = runs.groupby(["experiment", "arm", "temperature"], sort=False)
    table = grouped.size().rename("seeds").to_frame()
    for column in CELL_COLUMNS:
        table[column] = grouped[column].mean()
        table[f"{column}_std"] = grouped[column].std(ddof=1)
    return table.reset_index()


def _paired(runs: pd.DataFrame, arm: str, temperature: float, column: str) -> pd.Series:
    cell = runs[(runs["arm"] == arm) & (runs["temperature"] == temperature)]
    return cell.set_index("seed")[column]


def _slopes(runs: pd.DataFrame, arm: str, column: str) -> PairedSample:
    """Each seed's least-squares slope of ``column`` on log2(temperature) over the arm's cells."""
    cells = runs[runs["arm"] == arm].pivot(index="seed", columns="temperature", values=column).dropna()
    x = np.log2(cells.columns.to_numpy(dtype=float))
    centred = x - x.mean()
    return PairedSample.of(
        (cells.to_numpy() - cells.to_numpy().mean(axis=1, keepdims=True)) @ centred / (centred @ centred)
    )


def readings(
    runs: pd.DataFrame, baseline: str, method: str, margins: Mapping[str, float], confidence: float
) -> pd.DataFrame:
    """Every tested reading of one experiment's runs: its estimate, interval and p-values, with Holm's
    adjustment over all of them (column ``holm``: the hypotheses it rejects)."""
    level, rows = 2.0 * confidence - 1.0, []
    temperatures = sorted(runs["temperature"].unique())
    for column, label in TESTED.items():
        margin = margins[column]
        for temperature in temperatures:
            a, b = _paired(runs, method, temperature, column), _paired(runs, baseline, temperature, column)
            seeds = a.index.intersection(b.index)
            sample = PairedSample.difference(a[seeds], b[seeds])
            rows.append(
                {
                    "reading": "gap terms",
                    "score": label,
                    "cell": f"τ {temperature:g}",
                    "sample": sample,
                    "margin": margin,
                    "hypotheses": {
                        "higher": sample.p_above(0.0),
                        "lower": sample.p_below(0.0),
                        "equivalent": sample.p_within(-margin, margin),
                    },
                }
            )
        for arm in (baseline, method):
            sample = _slopes(runs, arm, column)
            rows.append(
                {
                    "reading": "temperature (per doubling)",
                    "score": label,
                    "cell": arm,
                    "sample": sample,
                    "margin": margin,
                    "hypotheses": {"higher": sample.p_above(0.0), "lower": sample.p_below(0.0)},
                }
            )
        for arm in (baseline, method):
            for temperature in temperatures:
                sample = PairedSample.of(_paired(runs, arm, temperature, CENTRING[column]).to_numpy())
                rows.append(
                    {
                        "reading": "centring",
                        "score": label,
                        "cell": f"{arm} τ {temperature:g}",
                        "sample": sample,
                        "margin": margin,
                        "hypotheses": {"higher": sample.p_above(0.0), "lower": sample.p_below(0.0)},
                    }
                )
    tested = [(i, name, p) for i, row in enumerate(rows) for name, p in row["hypotheses"].items() if not np.isnan(p)]
    # plain Holm: a reading's nulls of a gain and of a loss are both true where the effect is exactly 0, so
    # no hypothesis shares a part with another (Shaffer's constraint does not apply)
    levels = stepdown_levels([p for _, _, p in tested], range(len(tested)), 1.0 - confidence)
    rejected: dict[int, list[str]] = {}
    for (index, name, _), rejected_at in zip(tested, levels):
        if rejected_at is not None:
            rejected.setdefault(index, []).append(name)
    table = []
    for index, row in enumerate(rows):
        interval = row["sample"].interval(level)
        table.append(
            {
                "reading": row["reading"],
                "score": row["score"],
                "cell": row["cell"],
                "seeds": row["sample"].n,
                "estimate": interval.estimate,
                "low": interval.low,
                "high": interval.high,
                "margin": row["margin"] if row["reading"] == "gap terms" else np.nan,
                **{f"p_{name}": p for name, p in row["hypotheses"].items()},
                "holm": ", ".join(rejected.get(index, [])) or "nothing",
            }
        )
    return pd.DataFrame(table)


def analyse(
    cells: Mapping[str, Mapping[tuple[str, float], str | Path]],
    seeds: Sequence[int],
    baseline: str,
    method: str,
    references: Mapping[str, str | None],
    claims: Mapping,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The factorial of every experiment (``cells``: experiment -> (arm, temperature) -> metrics file): its
    cell table and its readings."""
    tables, tested = [], []
    for experiment, files in cells.items():
        runs = factorial_runs(files, seeds)
        runs["experiment"] = experiment
        tables.append(cell_table(runs))
        margins = paper.margins(references.get(experiment), claims["margin_fraction"])
        found = readings(runs, baseline, method, margins, claims["confidence"])
        found.insert(0, "experiment", experiment)
        tested.append(found)
    return pd.concat(tables, ignore_index=True), pd.concat(tested, ignore_index=True)


def _cell(value: float, distance: bool) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if distance else f"{value:.1f}"


def _shown(row: Mapping) -> str:
    if not np.isfinite([row["estimate"], row["low"], row["high"]]).all():
        return "n/a (a run could not measure it: its metrics notes say why)"
    return f"{row['estimate']:+.1f} [{row['low']:+.1f}, {row['high']:+.1f}]"


def report_text(table: pd.DataFrame, found: pd.DataFrame, baseline: str, method: str, confidence: float) -> str:
    """The factorial as text: per experiment, its cells, then every reading with its interval and what it shows
    after Holm's adjustment (higher than 0, lower, or equivalent to 0 within the margin; or nothing)."""
    level = round(100 * (2 * confidence - 1))
    lines = [
        f"The factorial: {baseline}'s loss and {method}'s at fixed temperatures; {level} % intervals over seeds; "
        f"Holm over each experiment's tests at {100 * (1 - confidence):g} %.",
        "",
    ]
    for experiment, block in table.groupby("experiment", sort=False):
        lines += [f"== {experiment}", "", "arm / τ | seeds | " + " | ".join(CELL_COLUMNS.values())]
        for _, row in block.iterrows():
            cells = " | ".join(_cell(row[c], "gap" in c or "cos" in c) for c in CELL_COLUMNS)
            lines.append(f"{row['arm']} τ {row['temperature']:g} | {int(row['seeds'])} | {cells}")
        lines.append("")
        for _, row in found[found["experiment"] == experiment].iterrows():
            margin = f" (margin ±{row['margin']:.2g})" if not np.isnan(row["margin"]) else ""
            lines.append(
                f"{row['reading']}: {row['score']} {row['cell']}: {_shown(row)}{margin}; shown after Holm: {row['holm']}"
            )
        lines.append("")
    return "\n".join(lines)


def write_factorial(
    table: pd.DataFrame,
    found: pd.DataFrame,
    baseline: str,
    method: str,
    confidence: float,
    *,
    table_csv: str | Path,
    readings_csv: str | Path,
    text: str | Path,
) -> None:
    """The factorial's cell table and readings (``analyse``) and their text, each written atomically."""
    write_text(table_csv, table.to_csv(index=False))
    write_text(readings_csv, found.to_csv(index=False))
    write_text(text, report_text(table, found, baseline, method, confidence))
