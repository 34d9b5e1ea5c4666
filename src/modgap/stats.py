"""Seed-paired statistics for the claims check: t confidence intervals of per-seed differences and ratios.

Methods trained with the same seed share initial weights and batch order, so the
difference between two methods is measured seed by seed and the interval is the
Student t interval of the mean difference (n - 1 degrees of freedom). Ratios
(gap of a method over the baseline's) are handled on the log scale, so their
interval is that of the geometric mean ratio. With a single seed there is no
interval: the bounds are the point value, marked as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    @property
    def is_point(self) -> bool:
        """Only one paired value: the bounds are the value itself, not a confidence interval."""
        return self.n < 2

    def above(self, threshold: float) -> bool:
        return self.low > threshold

    def below(self, threshold: float) -> bool:
        return self.high < threshold

    def within(self, low: float, high: float) -> bool:
        return low <= self.low and self.high <= high

    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with its two-sided Student t confidence interval."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.isnan(values).any():
        return Interval(float("nan"), float("nan"), float("nan"), int(values.size))
    mean = float(values.mean())
    if values.size < 2:
        return Interval(mean, mean, mean, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2.0, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return Interval(mean, mean - half, mean + half, int(values.size))


def paired_difference(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Interval:
    """Interval of the mean per-seed difference method - baseline (the two sequences are seed-aligned)."""
    return t_interval(np.asarray(method, dtype=float) - np.asarray(baseline, dtype=float), confidence)


def paired_ratio(method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> Interval:
    """Interval of the geometric-mean per-seed ratio method / baseline (t interval of the log ratios)."""
    method, baseline = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
    if (method <= 0).any() or (baseline <= 0).any():
        return Interval(float("nan"), float("nan"), float("nan"), int(method.size))
    log_interval = t_interval(np.log(method / baseline), confidence)
    return Interval(_exp(log_interval.estimate), _exp(log_interval.low), _exp(log_interval.high), log_interval.n)


def _exp(x: float) -> float:
    """exp that saturates at infinity (the bounds of near-certain intervals) instead of raising."""
    return math.exp(x) if x < 709.0 else math.inf
