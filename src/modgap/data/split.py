"""Stratified sampling and splitting by class label."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Split indices into train/val/test with every class in the same proportions.

    Each class contributes round(n_c * fraction) items to val and to test; what
    remains goes to train. Indices are returned sorted.
    """
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_fraction))
        n_val = int(round(len(members) * val_fraction))
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` indices drawn without replacement, classes as balanced as their counts allow."""
    if size > len(labels):
        raise ValueError(f"cannot draw {size} items from {len(labels)}")
    classes = np.unique(labels)
    shuffled = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    chosen: list[int] = []
    depth = 0
    while len(chosen) < size:  # round-robin over classes, one item per class per round
        for c in classes:
            if depth < len(shuffled[c]) and len(chosen) < size:
                chosen.append(int(shuffled[c][depth]))
        depth += 1
    return np.sort(np.array(chosen, dtype=np.int64))
