"""Figure 3: cosine similarity of true pairs against random pairs, per method, pooled over modality pairs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modgap.evaluate import modality_embeddings
from modgap.figures.style import PAGE_WIDTH, apply_style, method_label, plt, save


def pair_cosines(embeddings: Mapping[str, np.ndarray], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of true pairs (i, i) and of random pairs (i, pi(i)) over every modality pair."""
    rng = np.random.default_rng(seed)
    true, random = [], []
    for a, b in itertools.combinations(embeddings, 2):
        z_a, z_b = embeddings[a], embeddings[b]
        true.append(np.sum(z_a * z_b, axis=1))
        random.append(np.sum(z_a * z_b[rng.permutation(len(z_b))], axis=1))
    return np.concatenate(true), np.concatenate(random)


def plot(dumps: Sequence[tuple[str, Mapping[str, np.ndarray]]], title: str = ""):
    apply_style()
    columns = len(dumps)
    # y not shared: a collapsed method's spike at cosine 1 would flatten every other panel
    figure, axes = plt.subplots(1, columns, figsize=(min(PAGE_WIDTH, 1.8 * columns), 1.9), sharex=True,
                                squeeze=False)  # fmt: skip
    bins = np.linspace(-1, 1, 61)
    for axis, (method, dump) in zip(axes[0], dumps):
        true, random = pair_cosines(modality_embeddings(dump))
        axis.hist(random, bins=bins, alpha=0.6, density=True, label="random pairs")
        axis.hist(true, bins=bins, alpha=0.6, density=True, label="true pairs")
        axis.axvline(true.mean(), color="C1", linewidth=1)
        axis.set_title(f"{method_label(method)}\nmean true {true.mean():.2f}", fontsize=7)
        axis.set_xlabel("cosine")
        axis.set_yticks([])
    axes[0][0].set_ylabel("density")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=6, bbox_to_anchor=(0.5, -0.12))
    if title:
        figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return figure


def make(
    dumps: Mapping[str, Mapping[str, np.ndarray]], pdf_path: str | Path, png_path: str | Path, experiment: str, seed: int
) -> None:
    """``dumps``: method -> embedding dump (modgap.evaluate.load_method_dump)."""
    save(plot(list(dumps.items()), title=f"{experiment}: true vs random pairs, test split, seed {seed}"), pdf_path, png_path)
