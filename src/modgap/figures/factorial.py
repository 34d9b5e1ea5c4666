"""The factorial's figure: clustering against the gap over every cell, as trained and centred, with the gap
read two ways (the centroid distance, and the true pairs' alignment) and the paper's CLIP (LT) gaps marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modgap.figures.style import PAGE_WIDTH, apply_style, plt, save
from modgap.verdict import paper

# (x column as trained, x column centred, axis label)
GAP_AXES = (
    ("gap", "centred_gap", "modality gap (centroid distance)"),
    ("cos_true_pairs", "centred_cos_true_pairs", "true-pair cosine (alignment)"),
)
ARM_MARKERS = ("o", "s")


def paper_gaps() -> dict[str, float]:
    """The paper's CLIP (LT) gap per data set."""
    table = paper.paper_table()
    clip = table[table["method"] == "clip_lt"]
    return dict(zip(clip["dataset"], clip["gap"].astype(float)))


def plot(table: pd.DataFrame, labels: dict[str, str] | None = None):
    """One row per experiment; columns: V-Measure against each reading of the gap."""
    apply_style()
    labels = labels or {}
    experiments = list(dict.fromkeys(table["experiment"]))
    figure, axes = plt.subplots(
        len(experiments),
        len(GAP_AXES),
        figsize=(PAGE_WIDTH, 2.6 * len(experiments)),
        squeeze=False,
        constrained_layout=True,
    )
    temperatures = sorted(table["temperature"].unique())
    colours = dict(zip(temperatures, plt.cm.viridis(np.linspace(0.0, 0.9, len(temperatures)))))
    for row, experiment in zip(axes, experiments):
        block = table[table["experiment"] == experiment]
        for axis, (x_trained, x_centred, x_label) in zip(row, GAP_AXES):
            for (arm, cells), marker in zip(block.groupby("arm", sort=False), ARM_MARKERS):
                for _, cell in cells.iterrows():
                    colour = colours[cell["temperature"]]
                    trained = (cell[x_trained], cell["v_measure"])
                    centred = (cell[x_centred], cell["centred_v_measure"])
                    axis.annotate("", centred, trained, arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.6})
                    axis.scatter(*trained, marker=marker, color=colour, s=18, zorder=3)
                    axis.scatter(*centred, marker=marker, facecolor="none", edgecolor=colour, s=18, zorder=3)
                axis.scatter([], [], marker=marker, color="gray", label=f"{labels.get(arm, arm)}: its loss")
            if x_trained == "gap":
                for dataset, gap in paper_gaps().items():
                    axis.axvline(gap, color="gray", linestyle=":", linewidth=0.8)
                    axis.annotate(f" paper {dataset}", (gap, axis.get_ylim()[0]), fontsize=5, rotation=90, color="gray")
            axis.set_xlabel(x_label)
            axis.set_ylabel("V-Measure (%)")
            axis.set_title(experiment, fontsize=7)
        for temperature, colour in colours.items():
            row[-1].scatter([], [], color=colour, label=f"τ {temperature:g}")
        row[-1].legend(fontsize=5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle("The factorial: filled as trained, hollow centred (arrows)", fontsize=8)
    return figure


def make(
    table_csv: str | Path, pdf_path: str | Path, png_path: str | Path, labels: dict[str, str] | None = None
) -> None:
    save(plot(pd.read_csv(table_csv), labels), pdf_path, png_path)
