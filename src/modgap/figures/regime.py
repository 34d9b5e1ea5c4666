"""The regime map's figure: each ladder's paired differences against the baseline's gap (the table:
modgap.verdict.regime), and the workflow's regime-map outputs, table and figure."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from modgap.figures.style import PAGE_WIDTH, apply_style, method_colors, plt, save
from modgap.io import write_text
from modgap.study.display import method_label
from modgap.verdict.regime import DIFFERENCES, regime_markdown
from modgap.verdict.verdict_table import read_verdict_table, with_settings


def plot(table: pd.DataFrame, knob: str, baseline: str, labels: Mapping[str, str] | None = None):
    apply_style()
    methods = list(dict.fromkeys(table["method"]))
    keys = ("v_measure", "knn_acc", "tv_r1")
    figure, axes = plt.subplots(len(methods), len(keys), figsize=(PAGE_WIDTH, 2.0 * len(methods) + 0.5), squeeze=False)
    colors = method_colors(methods, labels)
    for row_axes, method in zip(axes, methods):
        block = table[table["method"] == method]
        for axis, key in zip(row_axes, keys):
            for (_, modalities), line in block.groupby(["experiment", "modalities"], sort=False):
                line = line.sort_values("budget")
                axis.plot(
                    line["baseline_gap"],
                    line[key],
                    color=colors[method],
                    linewidth=0.5,
                    alpha=0.5,
                    linestyle="-" if modalities == 2 else ":",
                )
            axis.errorbar(
                block["baseline_gap"],
                block[key],
                yerr=[block[key] - block[f"{key}_low"], block[f"{key}_high"] - block[key]],
                fmt="none",
                ecolor=colors[method],
                linewidth=0.6,
            )
            axis.scatter(
                block["baseline_gap"], block[key], s=4 + block["budget"] / 4, color=colors[method], marker="o", zorder=3
            )
            axis.axhline(0.0, color="black", linewidth=0.6)
            axis.set_xlabel(f"{method_label(baseline, labels)} gap")
            axis.set_ylabel(f"{DIFFERENCES[key]} (points)")
        row_axes[0].set_title(
            f"{method_label(method, labels)} vs {method_label(baseline, labels)}; larger points: longer training; "
            f"solid: 2 modalities, dotted: 3 ({knob})",
            fontsize=6,
            loc="left",
        )
    figure.tight_layout()
    return figure


def make(
    verdict_csv,
    baseline: str,
    knobs,
    modality_counts,
    knob: str,
    csv_path,
    md_path,
    pdf_path,
    png_path,
    labels=None,
) -> pd.DataFrame:
    """Write the map's table (CSV, Markdown) and figure from the verdict table; ``labels``: the configuration's
    display names."""
    table = with_settings(read_verdict_table(verdict_csv), knobs, modality_counts)
    write_text(csv_path, table.to_csv(index=False))
    verdict = table[table["family"] == "verdict"]  # the controls: in the CSV
    write_text(md_path, regime_markdown(verdict, knob, baseline, labels))
    if not verdict.empty:
        save(plot(verdict, knob, baseline, labels), pdf_path, png_path)
    else:
        save(plt.figure(), pdf_path, png_path)
    return table
