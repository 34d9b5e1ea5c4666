"""Seed-paired statistics for the claims check: one-sided t-tests in closed form, their intervals, Holm's
step-down adjustment, and an exact test of collapse rates.

Methods trained with the same seed share initial weights and batch order, so two methods are compared
seed by seed: a paired quantity is the per-seed difference of a metric (or the log of a per-seed ratio), and
its mean is tested with Student's t on n - 1 degrees of freedom. Every hypothesis is one-sided (a claim
holding, or a claim failing at its margin), so each gets a p-value in closed form; an equivalence (claim 1,
and convergence) is two one-sided tests (TOST, Schuirmann 1987), whose p-value is the larger of the two.
A one-sided test at level alpha reads the matching bound of the two-sided 1 - 2 alpha interval, so the
intervals shown are 90 % intervals for tests at 5 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


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

    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def shown(self, digits: int = 1, signed: bool = True) -> str:
        """As the claims check prints it: the estimate and its bounds, or that it is one seed's value."""
        sign = "+" if signed else ""
        if math.isnan(self.estimate):
            return "n/a"
        if self.n == 0:  # every pair left out (a collapsed run in each)
            return "n/a (no pair left)"
        if self.is_point:
            return f"{self.estimate:{sign}.{digits}f} (point value, one seed)"
        return f"{self.estimate:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"

    def exp(self) -> Interval:
        """The interval of exp(x), for quantities tested on the log scale (ratios)."""
        return Interval(_exp(self.estimate), _exp(self.low), _exp(self.high), self.n)


@dataclass(frozen=True)
class PairedSample:
    """The per-seed values of one paired quantity, and the tests of its mean."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> PairedSample:
        return cls(tuple(float(v) for v in np.asarray(values, dtype=float)))

    @classmethod
    def difference(cls, method: Sequence[float], baseline: Sequence[float]) -> PairedSample:
        """Per-seed differences method - baseline (the sequences are seed-aligned)."""
        return cls.of(np.asarray(method, dtype=float) - np.asarray(baseline, dtype=float))

    @classmethod
    def log_ratio(cls, method: Sequence[float], baseline: Sequence[float]) -> PairedSample:
        """Per-seed log ratios log(method / baseline); NaN where either value is not positive."""
        method, baseline = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where((method > 0) & (baseline > 0), np.log(method / baseline), np.nan)
        return cls.of(ratios)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def finite(self) -> bool:
        return self.n > 0 and bool(np.isfinite(self.values).all())

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.n else float("nan")

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else float("nan")

    @property
    def testable(self) -> bool:
        """Whether a t-test can be made: finite values from two seeds or more, not all equal."""
        return self.finite and self.n >= 2 and self.sd > 0

    def _t(self, threshold: float) -> float:
        return (self.mean - threshold) / (self.sd / math.sqrt(self.n))

    def p_above(self, threshold: float) -> float:
        """p-value of H0: mean <= threshold against mean > threshold (NaN when not testable)."""
        return float(stats.t.sf(self._t(threshold), self.n - 1)) if self.testable else float("nan")

    def p_below(self, threshold: float) -> float:
        """p-value of H0: mean >= threshold against mean < threshold (NaN when not testable)."""
        return float(stats.t.cdf(self._t(threshold), self.n - 1)) if self.testable else float("nan")

    def p_within(self, low: float, high: float) -> float:
        """TOST p-value of H0: mean outside (low, high) against mean inside it."""
        return max(self.p_above(low), self.p_below(high))

    def interval(self, confidence: float) -> Interval:
        """The two-sided t interval of the mean; a point for one seed, NaN for non-finite values."""
        if not self.finite:
            return Interval(float("nan"), float("nan"), float("nan"), self.n)
        if self.n < 2:
            return Interval(self.mean, self.mean, self.mean, self.n)
        half = float(stats.t.ppf(0.5 + confidence / 2.0, self.n - 1)) * self.sd / math.sqrt(self.n)
        return Interval(self.mean, self.mean - half, self.mean + half, self.n)

    def seeds_needed(self, distance: float, alpha: float, most: int = 100_000) -> int | None:
        """The fewest seeds whose one-sided bound at level ``alpha`` would lie ``distance`` from the mean, were
        the standard deviation what it is now: what a check ``distance`` from its threshold would need (None
        when no spread is measured or the distance is not positive)."""
        if not self.testable or not distance > 0:
            return None
        for n in range(2, most + 1):
            if float(stats.t.ppf(1.0 - alpha, n - 1)) * self.sd / math.sqrt(n) < distance:
                return n
        return most


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float | None]:
    """Holm's step-down (Holm 1979): the level at which each hypothesis is rejected, or None where it is not.

    Sorted by p-value, the i-th (0-based) of m is tested at alpha / (m - i); testing stops at the first that
    is not rejected, and every later one is kept. NaN p-values (untestable) are never rejected."""
    order = sorted(range(len(p_values)), key=lambda i: (math.isnan(p_values[i]), p_values[i]))
    levels: list[float | None] = [None] * len(p_values)
    for rank, index in enumerate(order):
        level = alpha / (len(p_values) - rank)
        if not p_values[index] <= level:
            break
        levels[index] = level
    return levels


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar test of paired binary outcomes (a run collapsed or not, per seed): the binomial
    test of the discordant pairs, ``only_first`` against ``only_second``, at one half."""
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(only_first, discordant, 0.5).pvalue)


def _exp(x: float) -> float:
    """exp that saturates at infinity (the bounds of near-certain intervals) instead of raising."""
    return math.exp(x) if x < 709.0 else math.inf
