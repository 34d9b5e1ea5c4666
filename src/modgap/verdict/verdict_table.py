"""The verdict as data: every comparison of the claims check, at every budget of its ladder, one row each,
with the paired estimates, their intervals and margins, each part's p-values, the per-claim states, the
family-wise (Holm) states of the deciding budget and the ladder's convergence. The claims rule computes the
check once and writes this table beside claims.txt; the budget figure and the regime map read it, so no
figure re-runs the check and none can disagree with the text.

Every part is one column of the runs table (claim 1: each paired R@1 column; claim 2: ``v_measure`` and
``knn_acc``; claim 3: ``gap``), and its columns here are named after it: ``<column>`` (the estimate, a ratio
for the gap), ``<column>_low``, ``<column>_high``, ``<column>_margin``, ``p_hold_<column>``,
``p_fail_<column>`` and ``state_<column>``; a check's states are ``claim<n>`` (nominal) and ``claim<n>_holm``.
No runs column is named ``claim<n>``, so the names stay unique."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from modgap.errors import corrupt
from modgap.verdict.decision import Comparison, Family

# The columns a table of no comparison still names (a study of the baseline alone).
KEY_COLUMNS = ["experiment", "evaluation", "family", "method", "baseline", "budget", "deciding"]


def _row(family: str, headline: Comparison, compared: Comparison, budget, evaluation: str, confidence: float) -> dict:
    deciding = compared is headline
    convergence = headline.convergence
    row = {
        "experiment": headline.experiment,
        "evaluation": evaluation,
        "family": family,
        "method": headline.method,
        "baseline": headline.baseline,
        "budget": budget,
        "deciding": deciding,
        "n_seeds": len(compared.seeds),
        "converged_since": convergence.since if convergence else None,
        "convergence": convergence.status if convergence else None,
        "baseline_gap": compared.gaps[1],
        "method_gap": compared.gaps[0],
        "baseline_temperature": compared.temperatures[1],
        "method_temperature": compared.temperatures[0],
    }
    for part in compared.parts():
        key, interval = part.column, part.interval(confidence)
        row |= {key: interval.estimate, f"{key}_low": interval.low, f"{key}_high": interval.high}
        row |= {f"{key}_margin": part.margin, f"p_hold_{key}": part.p_hold, f"p_fail_{key}": part.p_fail}
        row[f"state_{key}"] = part.state if deciding else None
    for check in compared.checks:
        row[f"claim{check.claim.number}"] = check.per_claim_state
        row[f"claim{check.claim.number}_holm"] = check.state if deciding else None
    return row


def verdict_table(families: Sequence[Family], confidence: float) -> pd.DataFrame:
    """One row per comparison and budget (``deciding``: the budget its Holm states are read at; a comparison
    without a ladder has one row, its budget empty)."""
    rows = []
    for family in families:
        for comparison in family.comparisons:
            rungs = [(r.budget, r.evaluation, r.comparison) for r in comparison.ladder]
            for budget, evaluation, compared in rungs or [(None, comparison.experiment, comparison)]:
                rows.append(_row(family.name, comparison, compared, budget, evaluation, confidence))
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=KEY_COLUMNS)


# What every laddered row holds, which the budget figure and the regime map draw.
DRAWN_COLUMNS = [
    "evaluation",
    "baseline_gap",
    "method_gap",
    *(f"{k}{s}" for k in ("v_measure", "knn_acc") for s in ("", "_low", "_high", "_margin")),
]


def read_verdict_table(path: str | Path, needed: Sequence[str] = DRAWN_COLUMNS) -> pd.DataFrame:
    """The table as written, every float read back to the bit. A table cut short (its last line unfinished),
    without a column its reader ``needed`` or with a row that lacks one of its names is refused as damaged."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
        table = pd.read_csv(path, float_precision="round_trip")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise corrupt(path, "verdict table", error) from None
    if not text.endswith(b"\n"):
        raise corrupt(path, "verdict table", "its last line is unfinished: cut short")
    missing = [c for c in (*KEY_COLUMNS, *(needed if len(table) else ())) if c not in table]
    if missing:
        raise corrupt(path, "verdict table", f"no column {', '.join(missing)}")
    unnamed = table[["experiment", "family", "method", "baseline", "deciding"]].isna().any(axis=1)
    if unnamed.any():
        raise corrupt(path, "verdict table", f"row {int(unnamed.idxmax()) + 2} lacks its experiment or methods")
    return table


def laddered(table: pd.DataFrame, family: str | None = None) -> pd.DataFrame:
    """The rows of comparisons along a budget ladder (of one ``family``)."""
    rows = table[table["budget"].notna()] if "budget" in table else table
    return rows if family is None else rows[rows["family"] == family]


def with_settings(table: pd.DataFrame, knobs: Mapping[str, object], modality_counts: Mapping) -> pd.DataFrame:
    """The laddered rows with each experiment's setting of the regime knob and its modality count."""
    rows = laddered(table).copy()
    rows.insert(1, "knob", rows["experiment"].map(lambda e: knobs.get(e)))
    rows.insert(2, "modalities", rows["evaluation"].map(lambda e: modality_counts.get(e)))
    return rows
