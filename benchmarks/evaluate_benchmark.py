"""Benchmark: ``modgap evaluate`` on N image-text pairs of d-dimensional embeddings, as a user runs it.

    python benchmarks/evaluate_benchmark.py --pairs 25000 100000 --dim 512

Writes a class-structured dump (benchmarks/metrics_benchmark.py's embeddings) per size, then runs the
command in a fresh process and prints its wall time, its peak resident memory, the floating-point
operations of its similarity products (retrieval, both kNNs, the uniformity sample) and the time they take at
the machine's fp32 matmul throughput, measured first, with each stage's start time. Target: at most 15 s and 4 GB at 25,000 pairs on two
cores; at 100,000 pairs the time grows as the products do (no dense N x N matrix is held).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from metrics_benchmark import embeddings, matmul_peak  # noqa: E402

from modgap.metrics import measures, similarity  # noqa: E402
from modgap.study.schema import section_defaults  # noqa: E402


def products(pairs: int, dim: int) -> float:
    """FLOPs of the similarity products at the default options (instance level, the released point-split kNN,
    leave-one-out kNN as is and centred), KMeans aside (its steps vary; benchmarks/metrics_benchmark.py counts
    them)."""
    points = 2 * pairs
    n_test = int(np.ceil(0.2 * points))
    retrieval = 2.0 * pairs * pairs * dim
    same_modality = 2 * 2.0 * (n_test / 2) * (pairs - n_test / 2) * dim
    queries = min(points, section_defaults("evaluate")["knn_loo_queries"] or points)
    leave_one_out = 2 * 2.0 * queries * points * dim  # as is and centred
    sample = min(pairs, measures.UNIFORMITY_ROWS)
    uniformity = 2 * 2.0 * sample * (sample + 1) / 2 * dim  # the upper triangle of tiles, per modality
    return retrieval + same_modality + leave_one_out + uniformity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[25000])
    parser.add_argument("--dim", type=int, default=512)
    arguments = parser.parse_args()
    threads = similarity.default_threads()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        peak = matmul_peak(arguments.dim, threads, 3)
    print(f"fp32 matmul throughput: {peak:.0f} GFLOP/s ({threads} threads)")
    for pairs in arguments.pairs:
        z, labels = embeddings(pairs, arguments.dim)
        with tempfile.TemporaryDirectory() as folder:
            dump = Path(folder) / "dump.npz"
            np.savez(dump, labels=labels, **z)
            command = ["/usr/bin/time", "-v", sys.executable, "-m", "modgap", "evaluate", str(dump), "--out", folder]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - started
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 2**20
        stages = [line for line in done.stderr.splitlines() if line.startswith("[")]
        flop = products(pairs, arguments.dim)
        print(
            f"{pairs} pairs x {arguments.dim}-d: {seconds:.2f} s wall (whole process), {rss:.2f} GiB peak RSS; "
            f"products without KMeans {flop / 1e9:.0f} GFLOP = {flop / peak / 1e9:.2f} s at the measured throughput "
            f"({100 * flop / peak / 1e9 / seconds:.0f} % of the wall time)"
        )
        for line in stages:
            print(f"  {line}")


if __name__ == "__main__":
    main()
