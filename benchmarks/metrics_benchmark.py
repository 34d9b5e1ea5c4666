"""Benchmark: every metric on N instance pairs of d-dimensional embeddings (two modalities).

    python benchmarks/metrics_benchmark.py --pairs 5000 25000 --dim 512

Prints wall time per metric group and peak resident memory (Linux ru_maxrss), for
instance- and class-level retrieval. Target on a 2-core machine: the whole set under 5 s
at 25,000 pairs (not reached; README, "Metrics").
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from modgap import metrics


def embeddings(pairs: int, dim: int, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=pairs)
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    shared = centers[labels] + rng.normal(size=(pairs, dim)).astype(np.float32)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    image = unit(shared + 0.5 * rng.normal(size=(pairs, dim)).astype(np.float32))
    text = unit(shared + 0.5 * rng.normal(size=(pairs, dim)).astype(np.float32) + 0.3)
    return {"image": image, "text": text}, labels


def timed(label: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"  {label:<34} {time.perf_counter() - started:7.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[5000, 25000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--kmeans-n-init", type=int, default=1)
    arguments = parser.parse_args()
    for pairs in arguments.pairs:
        z, labels = embeddings(pairs, arguments.dim)
        print(f"{pairs} pairs x {arguments.dim}-d (float32)")
        started = time.perf_counter()
        timed("gap + true-pair cosine", metrics.gap_metrics, z)
        timed("R@1/5/10 instance, both directions", metrics.retrieval_metrics, z, labels, "instance")
        core = time.perf_counter() - started
        timed("R@1/5/10 class, both directions", metrics.retrieval_metrics, z, labels, "class")
        points, stacked = metrics.stacked(z, labels)
        timed(f"KMeans V-Measure (n_init={arguments.kmeans_n_init})", metrics.clustering_scores, points, stacked, 10,
              0, arguments.kmeans_n_init)  # fmt: skip
        timed("kNN accuracy (k=5)", metrics.knn_accuracy, points, stacked)
        print(f"  gap + instance retrieval total       {core:7.2f} s")
        print(f"  peak resident memory so far          {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MiB")


if __name__ == "__main__":
    main()
