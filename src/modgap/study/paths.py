"""Where the workflow keeps each intermediate under ``results/`` (paths relative to the working directory).

Every argument may also be a wildcard such as ``"{seed}"``, which a Snakemake rule fills in. Names are plain
(the configuration's schema refuses anything else), so a path never leaves ``results/``.
"""

from __future__ import annotations

RESULTS = "results"


RUNS_TABLE = f"{RESULTS}/tables/runs.csv"  # one row per run: what the tables, figures and verdict read
VERDICT_TABLE = f"{RESULTS}/tables/verdict.csv"  # the claims check as data: what its figures read


def prepared(dataset: str) -> str:
    """The prepared data set (a folder in the common format)."""
    return f"{RESULTS}/data/{dataset}"


def embeddings_path(experiment: str, method: str, seed: int | str) -> str:
    """One run's test-split embedding dump."""
    return f"{RESULTS}/embeddings/{experiment}/{method}/seed{seed}.npz"


def model_path(experiment: str, method: str, seed: int | str) -> str:
    """One run's trained model."""
    return f"{RESULTS}/models/{experiment}/{method}/seed{seed}/model.pt"


def train_log_path(experiment: str, method: str, seed: int | str) -> str:
    """One run's epoch log."""
    return f"{RESULTS}/models/{experiment}/{method}/seed{seed}/train_log.csv"


def metrics_path(evaluation: str, method: str) -> str:
    """The per-seed metrics of one evaluated method."""
    return f"{RESULTS}/metrics/{evaluation}/{method}.json"
