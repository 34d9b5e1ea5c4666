"""The budget figure: how each comparison moves along its budget ladder. One row per experiment; the
gaps of the methods and the baseline, and the paired ΔV-Measure and ΔkNN (method - baseline, with
their intervals and margins, dashed), against the training budget. The numbers are the claims check's ladders,
read from the verdict table the claims rule writes (modgap.verdict.verdict_table), so figure and claims.txt
cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from modgap.figures.style import PAGE_WIDTH, apply_style, method_colors, plt, save
from modgap.study.display import method_label
from modgap.verdict.verdict_table import laddered, read_verdict_table

DELTAS = (("v_measure", "ΔV-Measure (points)"), ("knn_acc", "ΔkNN (points)"))


def plot(frame: pd.DataFrame, baseline: str, labels: Mapping[str, str] | None = None):
    """``frame``: the verdict table's laddered rows, one per experiment, method, budget; ``baseline``: the
    claims' baseline."""
    apply_style()
    if frame.empty:  # a study of the baseline alone (a calibration): nothing to compare
        figure, axis = plt.subplots(figsize=(PAGE_WIDTH, 1.0))
        axis.axis("off")
        axis.text(
            0.5,
            0.5,
            f"No run of claims.methods beside {baseline} in this study: no comparison.",
            ha="center",
            va="center",
        )
        return figure
    experiments = list(dict.fromkeys(frame["experiment"]))
    figure, axes = plt.subplots(len(experiments), 3, figsize=(PAGE_WIDTH, 1.9 * len(experiments) + 0.4), squeeze=False)
    colors = method_colors([baseline, *dict.fromkeys(frame["method"])], labels)
    for row, experiment in zip(axes, experiments):
        block = frame[frame["experiment"] == experiment]
        budgets = sorted(block["budget"].unique())
        position = {b: i for i, b in enumerate(budgets)}  # evenly spaced: a doubling ladder on a log axis
        for index, (method, lines) in enumerate(block.groupby("method", sort=False)):
            lines = lines.sort_values("budget")
            x = lines["budget"].map(position)
            if index == 0:  # the baseline's gap, the same in every comparison
                row[0].plot(
                    x,
                    lines["baseline_gap"],
                    marker="o",
                    markersize=3,
                    color=colors[baseline],
                    label=method_label(baseline, labels),
                )
            row[0].plot(
                x,
                lines["method_gap"],
                marker="o",
                markersize=3,
                color=colors[method],
                label=method_label(method, labels),
            )
            for axis, (key, _) in zip(row[1:], DELTAS):
                axis.errorbar(
                    x,
                    lines[key],
                    yerr=[lines[key] - lines[f"{key}_low"], lines[f"{key}_high"] - lines[key]],
                    marker="o",
                    markersize=3,
                    capsize=2,
                    linewidth=1,
                    color=colors[method],
                )
        row[0].set_ylabel("gap")
        row[0].set_title(experiment, fontsize=7, loc="left")
        for axis, (key, label) in zip(row[1:], DELTAS):
            axis.axhline(0.0, color="black", linewidth=0.6)
            axis.axhline(block[f"{key}_margin"].iloc[0], color="gray", linewidth=0.6, linestyle="--")
            axis.set_ylabel(label)
        for axis in row:
            axis.set_xticks(range(len(budgets)), [str(b) for b in budgets])
            axis.set_xlabel("training budget (epochs)")
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names), fontsize=6)
    figure.tight_layout()
    return figure


def make(
    verdict_csv: str | Path,
    baseline: str,
    pdf_path: str | Path,
    png_path: str | Path,
    labels: Mapping[str, str] | None = None,
) -> None:
    save(plot(laddered(read_verdict_table(verdict_csv), "verdict"), baseline, labels), pdf_path, png_path)
