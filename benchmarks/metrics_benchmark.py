"""Benchmark: the whole metric set on N instance pairs of d-dimensional embeddings (image and text).

    python benchmarks/metrics_benchmark.py --pairs 5000 25000 --dim 512

Prints, for each part, its wall time (the best of --repeat runs: shared machines are noisy), the
floating-point operations of its matrix products, their rate, and that rate as a fraction of the
machine's fp32 matmul throughput, measured first on tiles of the shape the passes use (one BLAS thread
per worker, as many workers as threads). Parts: gap; retrieval at both levels, both directions (one
pass); kNN alone; retrieval and kNN sharing their products (what ``modgap.metrics.per_run`` runs); KMeans
with V-Measure. "whole set" is gap + shared retrieval and kNN + KMeans. Target: at most 5 s at 25,000
pairs on two cores. Library imports happen before any timing.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from threadpoolctl import threadpool_limits

from modgap.metrics import measures, similarity
from modgap.metrics.kmeans import kmeans


def embeddings(pairs: int, dim: int, classes: int = 10, seed: int = 0):
    """Class-structured pairs with a modality offset, about as hard as the paper's CIFAR-10 numbers
    (at 25,000 pairs: instance R@1 about 75 %, kNN about 60 %, V-Measure about 65 %)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=pairs)
    centers = 0.3 * rng.normal(size=(classes, dim)).astype(np.float32)
    shared = centers[labels] + rng.normal(size=(pairs, dim)).astype(np.float32)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    image = unit(shared + 2.0 * rng.normal(size=(pairs, dim)).astype(np.float32))
    text = unit(shared + 2.0 * rng.normal(size=(pairs, dim)).astype(np.float32) + 0.3)
    return {"image": image, "text": text}, labels


def best_time(repeat: int, function, *args, **kwargs):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return min(times), result


def matmul_peak(dim: int, threads: int, repeat: int) -> float:
    """GFLOP/s of fp32 tile products as the passes run them: ``threads`` workers, one BLAS thread each."""
    side = similarity.CHUNK_SIZE
    rng = np.random.default_rng(0)
    n = side * 2 * threads
    rows, cols = (rng.standard_normal((n, dim), dtype=np.float32) for _ in range(2))
    plan = similarity.layout(np.full(n, -1), side)
    chunks = list(plan.chunks)
    seconds, _ = best_time(repeat, similarity.tile_pass, rows, cols, chunks, chunks, plan, [], threads)
    return 2.0 * n * n * dim / seconds / 1e9


def report(label: str, seconds: float, flop: float, peak: float) -> None:
    rate = flop / seconds / 1e9 if flop else 0.0
    share = f"{100 * rate / peak:5.1f} %" if flop else "      "
    print(f"  {label:<46} {seconds:6.2f} s {flop / 1e9:7.0f} GFLOP {rate:6.0f} GFLOP/s {share}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[5000, 25000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--kmeans-n-init", type=int, default=10, help="the study's default (evaluate.kmeans_n_init)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=similarity.default_threads())
    arguments = parser.parse_args()
    import sklearn.metrics  # noqa: F401  (imports are not what is measured)
    import sklearn.model_selection  # noqa: F401

    with threadpool_limits(arguments.threads):
        peak = matmul_peak(arguments.dim, arguments.threads, arguments.repeat)
        print(
            f"fp32 matmul throughput: {peak:.0f} GFLOP/s ({arguments.threads} threads, {similarity.CHUNK_SIZE}-wide tiles)"
        )
        for pairs in arguments.pairs:
            run(pairs, arguments, peak)


def run(pairs: int, arguments, peak: float) -> None:
    z, labels = embeddings(pairs, arguments.dim)
    d, repeat = arguments.dim, arguments.repeat
    protocol = measures.KnnProtocol()
    n_test = int(np.ceil(protocol.test_fraction * 2 * pairs))
    per_modality_test = n_test / 2
    retrieval_flop = 2.0 * pairs * pairs * d
    same_modality_flop = 2 * 2.0 * per_modality_test * (pairs - per_modality_test) * d  # test x train, per modality
    knn_flop = 2.0 * n_test * (2 * pairs - n_test) * d
    print(f"{pairs} pairs x {d}-d (float32)")
    gap_s, _ = best_time(repeat, measures.gap_metrics, z)
    report("gap + true-pair cosine", gap_s, 0, peak)
    levels = ("instance", "class")
    seconds, (recalls, _) = best_time(repeat, measures.retrieval_and_knn, z, labels, levels=levels)
    report("R@1/5/10 instance + class, both ways (1 pass)", seconds, retrieval_flop, peak)
    seconds, _ = best_time(repeat, measures.retrieval_and_knn, z, labels, knn=protocol)
    report("kNN alone (k=5)", seconds, knn_flop, peak)
    shared_s, (_, knn) = best_time(repeat, measures.retrieval_and_knn, z, labels, levels=levels, knn=protocol)
    report("retrieval + kNN sharing products", shared_s, retrieval_flop + same_modality_flop, peak)
    points, stacked = measures.stacked(z, labels)

    def cluster():
        clustering = kmeans(points, 10, n_init=arguments.kmeans_n_init, random_state=0)
        return clustering, measures.partition_scores(stacked, clustering.labels)

    kmeans_s, (clustering, scores) = best_time(repeat, cluster)
    report(f"KMeans (n_init={arguments.kmeans_n_init}) + V-Measure", kmeans_s, clustering.flop, peak)
    total_flop = retrieval_flop + same_modality_flop + clustering.flop
    report("whole set", gap_s + shared_s + kmeans_s, total_flop, peak)
    print(f"  its products alone at the measured throughput   {total_flop / peak / 1e9:6.2f} s")
    print(
        f"  peak resident memory                            {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.0f} MiB"
    )
    print(
        f"  (R@1 text->image instance {recalls['instance']['r1_text_image']:.1f} %, class "
        f"{recalls['class']['r1_text_image']:.1f} %; kNN {knn:.1f} %; V-Measure {scores['v_measure']:.1f} %, "
        f"KMeans {clustering.iterations} steps)"
    )


if __name__ == "__main__":
    main()
