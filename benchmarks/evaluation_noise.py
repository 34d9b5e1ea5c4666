"""How much of a comparison's noise the evaluation makes: the released protocol (one kNN split, one k-means
start) against the low-variance one the claims read (leave-one-out kNN, V-Measure averaged over k-means
random states), on a finished study's dumps.

    python benchmarks/evaluation_noise.py [--splits 30] [--states 20] [--methods ours clip_lt]

For every trained experiment at its last budget and every seed of both methods it prints, per metric: the
evaluation's own standard deviation of one run's figure (kNN over ``--splits`` seeded splits, V-Measure over
``--states`` single-start clusterings; the low-variance figures' is 0 for leave-one-out kNN and the states'
SD over sqrt(states) for the mean V-Measure), and the seed-to-seed SD of the paired difference (method minus
baseline) with each protocol's figure: the evaluation's share of the noise a claim must see through.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from modgap.embeddings.dumps import LABELS, load_method_dump, modality_embeddings
from modgap.metrics import low_variance, measures
from modgap.study.config import DEFAULT_CONFIG, load_config_files
from modgap.study.paths import embeddings_path

REPO = Path(__file__).resolve().parents[1]


def run_noise(dump_path: Path, splits: int, states: int, options: dict) -> dict[str, float]:
    """One run's figures under both protocols, with the released protocol's spread over splits and states."""
    dump = load_method_dump(dump_path)
    embeddings, labels = modality_embeddings(dump), np.asarray(dump[LABELS])
    knn = [
        measures.knn_accuracy(embeddings, labels, options["knn_k"], options["knn_test_fraction"], s)
        for s in range(splits)
    ]
    points, stacked = measures.stacked(embeddings, labels)
    k = options["kmeans_k"] or len(np.unique(stacked))
    first, spread = low_variance.clustering_over_states(points, stacked, k, 0, states, 1)
    loo = low_variance.leave_one_out_knn(embeddings, labels, options["knn_k"], options["knn_split"])
    return {
        "knn_released": knn[0],
        "knn_split_sd": float(np.std(knn, ddof=1)),
        "knn_loo": loo.accuracy,
        "v_state_sd": spread["v_measure_sd"],
        "v_mean": spread["v_measure"],
        "v_first": first["v_measure"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="*", default=[])
    parser.add_argument("--splits", type=int, default=30)
    parser.add_argument("--states", type=int, default=20)
    parser.add_argument("--methods", nargs=2, default=["ours", "clip_lt"], metavar=("METHOD", "BASELINE"))
    arguments = parser.parse_args()
    config = load_config_files([DEFAULT_CONFIG, *arguments.configfile])
    options = config["evaluate"]
    method, baseline = arguments.methods
    print(
        f"evaluation noise: released protocol (one split, one k-means start) vs low-variance (leave-one-out kNN, "
        f"mean over {arguments.states} k-means states); {arguments.splits} splits per run"
    )
    print(
        "| experiment | metric | eval SD of one run, released | low-variance | seed SD of Δ, released | low-variance |"
    )
    print("|---|---|---|---|---|---|")
    for experiment in config["experiments"]:
        name = experiment["name"]
        if not all(m in experiment["methods"] for m in (method, baseline)):
            continue
        runs = {
            m: [
                run_noise(REPO / embeddings_path(name, m, seed), arguments.splits, arguments.states, options)
                for seed in config["seeds"]
            ]
            for m in (method, baseline)
        }

        def paired(key: str) -> float:
            return float(np.std([a[key] - b[key] for a, b in zip(runs[method], runs[baseline])], ddof=1))

        every = runs[method] + runs[baseline]
        knn_sd = float(np.mean([r["knn_split_sd"] for r in every]))
        v_sd = float(np.mean([r["v_state_sd"] for r in every]))
        print(f"| {name} | kNN | {knn_sd:.2f} | 0 | {paired('knn_released'):.2f} | {paired('knn_loo'):.2f} |")
        print(
            f"| {name} | V-Measure | {v_sd:.2f} | {v_sd / math.sqrt(arguments.states):.2f} "
            f"| {paired('v_first'):.2f} | {paired('v_mean'):.2f} |"
        )


if __name__ == "__main__":
    main()
