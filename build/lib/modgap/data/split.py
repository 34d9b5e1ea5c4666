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
        _, n_val, n_test = split_counts(len(members), val_fraction, test_fraction)
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
    counts = subset_counts([len(shuffled[c]) for c in classes], size)
    chosen = np.concatenate([shuffled[c][:count] for c, count in zip(classes, counts)])
    return np.sort(chosen.astype(np.int64))


def split_counts(class_size: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) items a class of ``class_size`` contributes in ``stratified_split``."""
    n_test = int(round(class_size * test_fraction))
    n_val = int(round(class_size * val_fraction))
    return class_size - n_test - n_val, n_val, n_test


def subset_counts(class_sizes: list[int], size: int) -> list[int]:
    """Items per class in ``stratified_subset``: one per class per round, in class order, until ``size``."""
    counts = [0] * len(class_sizes)
    remaining = size
    while remaining > 0:
        for c, available in enumerate(class_sizes):
            if counts[c] < available and remaining > 0:
                counts[c] += 1
                remaining -= 1
    return counts


def stratified_sizes(class_sizes: list[int], size: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Split sizes of ``stratified_split`` after ``stratified_subset(size)``, without drawing anything."""
    per_class = [split_counts(n, val_fraction, test_fraction) for n in subset_counts(class_sizes, size)]
    return {split: sum(counts[i] for counts in per_class) for i, split in enumerate(("train", "val", "test"))}
