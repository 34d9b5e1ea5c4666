"""The regime map: every comparison of a study's budget ladders placed against how far apart the
baseline keeps the modalities. One row per (experiment, method, budget): the knob's setting, CLIP's and
the method's gaps, the paired differences with their confidence intervals, the per-claim verdicts, and
where the ladder converged (modgap.claims.doubling_test). Its figure and the files of the workflow's
regime map: modgap.figures.regime."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modgap.claims import RETRIEVAL_COLUMNS, check_claims
from modgap.labels import method_label

DIFFERENCES = {"v_measure": "ΔV-Measure", "knn_acc": "ΔkNN", **{k: f"Δ{v}" for k, v in RETRIEVAL_COLUMNS.items()}}


def regime_table(
    runs: pd.DataFrame, claims: Mapping, ladders: Mapping, knobs: Mapping[str, object], modality_counts: Mapping
) -> pd.DataFrame:
    """The map's rows; ``knobs``: experiment -> its setting of the regime knob."""
    _, found = check_claims(runs, claims, modality_counts, ladders)
    rows = []
    for ladder in found:
        for rung in ladder.rungs:
            row = {"experiment": ladder.experiment, "knob": knobs.get(ladder.experiment),
                   "modalities": modality_counts.get(rung.evaluation), "method": ladder.method, "budget": rung.budget,
                   "converged_at": ladder.converged_at, "baseline_gap": rung.gaps[1], "method_gap": rung.gaps[0]}  # fmt: skip
            for key in DIFFERENCES:
                if key in rung.intervals:
                    interval = rung.intervals[key]
                    row |= {key: interval.estimate, f"{key}_low": interval.low, f"{key}_high": interval.high}
            row |= {f"claim{i + 1}": state for i, state in enumerate(rung.states)}
            rows.append(row)
    return pd.DataFrame(rows)


def regime_markdown(table: pd.DataFrame, knob: str, baseline: str, labels: Mapping[str, str] | None = None) -> str:
    if table.empty:
        return "No experiment has a budget ladder with both the baseline and a compared method: no map.\n"
    columns = ["modalities", "method", "epochs", f"{method_label(baseline, labels)} gap", "method gap", "ΔV-Measure",
               "ΔkNN", "ΔTV R@1", "claims 1 / 2 / 3"]  # fmt: skip
    lines = [f"| {knob} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in table.itertuples():
        cells = [f"{getattr(row, k):+.1f} [{getattr(row, k + '_low'):+.1f}, {getattr(row, k + '_high'):+.1f}]"
                 for k in ("v_measure", "knn_acc", "tv_r1")]  # fmt: skip
        converged = "" if row.converged_at is None or pd.isna(row.converged_at) else (
            " (converged)" if row.budget == row.converged_at else "")  # fmt: skip
        lines.append(f"| {row.knob} | {row.modalities} | {method_label(row.method, labels)} | {row.budget}{converged} | "
                     f"{row.baseline_gap:.3f} | {row.method_gap:.3f} | " + " | ".join(cells)
                     + f" | {row.claim1} / {row.claim2} / {row.claim3} |")  # fmt: skip
    return "\n".join(lines) + "\n"
