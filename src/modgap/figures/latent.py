"""Figure 2: the test embeddings of every modality projected by PCA, per method - classes by colour,
modalities by marker. A gap shows as one cloud per modality; a closed gap as one cloud per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import seaborn as sns
from sklearn.decomposition import PCA

from modgap.embeddings.dumps import LABELS, modality_embeddings
from modgap.figures.style import MODALITY_MARKERS, PAGE_WIDTH, apply_style, plt, save
from modgap.metrics.measures import gap_metrics
from modgap.study.display import method_label


def project(embeddings: Mapping[str, np.ndarray], dimensions: int) -> dict[str, np.ndarray]:
    """PCA of all modalities together, so distances between modalities are preserved in the view."""
    stacked = np.concatenate(list(embeddings.values()))
    projected = PCA(n_components=dimensions, random_state=0).fit_transform(stacked)
    bounds = np.cumsum([0] + [len(z) for z in embeddings.values()])
    return {m: projected[bounds[i] : bounds[i + 1]] for i, m in enumerate(embeddings)}


def plot(
    dumps: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    class_names: Sequence[str],
    dimensions: int = 2,
    title: str = "",
    labels: Mapping[str, str] | None = None,
):
    apply_style()
    columns = len(dumps)
    figure = plt.figure(figsize=(min(PAGE_WIDTH, 2.3 * columns), 2.6 if dimensions == 2 else 2.8))
    colors = sns.color_palette("tab10", max(10, len(class_names)))
    for index, (method, dump) in enumerate(dumps):
        kwargs = {"projection": "3d"} if dimensions == 3 else {}
        axis = figure.add_subplot(1, columns, index + 1, **kwargs)
        embeddings = modality_embeddings(dump)
        classes = np.asarray(dump[LABELS])
        for modality, points in project(embeddings, dimensions).items():
            labelled = classes >= 0
            axis.scatter(
                *points[labelled].T,
                c=[colors[label % len(colors)] for label in classes[labelled]],
                marker=MODALITY_MARKERS.get(modality, "x"),
                s=3,
                alpha=0.5,
                linewidths=0,
            )
        gap = gap_metrics(embeddings, ["gap"])["gap"]
        axis.set_title(f"{method_label(method, labels)}\ngap {gap:.2f}", fontsize=7)
        axis.set_xticks([]), axis.set_yticks([])
        if dimensions == 3:
            axis.set_zticks([])
    modality_handles = [
        plt.Line2D([], [], marker=MODALITY_MARKERS.get(m, "x"), linestyle="", color="black", markersize=4, label=m)
        for m in modality_embeddings(dumps[0][1])
    ]
    class_handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colors[i], markersize=4, label=name)
        for i, name in enumerate(class_names[:10])
    ]
    figure.legend(
        handles=modality_handles + class_handles,
        loc="lower center",
        ncol=min(13, 3 + len(class_handles)),
        fontsize=5.5,
        bbox_to_anchor=(0.5, -0.08),
    )
    if title:
        figure.suptitle(title, fontsize=7, y=1.08)
    return figure


def make(
    dumps: Mapping[str, Mapping[str, np.ndarray]],
    class_names: Sequence[str],
    pdf_path: str | Path,
    png_path: str | Path,
    dimensions: int,
    experiment: str,
    seed: int,
    labels: Mapping[str, str] | None = None,
) -> None:
    """``dumps``: method -> embedding dump (modgap.embeddings.dumps.load_method_dump); ``labels``: the study's display
    names (modgap.study.display)."""
    title = f"{experiment}, seed {seed}: test embeddings, one PCA to {dimensions}-D per method over all modalities"
    save(plot(list(dumps.items()), class_names, dimensions, title, labels), pdf_path, png_path)
