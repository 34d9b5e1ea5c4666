"""The low-variance evaluation the claims read: kNN by leave-one-out instead of one seeded split, and clustering
scores averaged over k-means random states instead of one (docs/workflow.md, "Metrics").

The released protocol's single split and single clustering move a run's kNN accuracy and V-Measure by about
as much as a seed of training does; averaging over every query and over many random states takes that
evaluation noise out of the comparison of methods, and reports what is left as its own standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modgap.metrics.kmeans import kmeans_states
from modgap.metrics.measures import partition_scores


@dataclass(frozen=True)
class LeaveOneOut:
    """kNN accuracy with every (or a seeded sample of) stacked point as the query in turn (percent): overall,
    per query modality, and the evaluation's own standard error (0 when every point is a query)."""

    accuracy: float
    by_modality: dict[str, float]
    sd: float
    n_queries: int


def leave_one_out_knn(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    k: int = 5,
    split: str = "point",
    max_queries: int | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
) -> LeaveOneOut:
    """kNN accuracy on the stacked labelled points of every modality, each point classified by the majority of
    its ``k`` nearest other points: no split to draw, so no split-to-split noise (the single seeded split of
    ``KnnProtocol`` moves the accuracy by about as much as a seed of training does).

    ``split`` 'point' leaves the query point alone out (its partners in other modalities stay neighbours, as
    in the released code's point split); 'item' leaves out every modality of the query's item. Neighbours
    that tie in similarity are taken in point order and votes that tie go to the smallest label, so the
    result is deterministic (an encoder that maps everything to one point scores the vote of the first k
    points, about chance). Above ``max_queries`` stacked points, a seeded sample of that many are the
    queries; ``sd`` is then the sampling standard error (finite-population corrected), else 0.
    """
    if split not in ("point", "item"):
        raise ValueError(f"kNN split must be 'point' or 'item', got {split!r}")
    if k < 1 or chunk_size < 1 or (max_queries is not None and max_queries < 1):
        raise ValueError(
            f"leave-one-out kNN needs k, chunk_size and max_queries of at least 1, got k={k}, "
            f"chunk_size={chunk_size}, max_queries={max_queries}"
        )
    labels = np.asarray(labels)
    if not embeddings:
        raise ValueError("leave-one-out kNN needs the embeddings of at least one modality")
    for modality, z in embeddings.items():
        if len(z) != len(labels):
            raise ValueError(f"leave-one-out kNN: {len(z)} {modality} embeddings for {len(labels)} labels")
    keep = labels >= 0
    points = np.ascontiguousarray(np.concatenate([z[keep] for z in embeddings.values()]), dtype=np.float32)
    n_items, n_points = int(keep.sum()), int(keep.sum()) * len(embeddings)
    for number, modality in enumerate(embeddings):  # as compared: in float32
        if not np.isfinite(points[number * n_items : (number + 1) * n_items]).all():
            raise ValueError(f"leave-one-out kNN: the labelled {modality} embeddings contain NaN or infinite values")
    point_labels = np.tile(labels[keep], len(embeddings))
    excluded_per_query = 1 if split == "point" else len(embeddings)
    if n_points - excluded_per_query < k:
        raise ValueError(f"leave-one-out kNN needs {k} neighbours besides the query's own, got {n_points} points")
    queries = np.arange(n_points)
    if max_queries is not None and n_points > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(n_points, max_queries, replace=False))
    classes, point_class = np.unique(point_labels, return_inverse=True)
    correct = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), chunk_size):
        block = queries[start : start + chunk_size]
        scores = points[block] @ points.T
        rows = np.arange(len(block))
        if split == "point":
            scores[rows, block] = -np.inf
        else:  # every modality's point of the query's item
            for offset in range(0, n_points, n_items):
                scores[rows, offset + block % n_items] = -np.inf
        neighbours = k_highest(scores, k)
        votes = (point_class[neighbours][:, :, None] == np.arange(len(classes))).sum(axis=1)
        predicted = np.argmax(votes, axis=1)  # ties: the first, i.e. the smallest label
        correct[start : start + len(block)] = predicted == point_class[block]
    accuracy = float(correct.mean())
    modality_of = queries // n_items
    by_modality = {
        modality: float(100.0 * correct[modality_of == number].mean())
        for number, modality in enumerate(embeddings)
        if (modality_of == number).any()
    }
    n = len(queries)
    sd = 0.0 if n == n_points else math.sqrt(accuracy * (1 - accuracy) / n * (n_points - n) / (n_points - 1))
    return LeaveOneOut(100.0 * accuracy, by_modality, 100.0 * sd, n)


# Columns per block of ``k_highest``'s first pass (a block's columns are strided: the pass reads whole rows).
BLOCK_WIDTH = 64
# A row whose candidates fill more blocks than this many per neighbour (scores tied across the row) is
# selected by a partition of the whole row instead.
CROWDED_BLOCKS_PER_NEIGHBOUR = 8


def k_highest(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` highest-scoring columns (in no particular order) of floating-point ``scores`` without
    NaN (-inf allowed), ties at the k-th score broken towards the lowest column: exact, with no tolerance.

    The columns are cut into blocks; the k-th highest block maximum is a floor under the row's k-th highest
    score (k disjoint blocks reach it), so only the blocks whose maximum reaches the floor are read again.
    """
    rows, cols = scores.shape
    if not np.issubdtype(scores.dtype, np.floating):  # negating an unsigned or a boolean score wraps
        raise TypeError(f"k_highest needs floating-point scores, got {scores.dtype}")
    if not 1 <= k <= cols:
        raise ValueError(f"k_highest needs 1 <= k <= {cols} columns, got k={k}")
    n_blocks = cols // BLOCK_WIDTH
    if n_blocks < k * CROWDED_BLOCKS_PER_NEIGHBOUR:
        return _first_k_with_ties(scores, _kth_highest(scores, k), k)
    # block b holds columns b, b + n_blocks, b + 2 n_blocks, ...; columns past the last whole block are
    # blocks of one column each
    block_max = scores[:, : n_blocks * BLOCK_WIDTH].reshape(rows, BLOCK_WIDTH, n_blocks).max(axis=1)
    block_max = np.concatenate([block_max, scores[:, n_blocks * BLOCK_WIDTH :]], axis=1)
    floor = _kth_highest(block_max, k)
    row_of, block_of = np.nonzero(block_max >= floor[:, None])
    crowded = np.bincount(row_of, minlength=rows) > k * CROWDED_BLOCKS_PER_NEIGHBOUR
    chosen = np.empty((rows, k), dtype=np.int64)
    if crowded.any():
        chosen[crowded] = _first_k_with_ties(scores[crowded], _kth_highest(scores[crowded], k), k)
        keep = ~crowded[row_of]
        row_of, block_of = row_of[keep], block_of[keep]
    whole = block_of < n_blocks
    row_of = np.concatenate([np.repeat(row_of[whole], BLOCK_WIDTH), row_of[~whole]])
    col_of = np.concatenate(
        [
            (block_of[whole, None] + n_blocks * np.arange(BLOCK_WIDTH)).ravel(),
            block_of[~whole] + n_blocks * (BLOCK_WIDTH - 1),
        ]
    )
    values = scores[row_of, col_of]
    candidate = values >= floor[row_of]
    row_of, col_of, values = row_of[candidate], col_of[candidate], values[candidate]
    order = np.lexsort((col_of, -values, row_of))  # by row, the highest first, among equals the lowest column
    row_of, col_of = row_of[order], col_of[order]
    plain = np.flatnonzero(~crowded)
    chosen[plain] = col_of[np.searchsorted(row_of, plain)[:, None] + np.arange(k)]
    return chosen


def _kth_highest(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th highest score."""
    return -np.partition(-scores, k - 1, axis=1)[:, k - 1]


def _first_k_with_ties(scores: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """Each row's k highest-scoring columns, ties at the k-th score (``kth``) broken towards the lowest column."""
    above = scores > kth[:, None]
    tied = scores == kth[:, None]
    room = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
    return np.nonzero(chosen)[1].reshape(len(scores), k)


# The partition scores averaged over k-means random states.
STATE_SCORES = ("v_measure", "homogeneity", "completeness", "nmi", "ari")


def clustering_over_states(
    points: np.ndarray, labels: np.ndarray, k: int, first_state: int = 0, n_states: int = 20, n_init: int = 10
) -> tuple[dict[str, float], dict[str, float]]:
    """KMeans from ``n_states`` random states (``first_state`` and the next ones), each the best of ``n_init``
    starts: the first state's partition scores (the released protocol's single clustering), and the mean
    (``<score>``) and standard deviation (``<score>_sd``) over the states of every partition score: one
    clustering of a run moves its V-Measure by several points from one random state to the next. The states
    run side by side (``kmeans_states``), each as it would alone."""
    states = [(first_state + i) % 2**32 for i in range(n_states)]
    runs = [partition_scores(labels, run.labels) for run in kmeans_states(points, k, states, n_init=n_init)]
    spread = {}
    for score in STATE_SCORES:
        values = np.array([run[score] for run in runs])
        spread[score] = float(values.mean())
        spread[f"{score}_sd"] = float(values.std(ddof=1)) if n_states > 1 else 0.0
    return runs[0], spread
