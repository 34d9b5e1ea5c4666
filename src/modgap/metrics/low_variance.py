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

from modgap.metrics.compiled import compiled
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


def _check_arguments(k: int, split: str, max_queries: int | None, chunk_size: int = 1) -> None:
    if split not in ("point", "item"):
        raise ValueError(f"kNN split must be 'point' or 'item', got {split!r}")
    if k < 1 or chunk_size < 1 or (max_queries is not None and max_queries < 1):
        raise ValueError(
            f"leave-one-out kNN needs k, chunk_size and max_queries of at least 1, got k={k}, "
            f"chunk_size={chunk_size}, max_queries={max_queries}"
        )


def query_points(n_points: int, max_queries: int | None, seed: int) -> np.ndarray:
    """The stacked points that are leave-one-out queries, in order: all, or above ``max_queries`` points a seeded
    sample of that many."""
    if max_queries is not None and n_points > max_queries:
        return np.sort(np.random.default_rng(seed).choice(n_points, max_queries, replace=False))
    return np.arange(n_points)


class CrossModalNeighbours:
    """Every leave-one-out query's ``k`` best points of another modality, gathered from similarity passes that
    retrieval makes anyway (the text against every other modality), so that leave-one-out computes only the
    scores no pass gave it.

    Points are numbered as ``leave_one_out_knn`` stacks them. A list holds its best ``k`` points by score and,
    among equal scores, the lowest point number first: the order ``k_highest`` keeps, so lists merged from
    any number of tiles, in any order, give the neighbours of one pass over a whole row. Leave-one-out
    compares float32 scores; embeddings of another dtype are not gathered (their passes score in it).
    """

    def __init__(
        self,
        embeddings: Mapping[str, np.ndarray],
        labels: np.ndarray,
        k: int = 5,
        split: str = "point",
        max_queries: int | None = None,
        seed: int = 0,
    ) -> None:
        _check_arguments(k, split, max_queries)
        labels = np.asarray(labels)
        keep = labels >= 0
        self.k, self.split, self.names = k, split, list(embeddings)
        self.n_items = int(keep.sum())
        self.queries = query_points(self.n_items * len(self.names), max_queries, seed)
        self.slot = np.full(self.n_items * len(self.names), -1, dtype=np.int64)  # point -> its list
        self.slot[self.queries] = np.arange(len(self.queries))
        self.rank = np.full(len(labels), -1, dtype=np.int64)  # item -> its number among the labelled
        self.rank[keep] = np.arange(self.n_items)
        self.scores = np.full((len(self.queries), k), -np.inf, dtype=np.float32)
        self.points = np.full((len(self.queries), k), -1, dtype=np.int64)
        self.covered: set[frozenset[str]] = set()
        self.usable = all(np.asarray(z).dtype == np.float32 for z in embeddings.values())

    def point_numbers(self, modality: str, items: np.ndarray) -> np.ndarray:
        """The stacked point of each of ``items`` in ``modality`` (-1: unlabelled, not a point)."""
        rank = self.rank[items]
        return np.where(rank >= 0, self.names.index(modality) * self.n_items + rank, -1)

    def consumer(self, row_modality: str, col_modality: str, row_chunks, col_chunks):
        """A consumer (``similarity.tile_pass``) of the pass ``row_modality @ col_modality.T`` whose chunks hold
        ``row_chunks`` and ``col_chunks`` (item indices); None where the pass cannot serve (not float32)."""
        if not self.usable or row_modality == col_modality:
            return None
        self.covered.add(frozenset((row_modality, col_modality)))
        return _CrossModalBlocks(
            self,
            [self.point_numbers(row_modality, members) for members in row_chunks],
            [self.point_numbers(col_modality, members) for members in col_chunks],
        )

    def merge(self, slots: np.ndarray, scores: np.ndarray, points: np.ndarray) -> None:
        """Fold lists found in one tile into the queries' lists, keeping the best ``k`` in their order."""
        scores = np.concatenate([self.scores[slots], scores], axis=1)
        points = np.concatenate([self.points[slots], points], axis=1)
        order = np.lexsort((points, -scores), axis=1)[:, : self.k]
        self.scores[slots] = np.take_along_axis(scores, order, axis=1)
        self.points[slots] = np.take_along_axis(points, order, axis=1)


class _CrossModalBlocks:
    """Feeds one pass's tiles to a ``CrossModalNeighbours``: the queries among a tile's rows against its columns,
    and those among its columns against its rows. Each tile is judged against the lists as they stood when
    the tier began, so what a list keeps does not depend on which thread finishes first."""

    def __init__(self, lists: CrossModalNeighbours, row_points, col_points) -> None:
        self.lists = lists
        self.sides = []
        for points in (row_points, col_points):
            slots = [np.where(p >= 0, lists.slot[p.clip(min=0)], -1) for p in points]  # -1: not a query
            positions = [np.flatnonzero(s >= 0) for s in slots]
            self.sides.append((points, [s[q] for s, q in zip(slots, positions)], positions))

    def begin(self, tier: int) -> None:
        self.floor_scores = self.lists.scores[:, -1].copy()
        self.floor_points = self.lists.points[:, -1].copy()

    def _found(self, tile, by_rows, query_points, slots, positions, candidates):
        if len(slots) == 0:
            return None
        k = self.lists.k
        best = np.full((len(slots), k), -np.inf, dtype=np.float32)
        points = np.full((len(slots), k), -1, dtype=np.int64)
        filled = np.zeros(len(slots), dtype=np.int64)
        # the query's own item in the other modality is left out with it under the item split
        n_items = self.lists.n_items
        partners = query_points % n_items if self.lists.split == "item" else np.full(len(slots), -1)
        _best_k_in_order(
            tile,
            by_rows,
            positions,
            candidates,
            np.where(candidates >= 0, candidates % n_items, -2),  # -2: no item, never a partner
            partners,
            self.floor_scores[slots],
            self.floor_points[slots],
            best,
            points,
            filled,
        )
        hit = filled > 0
        return slots[hit], best[hit], points[hit]

    def process(self, tier: int, r: int, c: int, tile: np.ndarray):
        (row_points, row_slots, row_positions), (col_points, col_slots, col_positions) = self.sides
        return (
            self._found(tile, True, row_points[r][row_positions[r]], row_slots[r], row_positions[r], col_points[c]),
            self._found(tile, False, col_points[c][col_positions[c]], col_slots[c], col_positions[c], row_points[r]),
        )

    def apply(self, contribution) -> None:
        for found in contribution:
            if found is not None and len(found[0]):
                self.lists.merge(*found)


@compiled
def _best_k_in_order(
    tile, by_rows, positions, candidates, items, partners, floor_scores, floor_points, best, points, filled
):
    """Each query's best candidates of the tile, at most ``k`` (``best``'s width): by score, then by the lowest
    point number, those that come before the query's floor (the k-th of its list when the tier began). Queries
    are the rows (``by_rows``) or columns at ``positions``; ``candidates`` numbers the other side's points (-1:
    none) and ``items`` their items; a candidate of the query's ``partners`` item is left out. The tile is read
    in its own order either way."""
    k = best.shape[1]
    floor_scores, floor_points = floor_scores.copy(), floor_points.copy()
    n_outer = len(positions) if by_rows else tile.shape[0]
    n_inner = tile.shape[1] if by_rows else len(positions)
    for outer in range(n_outer):
        for inner in range(n_inner):
            query, other = (outer, inner) if by_rows else (inner, outer)
            value = tile[positions[query], other] if by_rows else tile[other, positions[query]]
            point = candidates[other]
            if value > floor_scores[query] or (value == floor_scores[query] and point < floor_points[query]):
                if point < 0 or items[other] == partners[query]:
                    continue
                slot = filled[query]  # sorted by score, then point; the last one leaves a full list
                if slot < k:
                    filled[query] += 1
                else:
                    slot = k - 1
                while slot > 0 and (
                    best[query, slot - 1] < value
                    or (best[query, slot - 1] == value and points[query, slot - 1] > point)
                ):
                    best[query, slot] = best[query, slot - 1]
                    points[query, slot] = points[query, slot - 1]
                    slot -= 1
                best[query, slot] = value
                points[query, slot] = point
                if filled[query] == k:
                    floor_scores[query], floor_points[query] = best[query, -1], points[query, -1]


def leave_one_out_knn(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    k: int = 5,
    split: str = "point",
    max_queries: int | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
    cross: CrossModalNeighbours | None = None,
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

    ``cross``: the queries' neighbours among the modality pairs it covers, gathered from retrieval's passes
    (built with the same arguments); only the other scores are computed here, and the result is the same.
    """
    _check_arguments(k, split, max_queries, chunk_size)
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
    queries = query_points(n_points, max_queries, seed)
    names = list(embeddings)
    if cross is not None and (
        cross.names != names or cross.k != k or cross.split != split or not np.array_equal(cross.queries, queries)
    ):
        raise ValueError("leave-one-out kNN: the cross-modal neighbours were gathered for other arguments")
    covered = cross.covered if cross is not None else set()
    classes, point_class = np.unique(point_labels, return_inverse=True)
    correct = np.empty(len(queries), dtype=bool)
    modality_of = queries // n_items
    for number, modality in enumerate(names):
        # the points whose scores no pass gave: the query's own modality and every modality not paired with it
        columns = [o for o, other in enumerate(names) if o == number or frozenset((modality, other)) not in covered]
        candidates = np.concatenate([np.arange(o * n_items, (o + 1) * n_items) for o in columns])
        others = points if len(columns) == len(names) else points[candidates]
        where = np.flatnonzero(modality_of == number)
        for start in range(0, len(where), chunk_size):
            at = where[start : start + chunk_size]
            block = queries[at]
            scores = points[block] @ others.T
            rows = np.arange(len(block))
            if split == "point":
                scores[rows, np.searchsorted(candidates, block)] = -np.inf
            else:  # every modality's point of the query's item among the columns
                for offset in range(0, len(candidates), n_items):
                    scores[rows, offset + block % n_items] = -np.inf
            found = candidates[k_highest(scores, min(k, len(candidates)))]
            if covered:
                found = _best_of(scores[rows[:, None], np.searchsorted(candidates, found)], found, cross, at, k)
            votes = (point_class[found][:, :, None] == np.arange(len(classes))).sum(axis=1)
            predicted = np.argmax(votes, axis=1)  # ties: the first, i.e. the smallest label
            correct[at] = predicted == point_class[block]
    accuracy = float(correct.mean())
    by_modality = {
        modality: float(100.0 * correct[modality_of == number].mean())
        for number, modality in enumerate(embeddings)
        if (modality_of == number).any()
    }
    n = len(queries)
    sd = 0.0 if n == n_points else math.sqrt(accuracy * (1 - accuracy) / n * (n_points - n) / (n_points - 1))
    return LeaveOneOut(100.0 * accuracy, by_modality, 100.0 * sd, n)


def _best_of(scores: np.ndarray, found: np.ndarray, cross: CrossModalNeighbours, slots: np.ndarray, k: int):
    """The best ``k`` of each query's neighbours found here (``found``, scored ``scores``) and those gathered
    from the passes (``cross`` lists ``slots``): by score, then by the lowest point number."""
    scores = np.concatenate([scores, cross.scores[slots]], axis=1)
    points = np.concatenate([found, cross.points[slots]], axis=1)
    order = np.lexsort((points, -scores), axis=1)[:, :k]
    return np.take_along_axis(points, order, axis=1)


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
