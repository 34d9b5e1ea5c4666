"""Figure 1: post-hoc shifts of a trained CLIP (LT) model - as the gap closes, group-wise metrics
rise while retrieval stays flat."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modgap.figures.style import COLUMN_WIDTH, apply_style, plt, save

SERIES = (("v_measure", "V-Measure"), ("knn_acc", "kNN accuracy"), ("r1", "R@1 (mean over text pairs)"))


def summarise(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every swept quantity per shift strength, in order of the resulting gap."""
    return sweep.groupby("strength").agg(["mean", "std"]).sort_values(("gap", "mean"))


def plot(sweep: pd.DataFrame, title: str):
    apply_style()
    figure, axis = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    summary = summarise(sweep)
    for (key, label), marker in zip(SERIES, "osD"):
        if summary[(key, "mean")].isna().all():
            continue
        x, y, err = summary[("gap", "mean")], summary[(key, "mean")], summary[(key, "std")].fillna(0.0)
        axis.plot(x, y, marker=marker, markersize=3, label=label)
        axis.fill_between(x, y - err, y + err, alpha=0.2)
    original = summary.loc[0.0, ("gap", "mean")] if 0.0 in summary.index else None
    if original is not None:
        axis.axvline(original, color="gray", linestyle=":", linewidth=1)
        axis.annotate(" trained", (original, axis.get_ylim()[1]), fontsize=6, color="gray", ha="left", va="top")
    axis.set_xlabel("modality gap (centroid distance)")
    axis.set_ylabel("V-Measure, kNN accuracy, R@1 (%)")
    axis.set_title(title, fontsize=8)
    axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return figure


def make(sweep_csv: str | Path, pdf_path: str | Path, png_path: str | Path, title: str) -> None:
    save(plot(pd.read_csv(sweep_csv), title), pdf_path, png_path)
