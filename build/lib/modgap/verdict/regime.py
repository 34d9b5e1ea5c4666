"""The regime map: every comparison of a study's budget ladders placed against how far apart the
baseline keeps the modalities. One row per (experiment, method, budget): the knob's setting, CLIP's and
the method's gaps and temperatures, the paired differences with their intervals and margins, the per-claim
states, and where the ladder converged (modgap.verdict.decision.convergence). Its figure and the files of the workflow's
regime map: modgap.figures.regime."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modgap.study.display import method_label
from modgap.verdict.decision import RETRIEVAL_COLUMNS, check_claims

DIFFERENCES = {"v_measure": "ΔV-Measure", "knn_acc": "ΔkNN", **{k: f"Δ{v}" for k, v in RETRIEVAL_COLUMNS.items()}}


def regime_table(
    runs: pd.DataFrame,
    claims: Mapping,
    ladders: Mapping,
    references: Mapping[str, str | None],
    knobs: Mapping[str, object],
    modality_counts: Mapping,
) -> pd.DataFrame:
    """The map's rows, one per budget of every laddered comparison; ``knobs``: experiment -> its setting of the
    regime knob."""
    rows = []
    for family in check_claims(runs, claims, ladders, references):
        for comparison in family.comparisons:
            for rung in comparison.ladder:
                compared = rung.comparison
                row = {
                    "experiment": comparison.experiment,
                    "knob": knobs.get(comparison.experiment),
                    "modalities": modality_counts.get(rung.evaluation),
                    "family": family.name,
                    "method": comparison.method,
                    "baseline": comparison.baseline,
                    "budget": rung.budget,
                    "converged_since": comparison.convergence.since,
                    "convergence": comparison.convergence.status,
                    "baseline_gap": compared.gaps[1],
                    "method_gap": compared.gaps[0],
                    "baseline_temperature": compared.temperatures[1],
                    "method_temperature": compared.temperatures[0],
                }
                for part in compared.parts():
                    for key, interval in part.intervals(claims["confidence"]).items():
                        row |= {
                            key: interval.estimate,
                            f"{key}_low": interval.low,
                            f"{key}_high": interval.high,
                            f"{key}_margin": part.margin,
                        }
                row |= {f"claim{check.claim.number}": check.per_claim_state for check in compared.checks}
                rows.append(row)
    # without a comparison (a study of the baseline alone) the table still names what its rows would hold
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["experiment", "family", "method", "budget"])


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
