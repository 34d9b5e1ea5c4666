"""The claims check: do the paper's three claims (SPEC section 1) hold on our numbers?

For every experiment with both methods, ``method`` (ours) is compared with
``baseline`` (CLIP with a learnable temperature) on the aggregated table:

1. retrieval barely changes: every R@1 (TV, TA) moves by at most ``retrieval_tolerance`` points;
2. group-wise metrics improve strongly: V-Measure gains at least ``group_gain`` points and kNN
   accuracy does not drop;
3. the gap closes: ours' gap is below ``gap_ratio`` times the baseline's (reported per
   modality count, since the claim is for 2 and for more than 2 modalities).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Verdict:
    experiment: str
    claim: str
    holds: bool
    evidence: str


def _value(row: pd.Series, key: str) -> str:
    digits = 3 if key == "gap" else 1
    return f"{row[key]:.{digits}f} ± {row[f'{key}_std']:.{digits}f}"


def check_claims(table: pd.DataFrame, thresholds: Mapping, modality_counts: Mapping[str, int]) -> list[Verdict]:
    baseline, method = thresholds["baseline"], thresholds["method"]
    verdicts = []
    for experiment, block in table.groupby("experiment", sort=False):
        rows = block.set_index("method")
        if baseline not in rows.index or method not in rows.index:
            continue
        ours, base = rows.loc[method], rows.loc[baseline]

        recalls = [k for k in ("tv_r1", "ta_r1") if k in rows and pd.notna(ours[k])]
        changes = {k: ours[k] - base[k] for k in recalls}
        verdicts.append(
            Verdict(
                experiment,
                "1. closing the gap barely changes retrieval (R@1)",
                bool(recalls) and all(abs(c) <= thresholds["retrieval_tolerance"] for c in changes.values()),
                "; ".join(
                    f"{k.upper().replace('_R1', ' R@1')} {_value(ours, k)} vs {_value(base, k)} ({changes[k]:+.1f})"
                    for k in recalls
                )
                + f" [tolerance ±{thresholds['retrieval_tolerance']:g}]",
            )
        )
        v_gain = ours["v_measure"] - base["v_measure"]
        knn_gain = ours["knn_acc"] - base["knn_acc"]
        verdicts.append(
            Verdict(
                experiment,
                "2. closing the gap strongly improves group-wise metrics",
                v_gain >= thresholds["group_gain"] and knn_gain >= 0,
                f"V-Measure {_value(ours, 'v_measure')} vs {_value(base, 'v_measure')} ({v_gain:+.1f}); "
                f"kNN {_value(ours, 'knn_acc')} vs {_value(base, 'knn_acc')} ({knn_gain:+.1f}) "
                f"[needs V-Measure ≥ +{thresholds['group_gain']:g}, kNN ≥ +0]",
            )
        )
        ratio = ours["gap"] / base["gap"] if base["gap"] > 0 else float("inf")
        verdicts.append(
            Verdict(
                experiment,
                f"3. the loss closes the gap ({modality_counts.get(experiment, '?')} modalities)",
                ratio < thresholds["gap_ratio"],
                f"gap {_value(ours, 'gap')} vs {_value(base, 'gap')} (ratio {ratio:.2f}) "
                f"[needs < {thresholds['gap_ratio']:g}]",
            )
        )
    return verdicts


def format_verdicts(verdicts: list[Verdict], thresholds: Mapping) -> str:
    if not verdicts:
        return (
            f"No experiment has both '{thresholds['method']}' and '{thresholds['baseline']}': nothing to check.\n"
        )
    lines = [f"Claims check: {thresholds['method']} against {thresholds['baseline']} (mean ± std over seeds)", ""]
    current = None
    for verdict in verdicts:
        if verdict.experiment != current:
            current = verdict.experiment
            lines += ["", f"{current}"] if len(lines) > 2 else [f"{current}"]
        lines.append(f"  [{'HOLDS' if verdict.holds else 'FAILS'}] {verdict.claim}")
        lines.append(f"          {verdict.evidence}")
    held = sum(v.holds for v in verdicts)
    lines += ["", f"{held} of {len(verdicts)} checks hold."]
    return "\n".join(lines) + "\n"


def claims_report(main_csv: str | Path, thresholds: Mapping, modality_counts: Mapping[str, int]) -> str:
    return format_verdicts(check_claims(pd.read_csv(main_csv), thresholds, modality_counts), thresholds)
