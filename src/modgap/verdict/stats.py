"""Seed-paired statistics for the claims check: one-sided t-tests in closed form, their intervals, the
family-wise step-down adjustment (Holm's, with Shaffer's logical constraint), the seeds a test needs for a
given power, and an exact test of collapse rates.

Methods trained with the same seed share initial weights and batch order, so two methods are compared
seed by seed: a paired quantity is the per-seed difference of a metric (or the log of a per-seed ratio), and
its mean is tested with Student's t on n - 1 degrees of freedom. Every hypothesis is one-sided (a claim
holding, or a claim failing at its margin), so each gets a p-value in closed form; an equivalence (claim 1,
and convergence) is two one-sided tests (TOST, Schuirmann 1987), whose p-value is the larger of the two.
A one-sided test at level alpha reads the matching bound of the two-sided 1 - 2 alpha interval, so the
intervals shown are 90 % intervals for tests at 5 %.

The seeds a test needs are planned for power, not read off the interval: a one-sided t-test whose true mean
lies a distance d from its threshold rejects at level a with the probability that a noncentral t on n - 1
degrees of freedom, noncentrality d * sqrt(n) / sd, exceeds t_{1-a, n-1}. A test that must clear several
thresholds at once (an equivalence) misses with at most the sum of the single misses, so its power is at
least one minus that sum: exact for one threshold, the usual conservative bound for TOST.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

POWER = 0.8  # the power seed counts are planned for


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

    def seeds_needed(
        self, distances: Sequence[float], level: float, power: float = POWER, most: int = 100_000
    ) -> int | None:
        """The seeds a test of this quantity needs to reject at ``level`` with probability ``power``, were its
        true mean ``distances`` from each threshold it must clear and its SD what it is now (seeds_for_power);
        None when no spread is measured or a distance is not positive."""
        if not self.testable:
            return None
        return seeds_for_power(distances, self.sd, level, power, most)


def power_lower_bound(n: int, distances: Sequence[float], sd: float, level: float) -> float:
    """The probability that one-sided t-tests at ``level`` of n paired values with standard deviation ``sd``
    clear every threshold, their true mean lying ``distances`` from them: one minus the summed probabilities
    of missing each (exact for one threshold, a lower bound for more)."""
    critical = float(stats.t.ppf(1.0 - level, n - 1))
    return 1.0 - sum(_below(critical, n - 1, d * math.sqrt(n) / sd) for d in distances)


def _below(critical: float, df: int, noncentrality: float) -> float:
    """P(T <= critical) for a noncentral t. scipy answers NaN where that probability underflows (a
    noncentrality some 30 or more beyond the critical value): it is then nil."""
    probability = float(stats.nct.cdf(critical, df, noncentrality))
    return 0.0 if math.isnan(probability) and noncentrality > critical else probability


def seeds_for_power(
    distances: Sequence[float], sd: float, level: float, power: float = POWER, most: int = 100_000
) -> int | None:
    """The fewest paired seeds (2 to ``most``) whose tests reach ``power`` by ``power_lower_bound``; ``most``
    where even that many do not, None where a distance is not positive or the spread is unknown. The power
    grows with n, so a bisection finds the count."""
    if not distances or not all(d > 0 for d in distances) or not sd > 0:
        return None
    if power_lower_bound(most, distances, sd, level) < power:
        return most
    fewest, enough = 1, most  # fewest: too few (one seed makes no test); enough: reaches the power
    while enough - fewest > 1:
        middle = (fewest + enough) // 2
        if power_lower_bound(middle, distances, sd, level) >= power:
            enough = middle
        else:
            fewest = middle
    return enough


def stepdown_levels(p_values: Sequence[float], parts: Sequence[Hashable], alpha: float) -> list[float | None]:
    """Holm's step-down (Holm 1979) with Shaffer's logical constraint (Shaffer 1986): the level at which each
    hypothesis is rejected, or None where it is not. ``parts[i]`` names the part hypothesis i belongs to; the
    null hypotheses of one part are never true together (a true difference cannot lie both at or below 0 and
    at or above a positive margin).

    Sorted by p-value, each hypothesis is tested at alpha / t, t being the number of parts that still hold a
    hypothesis not yet rejected: the most null hypotheses that can still be true. Testing stops at the first
    that is not rejected. NaN p-values (untestable) are never rejected and count for no part. With every
    hypothesis its own part this is Holm's procedure; with pairs it rejects at least what Holm's does."""
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    order = sorted(tested, key=lambda i: p_values[i])
    open_hypotheses = Counter(parts[i] for i in tested)
    levels: list[float | None] = [None] * len(p_values)
    for index in order:
        level = alpha / sum(count > 0 for count in open_hypotheses.values())
        if not p_values[index] <= level:
            break
        levels[index] = level
        open_hypotheses[parts[index]] -= 1
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
