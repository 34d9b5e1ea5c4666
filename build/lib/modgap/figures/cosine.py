"""Figure 3: cosine similarity of true pairs against random pairs, per method, pooled over modality pairs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modgap.embeddings.dumps import modality_embeddings
from modgap.figures.style import PAGE_WIDTH, apply_style, plt, save
from modgap.study.display import method_label


def pair_cosines(embeddings: Mapping[str, np.ndarray], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of true pairs (i, i) and of random pairs (i, pi(i)) over every modality pair."""
    rng = np.random.default_rng(seed)
    true, random = [], []
    for a, b in itertools.combinations(embeddings, 2):
        z_a, z_b = embeddings[a], embeddings[b]
        true.append(np.sum(z_a * z_b, axis=1))
        random.append(np.sum(z_a * z_b[rng.permutation(len(z_b))], axis=1))
    return np.concatenate(true), np.concatenate(random)


PANELS_PER_ROW = 5


def plot(
    dumps: Sequence[tuple[str, Mapping[str, np.ndarray]]], title: str = "", labels: Mapping[str, str] | None = None
):
    apply_style()
    columns = min(PANELS_PER_ROW, len(dumps))
    rows = -(-len(dumps) // columns)
    # y not shared: a collapsed method's spike at cosine 1 would flatten every other panel
    figure, axes = plt.subplots(
        rows, columns, figsize=(min(PAGE_WIDTH, 1.45 * columns), 1.75 * rows), sharex=True, squeeze=False
    )
    bins = np.linspace(-1, 1, 61)
    for axis, (method, dump) in zip(axes.flat, dumps):
        true, random = pair_cosines(modality_embeddings(dump))
        axis.hist(random, bins=bins, color="C0", alpha=0.45, density=True, label="random pairs")
        axis.hist(true, bins=bins, color="C3", alpha=0.6, density=True, label="true pairs")
        axis.axvline(true.mean(), color="C3", linewidth=0.8, linestyle="--", label="mean of true pairs")
        axis.set_title(f"{method_label(method, labels)}\ntrue-pair mean {true.mean():.2f}", fontsize=6)
        axis.set_yticks([])
        axis.tick_params(labelsize=6)
    for axis in axes.flat[len(dumps) :]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("cosine", fontsize=7)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", ncol=3, fontsize=6, bbox_to_anchor=(0.5, 0.0))
    if title:
        figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def make(
    dumps: Mapping[str, Mapping[str, np.ndarray]],
    pdf_path: str | Path,
    png_path: str | Path,
    experiment: str,
    seed: int,
    labels: Mapping[str, str] | None = None,
) -> None:
    """``dumps``: method -> embedding dump (modgap.embeddings.dumps.load_method_dump); ``labels``: the study's display
    names (modgap.study.display)."""
    save(
        plot(list(dumps.items()), title=f"{experiment}: true vs random pairs, test split, seed {seed}", labels=labels),
        pdf_path,
        png_path,
    )
