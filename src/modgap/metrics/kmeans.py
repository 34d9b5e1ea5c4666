"""KMeans: Lloyd's algorithm from greedy k-means++ seeds, best of ``n_init`` runs, as scikit-learn runs it.

Same seeding rule, tolerance and stopping test as scikit-learn's ``KMeans``. The ``n_init`` runs go side
by side: each seeding or Lloyd step of every run is one wide product with the data, which reads the
data once instead of once per run; once few points change cluster, a step moves only those between
the per-cluster sums instead of summing every cluster again. The steps between the products (each point's
nearest centre, which labels moved, the one-hot matrices) are compiled with numba: in numpy they took as long
as the products. (Bounds that skip distance computations, Elkan's or Hamerly's, prune little on embeddings:
in hundreds of dimensions a point's distances to all centres are close.)

The random draws differ from scikit-learn's, so clusterings can differ where KMeans has several local
optima; an empty cluster keeps its previous centre (scikit-learn moves it to a far point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modgap.metrics.compiled import compiled


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray
    inertia: float
    iterations: int
    flop: float  # floating-point operations of the distance products of all runs (for benchmarks)


def _squared_distances(points: np.ndarray, point_norms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n_points, n_centres) squared Euclidean distances, clipped at 0 against rounding."""
    distances = points @ centres.T
    distances *= -2.0
    distances += point_norms[:, None]
    distances += np.einsum("ij,ij->i", centres, centres)[None, :]
    return np.maximum(distances, 0.0, out=distances)


def local_trials(k: int) -> int:
    """Candidates drawn per k-means++ step: scikit-learn's 2 + log(k)."""
    return 2 + int(np.log(k))


def kmeans_plus_plus(
    points: np.ndarray, point_norms: np.ndarray, k: int, n_init: int, rngs: Sequence[np.random.Generator]
) -> np.ndarray:
    """Greedy k-means++ seeds for ``n_init`` runs per random generator, all at once: (len(rngs) * n_init, k, d).

    Each step draws 2 + log(k) candidates per run with probability proportional to the squared distance to
    the nearest seed so far and keeps the one that lowers the run's total the most (scikit-learn's rule).
    Each generator draws for its own ``n_init`` runs only, so a random state's seeds do not depend on which
    other states run beside it.
    """
    n = len(points)
    trials = local_trials(k)
    n_runs = len(rngs) * n_init
    seeds = np.empty((n_runs, k), dtype=np.int64)
    seeds[:, 0] = np.concatenate([rng.integers(n, size=n_init) for rng in rngs])
    closest = _squared_distances(points, point_norms, points[seeds[:, 0]])  # (n, n_runs): to the nearest seed
    runs = np.arange(n_runs)
    for step in range(1, k):
        cumulative = np.cumsum(closest, axis=0, dtype=np.float64)
        draws = np.concatenate([rng.random((n_init, trials)) for rng in rngs]) * cumulative[-1][:, None]
        candidates = np.stack([np.searchsorted(cumulative[:, run], draws[run]) for run in runs]).clip(max=n - 1)
        distances = _squared_distances(points, point_norms, points[candidates.ravel()]).reshape(n, n_runs, trials)
        lowered = np.minimum(distances, closest[:, :, None], out=distances)
        best = np.argmin(lowered.sum(axis=0), axis=1)
        seeds[:, step] = candidates[runs, best]
        closest = lowered[:, runs, best]
    return points[seeds]


def kmeans(
    points: np.ndarray, k: int, *, n_init: int = 10, random_state: int = 0, max_iter: int = 300, tol: float = 1e-4
) -> Clustering:
    """The lowest-inertia clustering of ``n_init`` Lloyd runs from k-means++ seeds.

    A run stops when no label changes, or when its centres move by at most ``tol`` times the data's mean
    per-feature variance in total squared distance (its labels are then those of the final centres), or
    after ``max_iter`` steps: scikit-learn's tests.
    """
    return kmeans_states(points, k, [random_state], n_init=n_init, max_iter=max_iter, tol=tol)[0]


def kmeans_states(
    points: np.ndarray,
    k: int,
    random_states: Sequence[int],
    *,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> list[Clustering]:
    """``kmeans`` from each of ``random_states``, every state's runs side by side in the same products: one
    pass over the data per Lloyd step for all of them. Each state's clustering is the one ``kmeans`` gives
    from that state alone (the same draws; the products may round differently in the last bit)."""
    points = np.ascontiguousarray(points)
    if points.dtype not in (np.float32, np.float64):  # integers, booleans, float16: scikit-learn's float64
        points = points.astype(np.float64)
    if points.ndim != 2 or points.shape[1] == 0:
        raise ValueError(f"KMeans needs points of shape (n, d) with d >= 1, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("KMeans: the points contain NaN or infinite values")
    if not 1 <= k <= len(points):
        raise ValueError(f"KMeans needs 1 <= k <= {len(points)} points, got k={k}")
    if len(random_states) == 0:
        raise ValueError("KMeans needs at least one random state")
    unusable = [s for s in random_states if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0]
    if unusable:  # None would seed from the operating system: a clustering no run could repeat
        raise ValueError(f"KMeans random states must be non-negative integers, got {unusable[0]!r}")
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"KMeans needs n_init >= 1 and max_iter >= 1, got n_init={n_init}, max_iter={max_iter}")
    n, d = points.shape
    rngs = [np.random.default_rng(state) for state in random_states]
    n_runs = len(rngs) * n_init
    point_norms = np.einsum("ij,ij->i", points, points)
    if not np.isfinite(point_norms).all():  # every distance would be inf - inf
        raise ValueError(f"KMeans: the points' squared norms overflow {points.dtype}: scale the points down")
    # the mean per-feature variance: mean squared norm minus the squared norm of the mean, over d
    spread = point_norms.mean(dtype=np.float64) - np.sum(points.mean(axis=0, dtype=np.float64) ** 2)
    tolerance = tol * float(spread) / d
    centres = kmeans_plus_plus(points, point_norms, k, n_init, rngs)  # (n_runs, k, d)
    flop = 2.0 * n * d * n_runs * (1 + (k - 1) * local_trials(k) + k)  # seeding, and the final labels below
    labels = np.full((n_runs, n), -1, dtype=np.int64)
    sums, counts = np.zeros((n_runs, k, d)), np.zeros((n_runs, k))
    active = np.ones(n_runs, dtype=bool)
    iterations = np.zeros(n_runs, dtype=np.int64)
    for _ in range(max_iter):
        runs = np.flatnonzero(active)
        # every active run's nearest centres in one product: the highest x.c - |c|^2 / 2
        scores = points @ centres[runs].reshape(-1, d).T
        flop += 2.0 * n * d * len(runs) * k
        half_norms = 0.5 * np.einsum("rkd,rkd->rk", centres[runs], centres[runs]).reshape(-1)
        assigned = np.empty((len(runs), n), dtype=np.int64)
        moved = np.empty((len(runs), n), dtype=np.bool_)
        _nearest_centres(scores, half_norms, k, labels, runs, assigned, moved)
        _update_sums(sums, counts, points, runs, labels, assigned, moved, k)
        unchanged = ~moved.any(axis=1)
        labels[runs] = assigned
        iterations[runs] += 1
        present = counts[runs, :, None] > 0
        updated = np.where(present, sums[runs] / np.maximum(counts[runs, :, None], 1), centres[runs])
        shift = np.sum((updated - centres[runs]) ** 2, axis=(1, 2))
        centres[runs] = updated
        active[runs[unchanged | (shift <= tolerance)]] = False
        if not active.any():
            break
    # labels of the final centres (scikit-learn's last E-step), and every run's inertia
    distances = _squared_distances(points, point_norms, centres.reshape(-1, d)).reshape(n, n_runs, k)
    labels = distances.argmin(axis=2).T
    inertia = np.take_along_axis(distances, labels.T[:, :, None], axis=2)[:, :, 0].sum(axis=0, dtype=np.float64)
    clusterings = []
    for first in range(0, n_runs, n_init):
        best = first + int(np.argmin(inertia[first : first + n_init]))
        clusterings.append(Clustering(labels[best], float(inertia[best]), int(iterations[best]), flop / len(rngs)))
    return clusterings


@compiled
def _nearest_centres(
    scores: np.ndarray,
    half_norms: np.ndarray,
    k: int,
    labels: np.ndarray,
    runs: np.ndarray,
    assigned: np.ndarray,
    moved: np.ndarray,
) -> None:
    """Each run's nearest centre for every point, and whether it differs from the point's label, in place.

    ``scores`` (n_points, runs x k) holds x.c per run and centre; the nearest has the highest x.c - |c|^2 / 2,
    the first among equals (numpy's argmax: with ``scores`` and ``half_norms`` of one dtype the subtraction
    rounds as numpy's does, so labels match it to the bit). One pass over the scores instead of numpy's
    subtraction, argmax, transpose and comparison."""
    for point in range(scores.shape[0]):
        for slot in range(len(runs)):
            first = slot * k
            best = scores[point, first] - half_norms[first]
            nearest = 0
            for centre in range(1, k):
                value = scores[point, first + centre] - half_norms[first + centre]
                if value > best:
                    best = value
                    nearest = centre
            assigned[slot, point] = nearest
            moved[slot, point] = nearest != labels[runs[slot], point]


def _update_sums(
    sums: np.ndarray,
    counts: np.ndarray,
    points: np.ndarray,
    runs: np.ndarray,
    labels: np.ndarray,
    assigned: np.ndarray,
    moved: np.ndarray,
    k: int,
) -> None:
    """Bring the runs' per-cluster sums and counts up to date with their new labels (``assigned``; ``labels``
    holds every run's previous ones), in place.

    Both are products with one-hot matrices, one row per (run, cluster): of all points while most of
    them move (the first step), later of the moved points only, +1 for the new cluster, -1 for the old."""
    n_moved = int(np.count_nonzero(moved))
    if n_moved > len(points):
        one_hot = np.zeros((len(runs) * k, len(points)), dtype=points.dtype)
        _fill_one_hot(assigned, k, one_hot)
        sums[runs] = (one_hot @ points).reshape(len(runs), k, -1)
        counts[runs] = one_hot.sum(axis=1).reshape(len(runs), k)
        return
    moves = np.zeros((len(runs) * k, n_moved), dtype=points.dtype)
    point_of = np.empty(n_moved, dtype=np.int64)
    _fill_moves(moved, assigned, labels, runs, k, moves, point_of)
    sums[runs] += (moves @ points[point_of]).reshape(len(runs), k, -1)
    counts[runs] += moves.sum(axis=1).reshape(len(runs), k)


@compiled
def _fill_one_hot(assigned: np.ndarray, k: int, one_hot: np.ndarray) -> None:
    """Row (run, cluster) of ``one_hot`` (zeros) is 1 at the run's points in the cluster, in place."""
    for slot in range(assigned.shape[0]):
        for point in range(assigned.shape[1]):
            one_hot[slot * k + assigned[slot, point], point] = 1


@compiled
def _fill_moves(
    moved: np.ndarray,
    assigned: np.ndarray,
    labels: np.ndarray,
    runs: np.ndarray,
    k: int,
    moves: np.ndarray,
    point_of: np.ndarray,
) -> None:
    """One column of ``moves`` (zeros) per moved (run, point), run by run and in point order: +1 at the
    run's new cluster, -1 at its old one (none on the first step); ``point_of`` gets each column's point."""
    column = 0
    for slot in range(moved.shape[0]):
        for point in range(moved.shape[1]):
            if moved[slot, point]:
                moves[slot * k + assigned[slot, point], column] = 1
                was = labels[runs[slot], point]
                if was >= 0:
                    moves[slot * k + was, column] = -1
                point_of[column] = point
                column += 1
