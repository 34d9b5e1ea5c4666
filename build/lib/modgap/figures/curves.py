"""Figure 4: training curves per method (mean over seeds): loss, temperature, validation gap and R@1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from modgap.figures.style import PAGE_WIDTH, apply_style, method_colors, plt, save
from modgap.study.display import display_order, method_label

PANELS = (
    ("loss", "training loss"),
    ("temperature", "temperature τ"),
    ("val_gap", "validation gap"),
    ("val_r1", "validation R@1 (%)"),
)


def plot(logs: pd.DataFrame, title: str = "", labels: Mapping[str, str] | None = None):
    apply_style()
    figure, axes = plt.subplots(1, len(PANELS), figsize=(PAGE_WIDTH, 1.9))
    colors = method_colors(logs["method"].unique(), labels)
    for method in display_order(logs["method"], labels):
        curve = logs[logs["method"] == method].groupby("epoch").mean(numeric_only=True)
        for axis, (column, _) in zip(axes, PANELS):
            axis.plot(
                curve.index, curve[column], color=colors[method], label=method_label(method, labels), linewidth=1.2
            )
    for axis, (_, panel) in zip(axes, PANELS):
        axis.set_title(panel, fontsize=7)
        axis.set_xlabel("epoch")
    # below the panels, where it can cover no curve
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(5, len(names)), fontsize=6)
    if title:
        figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def final_path(log: pd.DataFrame) -> pd.DataFrame:
    """The epochs that lead to a run's final state: its trunk and the last budget's cooldown (a ladder's
    other cooldowns branch off and are left out)."""
    if "budget" not in log or log["budget"].isna().all():
        return log
    return log[log["budget"].isna() | (log["budget"] == log["budget"].max())]


def make(
    log_paths: Sequence[tuple[str, int, str | Path]],
    pdf_path: str | Path,
    png_path: str | Path,
    experiment: str,
    labels: Mapping[str, str] | None = None,
) -> None:
    """``log_paths``: (method, seed, path of train_log.csv) for every run of one experiment; ``labels``: display
    names."""
    frames = [final_path(pd.read_csv(path)).assign(method=method, seed=seed) for method, seed, path in log_paths]
    seeds = len({seed for _, seed, _ in log_paths})
    title = f"{experiment}: training curves, mean over {seeds} seed{'s' if seeds > 1 else ''}"
    save(plot(pd.concat(frames, ignore_index=True), title, labels), pdf_path, png_path)
