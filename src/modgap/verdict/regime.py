"""The regime map's table as Markdown: every comparison of a study's budget ladders placed against how far
apart the baseline keeps the modalities, one row per (experiment, method, budget), from the verdict table
(modgap.verdict.verdict_table.with_settings: the knob's setting, the gaps, the paired differences with their
intervals, the per-claim states, where the ladder converged). Its figure and the workflow's files:
modgap.figures.regime."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modgap.study.display import method_label
from modgap.verdict.decision import RETRIEVAL_COLUMNS

DIFFERENCES = {"v_measure": "ΔV-Measure", "knn_acc": "ΔkNN", **{k: f"Δ{v}" for k, v in RETRIEVAL_COLUMNS.items()}}


def regime_markdown(table: pd.DataFrame, knob: str, baseline: str, labels: Mapping[str, str] | None = None) -> str:
    if table.empty:
        return "No experiment has a budget ladder with both the baseline and a compared method: no map.\n"
    columns = [
        "modalities",
        "method",
        "epochs",
        f"{method_label(baseline, labels)} gap",
        "method gap",
        "ΔV-Measure",
        "ΔkNN",
        "ΔTV R@1",
        "claims 1 / 2 / 3",
    ]
    lines = [f"| {knob} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in table.itertuples():
        cells = [
            f"{getattr(row, k):+.1f} [{getattr(row, k + '_low'):+.1f}, {getattr(row, k + '_high'):+.1f}]"
            for k in ("v_measure", "knn_acc", "tv_r1")
        ]
        converged = "" if pd.isna(row.converged_since) or row.budget < row.converged_since else " (converged)"
        lines.append(
            f"| {row.knob} | {row.modalities} | {method_label(row.method, labels)} | {row.budget}{converged} | "
            f"{row.baseline_gap:.3f} | {row.method_gap:.3f} | "
            + " | ".join(cells)
            + f" | {row.claim1} / {row.claim2} / {row.claim3} |"
        )
    return "\n".join(lines) + "\n"
