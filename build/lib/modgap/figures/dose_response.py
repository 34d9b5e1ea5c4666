"""The trained dose-response beside the post-hoc shift (the paper's Figure 1 with trained models):
one panel per metric against the modality gap, the shifted embeddings of a trained CLIP as a line,
models trained with the gap terms scaled by λ as points."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modgap.figures.gap_sweep import summarise
from modgap.figures.style import PAGE_WIDTH, apply_style, plt, save

PANELS = (
    ("v_measure", "v_measure", "V-Measure (%)"),
    ("knn_acc", "knn_acc", "kNN accuracy (%)"),
    ("r1", "r1_mean", "R@1 with text (%)"),
)


def plot(trained: pd.DataFrame, sweep: pd.DataFrame, title: str):
    """``trained``: the dose-response table (modgap.verdict.tables.dose_response); ``sweep``: the post-hoc sweep rows."""
    apply_style()
    figure, axes = plt.subplots(1, len(PANELS), figsize=(PAGE_WIDTH, 2.3))
    shifted = summarise(sweep)
    for axis, (sweep_key, table_key, label) in zip(axes, PANELS):
        x, y = shifted[("gap", "mean")], shifted[(sweep_key, "mean")]
        err = shifted[(sweep_key, "std")].fillna(0.0)
        axis.plot(x, y, color="gray", linewidth=1, marker=".", markersize=3, label="post-hoc shift (λ_shift -1 … 1)")
        axis.fill_between(x, y - err, y + err, color="gray", alpha=0.15)
        axis.errorbar(
            trained["gap"],
            trained[table_key],
            xerr=trained["gap_std"],
            yerr=trained[f"{table_key}_std"],
            fmt="o",
            color="C3",
            markersize=3.5,
            linewidth=0.8,
            capsize=1.5,
            label="trained, gap terms × λ",
        )
        for _, row in trained.iterrows():
            axis.annotate(
                f"λ={row['strength']:g}",
                (row["gap"], row[table_key]),
                fontsize=5.5,
                xytext=(3, 3),
                textcoords="offset points",
            )
        axis.set_xlabel("modality gap (centroid distance)")
        axis.set_ylabel(label)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=6)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def make(table_csv: str | Path, sweep_csv: str | Path, pdf_path: str | Path, png_path: str | Path, title: str) -> None:
    save(plot(pd.read_csv(table_csv), pd.read_csv(sweep_csv), title), pdf_path, png_path)
