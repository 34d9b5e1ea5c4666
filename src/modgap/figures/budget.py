"""The budget figure: how each comparison moves along its budget ladder. One row per experiment; the
gaps of the methods and the baseline, and the paired ΔV-Measure and ΔkNN (method - baseline, with
their confidence intervals), against the training budget."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from modgap.figures.style import PAGE_WIDTH, apply_style, method_colors, method_label, plt, save
from modgap.stats import paired_difference

DELTAS = (("v_measure", "ΔV-Measure (points)"), ("knn_acc", "ΔkNN (points)"))


def ladder_frame(runs: pd.DataFrame, ladders: Mapping[str, list], claims: Mapping) -> pd.DataFrame:
    """Per (experiment, method, budget): mean gap, and for the compared methods the paired differences
    against the baseline with their interval bounds."""
    rows = []
    for experiment, rungs in ladders.items():
        for budget, evaluation in rungs:
            block = runs[runs["experiment"] == evaluation]
            base = block[block["method"] == claims["baseline"]].set_index("seed")
            for method in [claims["baseline"], *claims["methods"]]:
                ours = block[block["method"] == method].set_index("seed")
                if ours.empty:
                    continue
                row = {"experiment": experiment, "method": method, "budget": int(budget), "gap": ours["gap"].mean()}
                seeds = sorted(set(ours.index) & set(base.index))
                if method != claims["baseline"] and seeds:
                    for key, _ in DELTAS:
                        interval = paired_difference(ours.loc[seeds, key], base.loc[seeds, key], claims["confidence"])
                        row |= {f"d_{key}": interval.estimate, f"d_{key}_low": interval.low, f"d_{key}_high": interval.high}
                rows.append(row)
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, claims: Mapping):
    apply_style()
    experiments = list(dict.fromkeys(frame["experiment"]))
    figure, axes = plt.subplots(len(experiments), 3, figsize=(PAGE_WIDTH, 1.9 * len(experiments) + 0.4), squeeze=False)
    colors = method_colors(list(dict.fromkeys(frame["method"])))
    for row, experiment in zip(axes, experiments):
        block = frame[frame["experiment"] == experiment]
        budgets = sorted(block["budget"].unique())
        position = {b: i for i, b in enumerate(budgets)}  # evenly spaced: a doubling ladder on a log axis
        for method, lines in block.groupby("method", sort=False):
            lines = lines.sort_values("budget")
            x = lines["budget"].map(position)
            row[0].plot(x, lines["gap"], marker="o", markersize=3, color=colors[method], label=method_label(method))
            if method == claims["baseline"]:
                continue
            for axis, (key, _) in zip(row[1:], DELTAS):
                axis.errorbar(x, lines[f"d_{key}"],
                              yerr=[lines[f"d_{key}"] - lines[f"d_{key}_low"], lines[f"d_{key}_high"] - lines[f"d_{key}"]],
                              marker="o", markersize=3, capsize=2, linewidth=1, color=colors[method], label=method_label(method))  # fmt: skip
        row[0].set_ylabel("gap")
        row[0].set_title(experiment, fontsize=7, loc="left")
        for axis, (_, label) in zip(row[1:], DELTAS):
            axis.axhline(0.0, color="black", linewidth=0.6)
            axis.axhline(claims["group_margin"], color="gray", linewidth=0.6, linestyle="--")
            axis.set_ylabel(label)
        for axis in row:
            axis.set_xticks(range(len(budgets)), [str(b) for b in budgets])
            axis.set_xlabel("training budget (epochs)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), fontsize=6)
    figure.tight_layout()
    return figure


def make(runs_csv: str | Path, ladders: Mapping[str, list], claims: Mapping, pdf_path: str | Path, png_path: str | Path) -> None:
    save(plot(ladder_frame(pd.read_csv(runs_csv), ladders, claims), claims), pdf_path, png_path)
