"""KMeans (modgap.metrics.kmeans) against scikit-learn's."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from modgap.metrics.kmeans import kmeans


def blobs(n=600, d=16, k=5, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(k, size=n)
    points = rng.normal(size=(k, d))[labels] * 4 + spread * rng.normal(size=(n, d))
    return points.astype(np.float32), labels


def test_separated_clusters_are_found_exactly():
    points, labels = blobs()
    result = kmeans(points, 5, n_init=10, random_state=0)
    assert adjusted_rand_score(labels, result.labels) == 1.0
    reference = KMeans(5, n_init=10, random_state=0).fit(points)
    assert result.inertia == pytest.approx(reference.inertia_, rel=1e-5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overlapping_clusters_reach_scikit_learns_inertia(seed):
    """Several local optima: the best of ten runs is as good as scikit-learn's best of ten (within 1 %)."""
    points, _ = blobs(n=2000, d=32, k=8, spread=4.0, seed=seed)
    result = kmeans(points, 8, n_init=10, random_state=seed)
    reference = KMeans(8, n_init=10, random_state=seed).fit(points)
    assert result.inertia <= reference.inertia_ * 1.01
    distances = (
        (points[:, None, :] - np.stack([points[result.labels == j].mean(0) for j in range(8)])[None]) ** 2
    ).sum(-1)
    np.testing.assert_array_equal(result.labels, distances.argmin(axis=1))  # a fixed point: labels of its centres
    assert result.inertia == pytest.approx(distances.min(axis=1).sum(), rel=1e-4)


def test_same_seed_same_clustering_and_more_runs_never_worse():
    points, _ = blobs(n=800, d=8, k=6, spread=3.0, seed=4)
    first, again = kmeans(points, 6, n_init=3, random_state=7), kmeans(points, 6, n_init=3, random_state=7)
    np.testing.assert_array_equal(first.labels, again.labels)
    single = kmeans(points, 6, n_init=1, random_state=7)
    assert kmeans(points, 6, n_init=10, random_state=7).inertia <= single.inertia + 1e-6


def test_edge_cases():
    points, _ = blobs(n=30, d=3)
    assert (kmeans(points, 1, n_init=2).labels == 0).all()
    assert len(np.unique(kmeans(points, 30, n_init=1).labels)) == 30  # every point its own cluster
    with pytest.raises(ValueError, match="k=31"):
        kmeans(points, 31)


def test_non_finite_points_are_refused():
    points, _ = blobs(n=30, d=3)
    points[4, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        kmeans(points, 3)


@pytest.mark.parametrize("seed", range(6))
def test_lloyd_from_the_same_seeds_equals_scikit_learns(seed):
    """The stopping test, the final labels and the inertia are scikit-learn's: started from this module's
    k-means++ seeds, scikit-learn's KMeans ends in the same clustering after as many steps."""
    from modgap.metrics.kmeans import kmeans_plus_plus

    points, _ = blobs(n=500, d=6, k=4, spread=3.0, seed=seed)
    points = points.astype(np.float64)
    ours = kmeans(points, 4, n_init=1, random_state=seed)
    norms = np.einsum("ij,ij->i", points, points)
    seeds = kmeans_plus_plus(points, norms, 4, 1, [np.random.default_rng(seed)])[0]
    reference = KMeans(4, init=seeds, n_init=1).fit(points)
    np.testing.assert_array_equal(ours.labels, reference.labels_)
    assert ours.iterations == reference.n_iter_
    assert ours.inertia == pytest.approx(reference.inertia_, rel=1e-9)


@pytest.mark.parametrize("n_init", [1, 3])
def test_states_side_by_side_equal_each_state_alone(n_init):
    """Running many random states in one pass changes nothing: each state's clustering is the one it gets
    alone (same seeds, same Lloyd steps), including where states stop after different numbers of steps."""
    from modgap.metrics.kmeans import kmeans_states

    points, _ = blobs(n=600, d=8, k=6, spread=6.0, seed=3)
    points = points.astype(np.float64)
    together = kmeans_states(points, 6, [11, 12, 13, 14, 15], n_init=n_init)
    alone = [kmeans(points, 6, n_init=n_init, random_state=state) for state in [11, 12, 13, 14, 15]]
    assert len({run.iterations for run in alone}) > 1  # the states stop at different steps
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_array_equal(batched.labels, single.labels)
        assert batched.iterations == single.iterations
        assert batched.inertia == pytest.approx(single.inertia, rel=1e-12)
    with pytest.raises(ValueError, match="at least one random state"):
        kmeans_states(points, 6, [])


def test_what_kmeans_cannot_cluster_is_named():
    """Arguments that used to fail deep inside (or, for a random state of None, cluster differently on every
    call) are refused with the argument named; a numpy array of states is a sequence like any other."""
    from modgap.metrics.kmeans import kmeans_states

    points, _ = blobs(n=30, d=3)
    for bad, match in (
        (dict(n_init=0), "n_init >= 1"),
        (dict(n_init=-2), "n_init >= 1"),
        (dict(max_iter=0), "max_iter >= 1"),
        (dict(random_state=None), "non-negative integers, got None"),
        (dict(random_state=-1), "non-negative integers, got -1"),
    ):
        with pytest.raises(ValueError, match=match):
            kmeans(points, 3, **bad)
    for shape in ((30,), (30, 0), (30, 3, 1)):
        with pytest.raises(ValueError, match=re.escape(f"got shape {shape}")):
            kmeans(np.zeros(shape, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="at least one random state"):
        kmeans_states(points, 3, np.array([], dtype=int))
    from_array = kmeans_states(points, 3, np.array([4, 5]), n_init=2)
    from_list = kmeans_states(points, 3, [4, 5], n_init=2)
    assert all((a.labels == b.labels).all() and a.inertia == b.inertia for a, b in zip(from_array, from_list))


def test_integer_points_are_clustered_as_float64():
    grid = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]])
    result = kmeans(grid, 2, n_init=2)
    reference = kmeans(grid.astype(np.float64), 2, n_init=2)
    np.testing.assert_array_equal(result.labels, reference.labels)
    assert result.inertia == reference.inertia == pytest.approx(8 / 3)


def test_nearest_centres_is_numpys_argmax_first_among_equals():
    """The compiled assignment step gives numpy's labels to the bit: x.c - |c|^2 / 2 rounded as numpy rounds
    it, the first centre among equal scores, and whether each label moved."""
    from modgap.metrics.kmeans import _nearest_centres

    rng = np.random.default_rng(0)
    n, k, all_runs = 300, 4, 5
    runs = np.array([0, 2, 4])
    scores = rng.integers(-2, 3, size=(n, len(runs) * k)).astype(np.float32)  # ties in most rows
    scores[:20] += rng.normal(size=(20, len(runs) * k)).astype(np.float32) * 1e-7  # rounding decides these
    half_norms = (rng.integers(-2, 3, size=len(runs) * k) / 2 + 1e-8).astype(np.float32)
    labels = rng.integers(-1, k, size=(all_runs, n))
    assigned = np.empty((len(runs), n), dtype=np.int64)
    moved = np.empty((len(runs), n), dtype=np.bool_)
    _nearest_centres(scores, half_norms, k, labels, runs, assigned, moved)
    expected = (scores - half_norms[None, :]).reshape(n, len(runs), k).argmax(axis=2).T
    np.testing.assert_array_equal(assigned, expected)
    np.testing.assert_array_equal(moved, expected != labels[runs])


@pytest.mark.parametrize("moving", [0.05, 1.0])
def test_per_cluster_sums_follow_the_moved_points(moving):
    """Sums and counts brought up to date from the moved points alone (or rebuilt when most move) equal
    those summed afresh from the new labels (integer-valued points: every sum is exact)."""
    from modgap.metrics.kmeans import _update_sums

    rng = np.random.default_rng(1)
    n, d, k, all_runs = 400, 5, 3, 4
    runs = np.array([1, 3])
    points = rng.integers(-5, 6, size=(n, d)).astype(np.float64)
    labels = rng.integers(0, k, size=(all_runs, n))
    sums, counts = np.zeros((all_runs, k, d)), np.zeros((all_runs, k))
    for run in range(all_runs):
        np.add.at(sums[run], labels[run], points)
        counts[run] = np.bincount(labels[run], minlength=k)
    assigned = labels[runs].copy()
    change = rng.random(assigned.shape) < moving
    assigned[change] = rng.integers(0, k, size=int(change.sum()))
    moved = assigned != labels[runs]
    untouched = sums[[0, 2]].copy()
    _update_sums(sums, counts, points, runs, labels, assigned, moved, k)
    for slot, run in enumerate(runs):
        expected = np.zeros((k, d))
        np.add.at(expected, assigned[slot], points)
        np.testing.assert_array_equal(sums[run], expected)
        np.testing.assert_array_equal(counts[run], np.bincount(assigned[slot], minlength=k))
    np.testing.assert_array_equal(sums[[0, 2]], untouched)


def test_kernels_compile_where_numba_has_nowhere_to_cache_them():
    """A function numba cannot cache (here: one with no source file, as a read-only install without a writable
    home leaves the package's kernels) is compiled in the process instead of failing the import."""
    from modgap.metrics.compiled import compiled

    namespace: dict = {}
    exec("def double(x):\n    return 2 * x\n", namespace)
    assert compiled(namespace["double"])(21) == 42


def test_points_whose_squared_norms_overflow_are_refused():
    points, _ = blobs(n=40, d=3)
    points[0] = 3e19  # finite in float32, its squared norm is not
    with pytest.raises(ValueError, match="squared norms overflow float32"):
        kmeans(points, 3)
