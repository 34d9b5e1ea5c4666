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
TIE_TOLERANCE = 1e-5


def gap(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Distance between the modality centroids (Liang et al.)."""
    return float(np.linalg.norm(z_a.mean(axis=0) - z_b.mean(axis=0)))


def cos_true_pairs(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Mean cosine similarity of the true pairs (row i with row i)."""
    return float(np.mean(np.sum(z_a * z_b, axis=1)))


def _ranks(queries: np.ndarray, gallery: np.ndarray, best_correct) -> np.ndarray:
    """For every query, how many gallery items score strictly above its best correct item.

    ``best_correct(block, similarities)`` gives, for the queries of a block, the
    highest similarity among their correct gallery items (-inf if none), read from
    the same matrix, so ties are exact and count in the query's favour.
    """
    ranks = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _QUERY_BLOCK):
        block = slice(start, min(start + _QUERY_BLOCK, len(queries)))
        similarities = queries[block] @ gallery.T
        ranks[block] = (similarities > best_correct(block, similarities)[:, None]).sum(axis=1)
    return ranks


def instance_ranks(
    texts: np.ndarray, items: np.ndarray, text_item: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks for instance-level retrieval in both directions, from one pass over the similarities.

    ``text_item[t]`` is the item (row of ``items``) caption ``t`` describes (default:
    its own row). A caption query is answered by its item; an item query by any of
    its captions, so an image counts as retrieved within k when any of its captions
    is (COCO protocol). Returns (ranks of the caption queries, ranks of the item queries).
    Scores within TIE_TOLERANCE of the correct one count as ties, in the query's favour:
    matrix products and row-wise dot products round differently in the last bits.
    """
    text_item = np.arange(len(texts)) if text_item is None else np.asarray(text_item)
    partner = np.einsum("ij,ij->i", texts, items[text_item])
    best_caption = np.full(len(items), -np.inf, dtype=partner.dtype)
    np.maximum.at(best_caption, text_item, partner)
    text_ranks = np.empty(len(texts), dtype=np.int64)
    item_ranks = np.zeros(len(items), dtype=np.int64)
    for start in range(0, len(texts), _QUERY_BLOCK):
        block = slice(start, min(start + _QUERY_BLOCK, len(texts)))
        similarities = texts[block] @ items.T
        text_ranks[block] = (similarities > partner[block, None] + TIE_TOLERANCE).sum(axis=1)
        item_ranks += (similarities > best_caption[None, :] + TIE_TOLERANCE).sum(axis=0)
    return text_ranks, item_ranks


def class_ranks(queries: np.ndarray, gallery: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Ranks for class-level retrieval: any gallery item of the query's class is correct."""
    query_labels, gallery_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    order = np.argsort(gallery_labels, kind="stable")
    classes, starts = np.unique(gallery_labels[order], return_index=True)
    position = np.searchsorted(classes, query_labels).clip(max=len(classes) - 1)
    present = classes[position] == query_labels
    gallery = gallery[order]  # columns grouped by class: per-class maxima by one reduceat

    def best_correct(block, similarities):
        per_class = np.maximum.reduceat(similarities, starts, axis=1)
        best = per_class[np.arange(len(per_class)), position[block]]
        return np.where(present[block], best, -np.inf)

    return _ranks(queries, gallery, best_correct)


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
            ranks = {(text_modality, other): text_ranks, (other, text_modality): item_ranks}
        elif level == "class":
            keep = labels >= 0
            texts, others, kept = embeddings[text_modality][keep], embeddings[other][keep], labels[keep]
            ranks = {
                (text_modality, other): class_ranks(texts, others, kept, kept),
                (other, text_modality): class_ranks(others, texts, kept, kept),
            }
        else:
            raise ValueError(f"retrieval level must be 'instance' or 'class', got {level!r}")
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
