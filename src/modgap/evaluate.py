"""Per-run evaluation: every metric of SPEC section 4 from one embedding dump, as flat JSON.

Retrieval, V-Measure and kNN are in percent, as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modgap import metrics
from modgap.io import save_npz, write_json

MODALITY_ORDER = ("image", "audio", "text")


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def modality_embeddings(dump: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-modality arrays of a dump, in canonical modality order."""
    return {m: dump[m] for m in MODALITY_ORDER if m in dump}


def linear_probe_accuracy(points: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Logistic regression on a seeded 60/20/20 split; C chosen on the validation part (percent)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    train_x, rest_x, train_y, rest_y = train_test_split(points, labels, test_size=0.4, random_state=seed)
    val_x, test_x, val_y, test_y = train_test_split(rest_x, rest_y, test_size=0.5, random_state=seed)
    best = None
    for c in (0.01, 0.1, 1.0, 10.0, 100.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train_x, train_y)
        score = model.score(val_x, val_y)
        if best is None or score > best[0]:
            best = (score, c, model)
    return {"linear_probe_acc": 100.0 * best[2].score(test_x, test_y), "linear_probe_c": best[1]}


def intra_modality_cosine(z: np.ndarray) -> float:
    """Mean cosine between different samples of one modality: (||sum z||^2 - N) / (N (N - 1))."""
    n = len(z)
    return float((np.sum(z.sum(axis=0) ** 2) - n) / (n * (n - 1)))


def compute_metrics(
    dump: Mapping[str, np.ndarray], retrieval: str, options: Mapping, n_classes: int
) -> dict[str, float]:
    """All metrics of one embedding dump (see modgap.metrics for their definitions)."""
    embeddings = modality_embeddings(dump)
    labels = np.asarray(dump["labels"])
    results: dict[str, float] = {"n_test": int(len(labels)), "n_labelled": int((labels >= 0).sum())}
    results.update(metrics.gap_metrics(embeddings))
    results.update(
        metrics.retrieval_metrics(
            embeddings,
            labels,
            retrieval,
            ks=options["recall_at"],
            text_captions=dump.get("text_captions"),
            text_caption_item=dump.get("text_caption_item"),
        )
    )
    points, stacked_labels = metrics.stacked(embeddings, labels)
    k = options["kmeans_k"] or n_classes
    results["kmeans_k"] = int(k)
    results.update(
        metrics.clustering_scores(points, stacked_labels, k, options["kmeans_random_state"], options["kmeans_n_init"])
    )
    results["knn_acc"] = metrics.knn_accuracy(
        points, stacked_labels, options["knn_k"], options["knn_test_fraction"], options["knn_seed"]
    )
    if options["linear_probe"]:
        results.update(linear_probe_accuracy(points, stacked_labels, options["knn_seed"]))
    for modality, z in embeddings.items():
        results[f"intra_cos_{modality}"] = intra_modality_cosine(z)
    return results


def evaluate_run(
    embeddings_path: str | Path,
    output_path: str | Path,
    *,
    retrieval: str,
    options: Mapping,
    n_classes: int,
    identity: Mapping[str, object],
) -> dict:
    """Compute the metrics of one dump and write them, with ``identity`` (experiment, method, seed), as JSON."""
    results = {**identity, "retrieval": retrieval}
    results.update(compute_metrics(load_embeddings(embeddings_path), retrieval, options, n_classes))
    write_json(output_path, results)
    return results


def shift_dump(dump: Mapping[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    """A dump after the post-hoc shift; all captions move with the text modality."""
    embeddings = modality_embeddings(dump)
    shifted = {**dump, **metrics.posthoc_shift(embeddings, strength)}
    if "text_captions" in dump:
        offset = dump["text"].mean(axis=0) - np.mean([z.mean(axis=0) for z in embeddings.values()], axis=0)
        moved = dump["text_captions"] - strength * offset
        shifted["text_captions"] = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
    return shifted


def write_shifted(source_path: str | Path, output_path: str | Path, strength: float = 1.0) -> None:
    """The training-free 'posthoc' method: a trained model's embeddings with the gap shifted away."""
    save_npz(output_path, **shift_dump(load_embeddings(source_path), strength))


def gap_sweep(
    dumps: Sequence[tuple[int, Mapping[str, np.ndarray]]],
    strengths: Sequence[float],
    retrieval: str,
    options: Mapping,
    n_classes: int,
) -> list[dict]:
    """Figure 1's data: gap, V-Measure and R@1 of each seed's embeddings under a range of shifts."""
    rows = []
    for seed, dump in dumps:
        for strength in strengths:
            shifted = shift_dump(dump, strength)
            embeddings = modality_embeddings(shifted)
            labels = np.asarray(shifted["labels"])
            recalls = metrics.retrieval_metrics(
                embeddings, labels, retrieval, ks=(1,),
                text_captions=shifted.get("text_captions"), text_caption_item=shifted.get("text_caption_item"),
            )  # fmt: skip
            points, stacked_labels = metrics.stacked(embeddings, labels)
            clustering = metrics.clustering_scores(
                points, stacked_labels, options["kmeans_k"] or n_classes,
                options["kmeans_random_state"], options["kmeans_n_init"],
            )  # fmt: skip
            rows.append(
                {
                    "seed": seed,
                    "strength": float(strength),
                    "gap": metrics.gap_metrics(embeddings)["gap"],
                    "r1": float(np.mean(list(recalls.values()))) if recalls else float("nan"),
                    "v_measure": clustering["v_measure"],
                    "knn_acc": metrics.knn_accuracy(
                        points, stacked_labels, options["knn_k"], options["knn_test_fraction"], options["knn_seed"]
                    ),
                }
            )
    return rows
