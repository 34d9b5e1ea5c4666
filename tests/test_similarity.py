"""The tiled passes behind retrieval and kNN (modgap.metrics.similarity): chunking, counting, neighbour lists."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.metrics import similarity


@pytest.mark.parametrize("chunk_size", [1000, 50, 13])
def test_layout_keeps_every_class_whole_in_a_chunk_or_alone_in_a_group(chunk_size):
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(120, 0), np.full(7, 1), np.full(30, 2), np.full(3, 3), np.full(25, -1)])
    labels = labels[rng.permutation(len(labels))]
    plan = similarity.layout(labels, chunk_size)
    members = np.concatenate(plan.chunks)
    assert sorted(members.tolist()) == list(range(len(labels)))  # every item once
    assert max(map(len, plan.chunks)) <= chunk_size
    chunk_of = plan.chunk_of(len(labels))
    for label in np.unique(labels[labels >= 0]):
        chunks = np.unique(chunk_of[labels == label])
        groups = np.unique(plan.group[chunks])
        assert len(groups) == 1  # a class never spans two groups
        if len(chunks) > 1:  # a class over several chunks has them to itself
            assert set(labels[np.concatenate([plan.chunks[c] for c in chunks])]) == {label}
            assert np.sum(plan.group == groups[0]) == len(chunks)
    for chunk, labelled in zip(plan.chunks, plan.labelled):
        assert (labels[chunk] >= 0).all() if labelled else (labels[chunk] < 0).all()


def test_layout_tiers_order_a_chunk_its_group_then_the_rest():
    plan = similarity.layout(np.array([0] * 5 + [1] * 2 + [2] * 2), chunk_size=4)
    # class 0 is split into a group of two chunks; classes 1 and 2 share one chunk
    assert [len(c) for c in plan.chunks] == [3, 2, 4]
    assert [plan.tier(0, 0), plan.tier(0, 1), plan.tier(1, 0), plan.tier(0, 2)] == [0, 1, 1, 2]
    assert not plan.holds_whole_classes(0) and plan.holds_whole_classes(2)


def test_rows_by_chunk_follow_their_owner():
    plan = similarity.layout(np.array([1, 0, 1, 0]), chunk_size=2)
    owner = np.array([3, 0, 0, 2, 1])
    rows = similarity.rows_by_chunk(owner, plan, 4)
    chunk_of = plan.chunk_of(4)
    for number, chunk_rows in enumerate(rows):
        assert (chunk_of[owner[chunk_rows]] == number).all()
    assert sorted(np.concatenate(rows).tolist()) == list(range(5))


def test_count_above_and_equal_is_strict_per_row_and_per_column():
    tile = np.array([[0.5, 0.2, 0.9], [0.1, 0.1, 0.3]], dtype=np.float32)
    rows, cols = similarity.count_above_and_equal(
        tile, np.array([0.5, 0.1], dtype=np.float32), np.array([0.1, 0.1, 0.3], dtype=np.float32)
    )
    assert [c.tolist() for c in rows] == [[1, 1], [1, 2]]
    assert [c.tolist() for c in cols] == [[1, 1, 1], [1, 1, 1]]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_count_above_and_equal_agrees_with_numpy_on_ties_infinities_and_nan(dtype):
    rng = np.random.default_rng(3)
    tile = rng.integers(-3, 4, size=(37, 53)).astype(dtype) / 4  # few distinct values: many exact ties
    tile[0, :5] = [np.inf, -np.inf, np.nan, 0.25, -np.inf]
    row_thresholds, col_thresholds = tile[:, 7].copy(), tile[11].copy()  # thresholds met exactly
    row_thresholds[1], col_thresholds[2] = -np.inf, np.nan
    (row_above, row_equal), (col_above, col_equal) = similarity.count_above_and_equal(
        tile, row_thresholds, col_thresholds
    )
    np.testing.assert_array_equal(row_above, (tile > row_thresholds[:, None]).sum(axis=1))
    np.testing.assert_array_equal(row_equal, (tile == row_thresholds[:, None]).sum(axis=1))
    np.testing.assert_array_equal(col_above, (tile > col_thresholds[None, :]).sum(axis=0))
    np.testing.assert_array_equal(col_equal, (tile == col_thresholds[None, :]).sum(axis=0))
    assert col_above[2] == col_equal[2] == 0  # a NaN threshold: nothing above or equal


def test_count_above_and_equal_refuses_thresholds_that_do_not_fit_the_tile():
    with pytest.raises(ValueError, match="thresholds of shapes"):
        similarity.count_above_and_equal(np.zeros((2, 3)), np.zeros(3), np.zeros(2))


def test_neighbours_keep_the_best_k_and_the_earlier_of_equal_scores():
    neighbours = similarity.Neighbours(2, k=2, dtype=np.float64)
    neighbours.begin(0)
    block = np.array([[0.1, 0.9, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]])
    neighbours.merge(neighbours.candidates(np.array([0, 1]), block, np.array([10, 11, 12, 13])))
    assert neighbours.index.tolist() == [[11, 13], [10, 11]] and neighbours.scores[0].tolist() == [0.9, 0.9]
    neighbours.begin(1)  # judged against the lists as they stand when the tier begins
    later = np.array([[0.95, 0.9], [0.0, 0.2]])
    neighbours.merge(neighbours.candidates(np.array([0, 1]), later, np.array([20, 21])))
    assert neighbours.index.tolist() == [[20, 11], [21, 10]]


def test_neighbours_read_columns_as_queries_without_a_transpose():
    rng = np.random.default_rng(1)
    block = rng.normal(size=(600, 3))  # 600 candidates (rows) for 3 queries (columns): primed and sparse
    by_columns, by_rows = similarity.Neighbours(3, 5), similarity.Neighbours(3, 5)
    for neighbours, found in ((by_columns, lambda n: n.candidates(np.arange(3), block, np.arange(600), axis=0)),
                              (by_rows, lambda n: n.candidates(np.arange(3), block.T.copy(), np.arange(600)))):  # fmt: skip
        neighbours.begin(0)
        neighbours.merge(found(neighbours))
    np.testing.assert_array_equal(by_columns.index, by_rows.index)
    np.testing.assert_array_equal(by_columns.index, np.argsort(-block, axis=0)[:5].T)


def test_tile_pass_shows_each_score_once_per_consumer():
    class Collect:
        def __init__(self):
            self.seen = np.zeros((9, 7), dtype=int)
            self.tiers = []

        def begin(self, tier):
            self.tiers.append(tier)

        def process(self, tier, r, c, tile):
            return r, c, tile

        def apply(self, contribution):
            r, c, tile = contribution
            np.testing.assert_allclose(tile, rows[row_chunks[r]] @ cols[plan.chunks[c]].T)
            self.seen[np.ix_(row_chunks[r], plan.chunks[c])] += 1

    rng = np.random.default_rng(2)
    rows, cols = rng.normal(size=(9, 4)), rng.normal(size=(7, 4))
    plan = similarity.layout(np.array([0, 0, 0, 1, 1, 2, -1]), chunk_size=2)
    row_chunks = similarity.rows_by_chunk(np.array([0, 1, 2, 3, 4, 5, 6, 0, 3]), plan, 7)
    consumer = Collect()
    similarity.tile_pass(rows, cols, row_chunks, list(plan.chunks), plan, [consumer], threads=2)
    assert (consumer.seen == 1).all() and consumer.tiers == [0, 1, 2]


@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_neighbour_candidates_are_each_querys_best_above_its_threshold_earlier_first_among_equals(axis, dtype):
    """Against a full sort: per query, its k best entries above the threshold the tier began with, ordered by
    score and then by position along the block; queries with none are left out."""
    rng = np.random.default_rng(4)
    block = (rng.integers(-4, 5, size=(23, 41)) / 4).astype(dtype)  # nine distinct values: ties everywhere
    block[2] = -np.inf
    queries_by_rows = block if axis == 1 else block.T
    n_queries, k = queries_by_rows.shape[0], 4
    neighbours = similarity.Neighbours(n_queries + 3, k, dtype=dtype)  # float16 lists too: numba has none
    neighbours.begin(0)
    neighbours.threshold[:] = rng.choice([-np.inf, 0.0, 0.5, 1.0], size=n_queries + 3)
    queries = np.arange(n_queries) + 3
    candidate_ids = 100 + np.arange(queries_by_rows.shape[1])
    found = neighbours.candidates(queries, block, candidate_ids, axis=axis)
    expected = []
    for number, row in enumerate(queries_by_rows.astype(np.float64)):
        above = np.flatnonzero(row > neighbours.threshold[queries[number]])
        order = above[np.lexsort((above, -row[above]))][:k]  # by score, then by position
        if len(order):
            scores = np.full(k, -np.inf)
            scores[: len(order)] = row[order]
            ids = np.full(k, -1)
            ids[: len(order)] = candidate_ids[order]
            expected.append((queries[number], scores, ids))
    assert found[0].tolist() == [e[0] for e in expected]
    np.testing.assert_array_equal(found[1], np.array([e[1] for e in expected]))
    np.testing.assert_array_equal(found[2], np.array([e[2] for e in expected]))


def test_neighbour_candidates_refuse_queries_that_do_not_fit_the_block():
    neighbours = similarity.Neighbours(5, k=2)
    neighbours.begin(0)
    with pytest.raises(ValueError, match="2 queries and 4 candidates for a block of shape"):
        neighbours.candidates(np.arange(2), np.zeros((3, 4), dtype=np.float32), np.arange(4))


def test_count_above_and_equal_compares_integers_exactly():
    tile = np.array([[3, -1, 2**40], [0, 7, 7]], dtype=np.int64)
    rows, cols = similarity.count_above_and_equal(tile, np.array([2, 7], dtype=np.uint64), np.array([0, 7, 2**40]))
    assert [c.tolist() for c in rows] == [[2, 0], [0, 2]]
    assert [c.tolist() for c in cols] == [[1, 0, 0], [1, 1, 1]]


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, np.longdouble])
def test_compiled_passes_refuse_scores_that_are_not_real_numbers_of_64_bits(dtype):
    if np.dtype(dtype).itemsize <= 8 and np.dtype(dtype).kind == "f":
        pytest.skip("longdouble is float64 on this platform")
    tile = np.ones((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match="real numbers of at most 64 bits"):
        similarity.count_above_and_equal(tile, np.ones(2), np.ones(3))


def test_integer_scores_of_one_type_are_compared_exactly_beyond_float64s_integers():
    big = 2**54
    tile = np.array([[big, big + 1, big - 1]], dtype=np.int64)  # all three equal in float64
    rows, cols = similarity.count_above_and_equal(tile, np.array([big]), np.array([big, big, big]))
    assert [c.tolist() for c in rows] == [[1], [1]]
    assert [c.tolist() for c in cols] == [[0, 1, 0], [1, 0, 0]]
