"""Exact, parallel passes over similarity matrices too large to hold: S = rows @ cols.T, tile by tile.

A pass computes every score of S exactly once and hands each tile to its consumers: retrieval ranks
(``LevelRanks``, one per retrieval level, both directions at once) and nearest-neighbour lists for kNN
(``Neighbours``). Rows and columns are cut into the chunks of one ``Layout``, built so that every
correct (text, item) pair of either level lies in a tile between two chunks of one group:

- an item's captions lie in the item's chunk (instance level);
- a class lies whole in one chunk, or alone in a group of chunks when it is too large (class level);
- unlabelled items (label -1) get chunks of their own, which the class level skips.

Tiles are visited in three tiers: (0) each chunk with itself, (1) the other chunks of its group,
(2) chunks of other groups, which hold wrong answers only. So every query's best correct score is
final before the wrong answers above it are counted, and both scores of a comparison come from the one
product that computed them: ranks are exact, with no tolerance, in both directions.

The tiles of a tier run in a pool of threads, BLAS at one thread each; their results are applied in a
fixed order on the calling thread, so the outcome does not depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from modgap.metrics.compiled import compiled

# Items per chunk: 2048 x 2048 tiles (16 MB in float32) keep BLAS near its peak on this project's machine.
CHUNK_SIZE = 2048
TIERS = (0, 1, 2)


@dataclass(frozen=True)
class Layout:
    """Items cut into chunks; ``group`` and ``labelled`` are given per chunk."""

    chunks: tuple[np.ndarray, ...]
    group: np.ndarray
    labelled: np.ndarray

    def tier(self, r: int, c: int) -> int:
        if r == c:
            return 0
        return 1 if self.group[r] == self.group[c] else 2

    def holds_whole_classes(self, chunk: int) -> bool:
        """Whether the chunk is its group's only chunk (so every class in it lies whole in it)."""
        return int(np.sum(self.group == self.group[chunk])) == 1

    def chunk_of(self, n_items: int) -> np.ndarray:
        """The chunk of every item."""
        owner = np.empty(n_items, dtype=np.int64)
        for number, members in enumerate(self.chunks):
            owner[members] = number
        return owner


def _even_pieces(members: np.ndarray, size: int) -> list[np.ndarray]:
    """``members`` split into the fewest pieces of at most ``size``, as even as possible."""
    return np.array_split(members, -(-len(members) // size)) if len(members) else []


def layout(labels: np.ndarray, chunk_size: int = CHUNK_SIZE) -> Layout:
    """Chunks of at most ``chunk_size`` items: unlabelled items in index order, then whole classes packed in
    label order; a class larger than a chunk is split evenly into a group of its own."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    labels = np.asarray(labels)
    chunks: list[np.ndarray] = []
    groups: list[int] = []
    labelled: list[bool] = []
    packed: list[np.ndarray] = []  # whole classes waiting to fill a chunk
    packed_size = 0

    def add(members: np.ndarray, group: int, is_labelled: bool) -> None:
        chunks.append(members)
        groups.append(group)
        labelled.append(is_labelled)

    def flush() -> None:
        nonlocal packed_size
        if packed:
            add(np.concatenate(packed), len(chunks), True)
            packed.clear()
            packed_size = 0

    for piece in _even_pieces(np.flatnonzero(labels < 0), chunk_size):
        add(piece, len(chunks), False)
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    _, starts = np.unique(labels[order], return_index=True)
    for members in np.split(order, starts[1:]) if len(order) else []:
        if len(members) > chunk_size:  # a group of its own, split evenly
            flush()
            group = len(chunks)
            for piece in _even_pieces(members, chunk_size):
                add(piece, group, True)
            continue
        if packed_size + len(members) > chunk_size:
            flush()
        packed.append(members)
        packed_size += len(members)
    flush()
    return Layout(tuple(chunks), np.array(groups, dtype=np.int64), np.array(labelled, dtype=bool))


def rows_by_chunk(owner: np.ndarray, plan: Layout, n_items: int) -> list[np.ndarray]:
    """The rows (texts) of every chunk: those whose owner item lies in it, in index order."""
    chunk = plan.chunk_of(n_items)[np.asarray(owner, dtype=np.int64)]
    order = np.argsort(chunk, kind="stable")
    return np.split(order, np.searchsorted(chunk[order], np.arange(1, len(plan.chunks))))


def default_threads() -> int:
    """The threads this process may use: the BLAS pool's size (``runtime.configure_threads`` sets it)."""
    sizes = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(sizes, default=1)


def _count(mask: np.ndarray, axis: int) -> np.ndarray:
    # summing bytes into uint16 vectorises (4x faster than into int64) where the sums cannot overflow
    dtype = np.uint16 if mask.shape[axis] < 2**16 else np.int64
    return np.add.reduce(mask.view(np.uint8), axis=axis, dtype=dtype)


def compiled_scores(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scores and thresholds as the compiled passes compare them: floats and integers of one type as they are;
    float16 in float32 (numba has none; float32 holds it exactly); integers mixed with other types in float64
    (exact below 2^53; numba compares signed with unsigned otherwise than numpy). Other types (booleans,
    complex, longer floats) are refused."""
    for array in arrays:
        if array.dtype == np.bool_ or array.dtype.kind not in "fiu" or array.dtype.itemsize > 8:
            raise TypeError(f"similarity scores must be real numbers of at most 64 bits, got {array.dtype}")
    if len({a.dtype for a in arrays}) > 1 and not all(a.dtype.kind == "f" for a in arrays):
        return tuple(a.astype(np.float64) for a in arrays)
    return tuple(a.astype(np.float32) if a.dtype == np.float16 else a for a in arrays)


def count_above_and_equal(
    tile: np.ndarray, row_thresholds: np.ndarray, col_thresholds: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per row and per column of ``tile``: the entries strictly above, and those equal to, that row's or
    column's threshold, ((row above, row equal), (column above, column equal)), in one pass over the tile.

    Entries compare with thresholds as numpy compares them (NaN matches nothing); see ``compiled_scores``
    for the dtypes."""
    tile, row_thresholds, col_thresholds = compiled_scores(tile, row_thresholds, col_thresholds)
    if row_thresholds.shape != tile.shape[:1] or col_thresholds.shape != tile.shape[1:]:
        raise ValueError(f"thresholds of shapes {row_thresholds.shape}, {col_thresholds.shape} for a tile {tile.shape}")
    counts = np.zeros((2, tile.shape[0]), dtype=np.int64), np.zeros((2, tile.shape[1]), dtype=np.int64)
    _count_both_ways(tile, row_thresholds, col_thresholds, counts[0], counts[1])
    return (counts[0][0], counts[0][1]), (counts[1][0], counts[1][1])


@compiled
def _count_both_ways(
    tile: np.ndarray, row_thresholds: np.ndarray, col_thresholds: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> None:
    """Adds to ``rows`` (2, n_rows) and ``cols`` (2, n_cols) each entry's comparisons with its row's and its
    column's threshold: [0] strictly above, [1] equal."""
    for i in range(tile.shape[0]):
        threshold = row_thresholds[i]
        above = 0
        equal = 0
        for j in range(tile.shape[1]):
            value = tile[i, j]
            above += value > threshold
            equal += value == threshold
            cols[0, j] += value > col_thresholds[j]
            cols[1, j] += value == col_thresholds[j]
        rows[0, i] += above
        rows[1, i] += equal


@dataclass(frozen=True)
class Ranks:
    """Where each query's correct answers fall among all answers, ties kept apart.

    ``above``: wrong answers scoring strictly above the query's best correct score; ``tied``: wrong
    answers scoring exactly that; ``best_correct``: correct answers scoring exactly that (at least 1).
    Queries that are not ranked (unlabelled ones at the class level) have ``above`` = -1.
    """

    above: np.ndarray
    tied: np.ndarray
    best_correct: np.ndarray

    @property
    def ranked(self) -> np.ndarray:
        return self.above >= 0

    def hit_probability(self, k: int) -> np.ndarray:
        """Per ranked query: the probability that a correct answer is among the top ``k`` when ties are
        broken uniformly at random. With ``a`` above, ``t`` tied wrong and ``m`` tied correct answers, the
        top k miss every correct one with probability prod_{j < k-a} (t - j) / (t + m - j) (0 once j
        reaches t); for a < k the hit probability is one minus that, else 0. Without ties this is
        1 when a < k; with every answer tied (a collapsed encoder) it is chance, m / (t + m) at k = 1."""
        keep = self.ranked
        above = self.above[keep].astype(np.int64)
        tied = self.tied[keep].astype(np.float64)
        correct = self.best_correct[keep].astype(np.float64)
        miss = np.ones(len(above))
        for j in range(k):
            inside = j < k - above  # the (j+1)-th of the tied places is still within the top k
            factor = np.clip(tied - j, 0.0, None) / (tied + correct - j).clip(1.0)
            miss = np.where(inside, miss * factor, miss)
        return np.where(above < k, 1.0 - miss, 0.0)


class LevelRanks:
    """Ranks at one retrieval level, both ways: every text's rank among the items, every item's among the texts.

    Per query (see ``Ranks``): the wrong answers scoring strictly above its best correct one, the wrong
    answers tying it exactly, and the correct answers at that best score. ``level`` 'instance': a text's
    correct item is its owner; 'class': every item of its owner's class (labelled items only: unlabelled
    texts and items are not ranked).
    """

    def __init__(
        self,
        level: str,
        plan: Layout,
        row_chunks: Sequence[np.ndarray],
        col_chunks: Sequence[np.ndarray],
        owner: np.ndarray,
        labels: np.ndarray,
        dtype=np.float32,
    ) -> None:
        if level not in ("instance", "class"):
            raise ValueError(f"retrieval level must be 'instance' or 'class', got {level!r}")
        self.level, self.plan = level, plan
        self.row_chunks, self.col_chunks = row_chunks, col_chunks
        self.labels = np.asarray(labels)
        self.owner = np.asarray(owner, dtype=np.int64)
        self.row_labels = self.labels[self.owner]
        self.column = np.empty(len(self.labels), dtype=np.int64)  # every item's column within its chunk's tiles
        for cols in col_chunks:
            self.column[cols] = np.arange(len(cols))
        # per side (texts, items): best correct score (in the tiles' dtype: exact comparisons), correct
        # answers at it, wrong answers above it, wrong answers tying it
        self.best = [np.full(n, -np.inf, dtype=dtype) for n in (len(self.owner), len(self.labels))]
        self.best_count = [np.zeros(n, dtype=np.int64) for n in (len(self.owner), len(self.labels))]
        self.above = [np.zeros(n, dtype=np.int64) for n in (len(self.owner), len(self.labels))]
        self.tied = [np.zeros(n, dtype=np.int64) for n in (len(self.owner), len(self.labels))]

    def begin(self, tier: int) -> None:
        pass

    def _holds_correct(self, tier: int) -> bool:
        return tier == 0 if self.level == "instance" else tier < 2

    def _holds_wrong(self, tier: int, r: int) -> bool:
        if self.level == "instance":
            return True
        return tier == 2 or (tier == 0 and self.plan.holds_whole_classes(r))

    def _correct_best(self, r: int, c: int, tile: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per row and per column of the tile: the best score among its correct answers in the tile, and how
        many correct answers there score exactly that (0 where the tile holds none)."""
        if self.level == "instance":  # tier 0: the owner of every row lies among the tile's columns
            owner_column = self.column[self.owner[self.row_chunks[r]]]
            text_best = tile[np.arange(len(tile)), owner_column]
            item_best = np.full(tile.shape[1], -np.inf, dtype=tile.dtype)
            np.maximum.at(item_best, owner_column, text_best)
            item_count = np.zeros(tile.shape[1], dtype=np.int64)
            np.add.at(item_count, owner_column, text_best == item_best[owner_column])
            return (text_best, np.ones(len(tile), dtype=np.int64)), (item_best, item_count)
        same = self.row_labels[self.row_chunks[r]][:, None] == self.labels[self.col_chunks[c]][None, :]
        if not same.all():
            tile = np.where(same, tile, -np.inf)
        text_best, item_best = tile.max(axis=1), tile.max(axis=0)
        text_count = np.where(np.isfinite(text_best), _count(tile == text_best[:, None], axis=1), 0)
        item_count = np.where(np.isfinite(item_best), _count(tile == item_best[None, :], axis=0), 0)
        return (text_best, text_count.astype(np.int64)), (item_best, item_count.astype(np.int64))

    def process(self, tier: int, r: int, c: int, tile: np.ndarray):
        """The tile's contribution, computed on a worker thread without writing shared state."""
        if self.level == "class" and not (self.plan.labelled[r] and self.plan.labelled[c]):
            return None
        indices = self.row_chunks[r], self.col_chunks[c]
        best = self._correct_best(r, c, tile) if self._holds_correct(tier) else None
        counts = None
        if self._holds_wrong(tier, r):
            # the bests are final: from this very tile in tier 0, from the earlier tiers otherwise
            thresholds = [best[side][0] if tier == 0 else self.best[side][indices[side]] for side in (0, 1)]
            counts = []
            for side, (above, equal) in enumerate(count_above_and_equal(tile, *thresholds)):
                # in tier 0 the tile's own correct answers at the best score are among the equal ones
                counts.append((above, equal - best[side][1] if tier == 0 else equal))
        return indices, best, counts

    def apply(self, contribution) -> None:
        if contribution is None:
            return
        indices, best, counts = contribution
        for side, index in enumerate(indices):  # a chunk's indices are distinct: plain fancy indexing is exact
            if best is not None:
                tile_best, tile_count = best[side]
                old_best, old_count = self.best[side][index], self.best_count[side][index]
                self.best_count[side][index] = np.where(
                    tile_best > old_best, tile_count, np.where(tile_best == old_best, old_count + tile_count, old_count)
                )
                self.best[side][index] = np.maximum(old_best, tile_best)
            if counts is not None:
                self.above[side][index] += counts[side][0]
                self.tied[side][index] += counts[side][1]

    def ranks(self) -> tuple[Ranks, Ranks]:
        """(texts among the items, items among the texts)."""
        result = []
        for side, query_labels in enumerate((self.row_labels, self.labels)):
            above = self.above[side].copy()
            if self.level == "class":
                above[query_labels < 0] = -1
            result.append(Ranks(above, self.tied[side].copy(), self.best_count[side].copy()))
        return result[0], result[1]


class Neighbours:
    """The ``k`` best-scoring candidates of every query (kNN: a test point's nearest train points), sorted.

    Workers judge a tile's entries against the lists as they stood when the tier began, so what enters
    a list never depends on the order in which threads finish. Among exactly equal scores the candidate
    met first in the pass order stays (scikit-learn leaves that choice arbitrary too).
    """

    def __init__(self, n_queries: int, k: int, dtype=np.float32) -> None:
        self.k = k
        self.scores = np.full((n_queries, k), -np.inf, dtype=dtype)
        self.index = np.full((n_queries, k), -1, dtype=np.int64)
        self.threshold = self.scores[:, -1].copy()

    def begin(self, tier: int) -> None:
        self.threshold = self.scores[:, -1].copy()

    def candidates(self, queries: np.ndarray, block: np.ndarray, candidate_ids: np.ndarray, axis: int = 1):
        """For the queries with entries in ``block`` that could enter their lists, their best ``k`` such entries
        (-inf where fewer): (queries, scores, candidate ids). Queries are the rows of ``block`` (``axis`` 1) or
        its columns (``axis`` 0: a tile's columns are read in place, never transposed)."""
        if block.size == 0:
            return None
        n_queries = block.shape[0] if axis == 1 else block.shape[1]
        if len(queries) != n_queries or len(candidate_ids) != block.shape[axis]:
            raise ValueError(
                f"{len(queries)} queries and {len(candidate_ids)} candidates for a block of shape {block.shape}"
            )
        block, thresholds = compiled_scores(block, self.threshold)
        best = np.full((n_queries, self.k), -np.inf, dtype=thresholds.dtype)
        place = np.full((n_queries, self.k), -1, dtype=np.int64)
        filled = np.zeros(n_queries, dtype=np.int64)
        _best_k(block, thresholds[queries], axis == 1, best, place, filled)
        hit = np.flatnonzero(filled)
        if len(hit) == 0:
            return None
        place = place[hit]
        return (
            queries[hit],
            best[hit].astype(self.scores.dtype),
            np.where(place >= 0, candidate_ids[place.clip(min=0)], -1),
        )

    def merge(self, found) -> None:
        if found is None:
            return
        queries, scores, index = found
        scores = np.concatenate([self.scores[queries], scores], axis=1)
        index = np.concatenate([self.index[queries], index], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores[queries] = np.take_along_axis(scores, order, axis=1)
        self.index[queries] = np.take_along_axis(index, order, axis=1)


@compiled
def _best_k(
    block: np.ndarray, thresholds: np.ndarray, by_rows: bool, best: np.ndarray, place: np.ndarray, filled: np.ndarray
) -> None:
    """Each query's best entries of ``block`` strictly above its threshold, at most ``k`` (``best``'s width),
    best first and, among equal scores, the earlier candidate first: written into ``best`` (scores), ``place``
    (the candidates' positions along the block) and ``filled`` (how many), which start empty. Queries are the
    block's rows (``by_rows``) or its columns; the block is read in its own order either way."""
    k = best.shape[1]
    floors = thresholds.copy()  # what an entry must beat: the threshold, then the full list's k-th score
    for outer in range(block.shape[0]):
        for inner in range(block.shape[1]):
            value = block[outer, inner]
            query, candidate = (outer, inner) if by_rows else (inner, outer)
            if value > floors[query]:
                slot = filled[query]  # the new entry goes after those of equal score; the last one leaves
                if slot < k:
                    filled[query] += 1
                else:
                    slot = k - 1
                while slot > 0 and best[query, slot - 1] < value:
                    best[query, slot] = best[query, slot - 1]
                    place[query, slot] = place[query, slot - 1]
                    slot -= 1
                best[query, slot] = value
                place[query, slot] = candidate
                if filled[query] == k:
                    floors[query] = max(floors[query], best[query, k - 1])


@dataclass(frozen=True)
class Side:
    """One side (rows or columns) of a pass as kNN sees it: per chunk, how many of its leading entries are
    queries, and the ids of all its entries (query numbers for queries, candidate ids for the rest)."""

    n_queries: Sequence[int]
    ids: Sequence[np.ndarray]


class NeighbourBlocks:
    """Feeds a pass's query x candidate blocks to a ``Neighbours``: leading rows of a chunk against the other
    chunk's trailing columns, and leading columns against trailing rows."""

    def __init__(self, neighbours: Neighbours, plan: Layout, rows: Side, cols: Side) -> None:
        self.neighbours, self.plan, self.rows, self.cols = neighbours, plan, rows, cols

    def begin(self, tier: int) -> None:
        self.neighbours.begin(tier)

    def process(self, tier: int, r: int, c: int, tile: np.ndarray):
        if not (self.plan.labelled[r] and self.plan.labelled[c]):
            return None
        qr, qc = self.rows.n_queries[r], self.cols.n_queries[c]
        row_ids, col_ids = self.rows.ids[r], self.cols.ids[c]
        return (
            self.neighbours.candidates(row_ids[:qr], tile[:qr, qc:], col_ids[qc:]),
            self.neighbours.candidates(col_ids[:qc], tile[qr:, :qc], row_ids[qr:], axis=0),
        )

    def apply(self, contribution) -> None:
        if contribution is not None:
            for found in contribution:
                self.neighbours.merge(found)


def tile_pass(
    rows: np.ndarray,
    cols: np.ndarray,
    row_chunks: Sequence[np.ndarray],
    col_chunks: Sequence[np.ndarray],
    plan: Layout,
    consumers: Sequence,
    threads: int | None = None,
) -> None:
    """Compute ``rows @ cols.T`` tile by tile, tier by tier, and give each tile to every consumer.

    ``row_chunks[r]`` and ``col_chunks[c]`` index the rows and columns of chunk r and c (in tile order).
    A consumer has ``begin(tier)``, ``process(tier, r, c, tile) -> contribution`` (on a worker thread,
    reading shared state only) and ``apply(contribution)`` (on this thread, in a fixed order).
    """
    threads = threads or default_threads()
    row_block = rows[np.concatenate([*row_chunks, np.zeros(0, np.int64)]).astype(np.int64)]  # chunks contiguous
    col_block = cols[np.concatenate([*col_chunks, np.zeros(0, np.int64)]).astype(np.int64)]
    row_edges = np.cumsum([0, *map(len, row_chunks)])
    col_edges = np.cumsum([0, *map(len, col_chunks)])
    n = len(plan.chunks)

    def work(unit: tuple[int, int, list[int]]):
        tier, r, partners = unit
        left = row_block[row_edges[r] : row_edges[r + 1]]
        contributions = []
        for c in partners:
            tile = left @ col_block[col_edges[c] : col_edges[c + 1]].T
            contributions.extend((consumer, consumer.process(tier, r, c, tile)) for consumer in consumers)
        return contributions

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=threads) as pool:
        for tier in TIERS:
            for consumer in consumers:
                consumer.begin(tier)
            units = []
            for r in range(n):
                partners = [
                    c for c in range(n) if plan.tier(r, c) == tier and len(row_chunks[r]) and len(col_chunks[c])
                ]
                if partners:
                    units.append((tier, r, partners))
            for contributions in pool.map(work, units):
                for consumer, contribution in contributions:
                    consumer.apply(contribution)
