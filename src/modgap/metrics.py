"""Metrics on L2-normalised embeddings (SPEC section 4), vectorised with numpy.

Embeddings are float arrays (N, d) per modality, row i of every modality being
the same sample. Retrieval scores queries in blocks, so 25,000 x 25,000
similarity matrices never exist in memory at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

_QUERY_BLOCK = 2048


def gap(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Distance between the modality centroids (Liang et al.)."""
    return float(np.linalg.norm(z_a.mean(axis=0) - z_b.mean(axis=0)))


def cos_true_pairs(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Mean cosine similarity of the true pairs (row i with row i)."""
    return float(np.mean(np.sum(z_a * z_b, axis=1)))


def _correct_best(texts: np.ndarray, text_keys: np.ndarray, items: np.ndarray, item_keys: np.ndarray) -> np.ndarray:
    """For every item, the highest score among the texts with its key (-inf if none), each score a
    product of the same two vectors as in ``paired_ranks``' main pass."""
    best = np.full(len(items), -np.inf, dtype=np.result_type(texts, items))
    order = np.argsort(text_keys, kind="stable")
    item_order = np.argsort(item_keys, kind="stable")
    sorted_item_keys = item_keys[item_order]
    for start in range(0, len(order), _QUERY_BLOCK):
        rows = order[start : start + _QUERY_BLOCK]
        keys = text_keys[rows]
        low = np.searchsorted(sorted_item_keys, keys.min(), side="left")
        high = np.searchsorted(sorted_item_keys, keys.max(), side="right")
        columns = item_order[low:high]  # the items whose keys lie in this block's (sorted) key range
        if len(columns) == 0:
            continue
        scores = texts[rows] @ items[columns].T
        scores[keys[:, None] != item_keys[columns][None, :]] = -np.inf
        np.maximum.at(best, columns, scores.max(axis=0))
    return best


def paired_ranks(
    texts: np.ndarray, text_keys: np.ndarray, items: np.ndarray, item_keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of every text as a query over the items and of every item as a query over the texts, where a
    (text, item) pair is correct when their keys are equal (instance: the item's index; class: the label).

    A query's rank is the number of wrong answers scoring strictly above its best correct one (ties count
    in its favour; no correct answer: every gallery entry counts). One blocked pass over the text-item
    similarities serves both directions. A text query's correct score is read from the same matrix
    product as its competitors, so its rank is exact. An item query's best correct score comes from a
    product of the same two vectors in another shape, which a BLAS may round differently in the last
    bit: its own correct answers are never counted against it, and only a wrong answer tying its best
    correct one to the last bit could be miscounted.
    """
    text_keys, item_keys = np.asarray(text_keys), np.asarray(item_keys)
    order = np.argsort(item_keys, kind="stable")  # gallery columns grouped by key: per-key maxima by reduceat
    keys, starts = np.unique(item_keys[order], return_index=True)
    position = np.searchsorted(keys, text_keys).clip(max=max(len(keys) - 1, 0))
    present = (keys[position] == text_keys) if len(keys) else np.zeros(len(texts), dtype=bool)
    gallery, gallery_keys = items[order], item_keys[order]
    item_best = _correct_best(texts, text_keys, items, item_keys)[order]
    text_ranks = np.empty(len(texts), dtype=np.int64)
    item_ranks = np.zeros(len(items), dtype=np.int64)
    for start in range(0, len(texts), _QUERY_BLOCK):
        block = slice(start, min(start + _QUERY_BLOCK, len(texts)))
        similarities = texts[block] @ gallery.T
        # one gallery entry per key (instance retrieval): the columns are the keys already
        per_key = similarities if len(keys) == len(items) else np.maximum.reduceat(similarities, starts, axis=1)
        best = np.where(present[block], per_key[np.arange(len(per_key)), position[block]], -np.inf)
        text_ranks[block] = (similarities > best[:, None]).sum(axis=1)
        wrong = text_keys[block, None] != gallery_keys[None, :]
        item_ranks += ((similarities > item_best[None, :]) & wrong).sum(axis=0)
    return text_ranks, item_ranks[np.argsort(order)]


def instance_ranks(
    texts: np.ndarray, items: np.ndarray, text_item: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Instance-level ranks both ways: caption ``t`` describes item ``text_item[t]`` (default: its own
    row); an item counts as retrieved when any of its captions is (COCO protocol)."""
    text_item = np.arange(len(texts)) if text_item is None else np.asarray(text_item)
    return paired_ranks(texts, text_item, items, np.arange(len(items)))


def class_ranks(
    texts: np.ndarray, text_labels: np.ndarray, items: np.ndarray, item_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Class-level ranks both ways: any gallery entry of the query's class is correct."""
    return paired_ranks(texts, text_labels, items, item_labels)


def recall_at(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """R@k in percent from 0-based ranks."""
    return {k: float(100.0 * np.mean(ranks < k)) for k in ks}


def stacked(embeddings: Mapping[str, np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All modalities' embeddings stacked, labels repeated per modality; unlabelled (-1) rows dropped."""
    keep = labels >= 0
    points = np.concatenate([z[keep] for z in embeddings.values()])
    return points, np.tile(labels[keep], len(embeddings))


def clustering_scores(points: np.ndarray, labels: np.ndarray, k: int, random_state: int = 0, n_init: int = 10) -> dict:
    """KMeans on the points, scored against the labels: V-Measure, homogeneity, NMI, ARI (percent)."""
    from sklearn import metrics as skm
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=k, random_state=random_state, n_init=n_init).fit_predict(points)
    homogeneity, completeness, v_measure = skm.homogeneity_completeness_v_measure(labels, clusters)
    return {
        "v_measure": 100.0 * v_measure,
        "homogeneity": 100.0 * homogeneity,
        "completeness": 100.0 * completeness,
        "nmi": 100.0 * skm.normalized_mutual_info_score(labels, clusters),
        "ari": 100.0 * skm.adjusted_rand_score(labels, clusters),
    }


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 5, test_fraction: float = 0.2, seed: int = 0) -> float:
    """k-nearest-neighbour (Euclidean) accuracy in percent on a seeded random train/test split."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    train_x, test_x, train_y, test_y = train_test_split(points, labels, test_size=test_fraction, random_state=seed)
    classifier = KNeighborsClassifier(n_neighbors=k).fit(train_x, train_y)
    return float(100.0 * np.mean(classifier.predict(test_x) == test_y))


def gap_metrics(embeddings: Mapping[str, np.ndarray]) -> dict[str, float]:
    """gap and cos_true_pairs for every modality pair, plus their means."""
    results: dict[str, float] = {}
    gaps, cosines = [], []
    for a, b in itertools.combinations(embeddings, 2):
        gaps.append(results.setdefault(f"gap_{a}_{b}", gap(embeddings[a], embeddings[b])))
        cosines.append(results.setdefault(f"cos_true_pairs_{a}_{b}", cos_true_pairs(embeddings[a], embeddings[b])))
    results["gap"] = float(np.mean(gaps))
    results["cos_true_pairs"] = float(np.mean(cosines))
    return results


def retrieval_metrics(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    level: str,
    ks: Sequence[int] = (1, 5, 10),
    text_captions: np.ndarray | None = None,
    text_caption_item: np.ndarray | None = None,
    text_modality: str = "text",
) -> dict[str, float]:
    """R@k both ways between the text and every other modality, keys like ``r1_text_image``.

    ``level`` is 'instance' (own partner; with ``text_captions`` every caption of an
    item counts, as in COCO) or 'class' (any item of the query's class).
    """
    if text_modality not in embeddings:
        return {}
    results: dict[str, float] = {}
    for other in (m for m in embeddings if m != text_modality):
        if level == "instance":
            if text_captions is not None:
                texts, owners = text_captions, text_caption_item
            else:
                texts, owners = embeddings[text_modality], None
            text_ranks, item_ranks = instance_ranks(texts, embeddings[other], owners)
        elif level == "class":
            keep = labels >= 0
            kept = labels[keep]
            text_ranks, item_ranks = class_ranks(embeddings[text_modality][keep], kept, embeddings[other][keep], kept)
        else:
            raise ValueError(f"retrieval level must be 'instance' or 'class', got {level!r}")
        ranks = {(text_modality, other): text_ranks, (other, text_modality): item_ranks}
        for (query, target), rank in ranks.items():
            for k, value in recall_at(rank, ks).items():
                results[f"r{k}_{query}_{target}"] = value
    return results


def posthoc_shift(embeddings: Mapping[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    """Liang et al.'s post-hoc shift: move every modality towards the common centroid, re-normalise.

    Each modality moves by ``strength`` times its offset from the mean of the
    modality centroids; for two modalities this is z^a - lambda/2 Delta and
    z^b + lambda/2 Delta with Delta = mean(z^a) - mean(z^b) (SPEC 3.4). With
    strength 1 the centroids coincide before re-normalisation; negative values widen the gap.
    """
    centroids = {m: z.mean(axis=0) for m, z in embeddings.items()}
    common = np.mean(list(centroids.values()), axis=0)
    shifted = {}
    for modality, z in embeddings.items():
        moved = z - strength * (centroids[modality] - common)
        shifted[modality] = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(z.dtype)
    return shifted
