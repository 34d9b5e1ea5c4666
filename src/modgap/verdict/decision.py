"""The claims check: do the paper's three claims hold on our runs?

Each comparison pits a method against a baseline seed by seed on one experiment. Its checks, one per claim
of ``CLAIMS``, test the seed-paired differences (modgap.verdict.stats) against margins taken from the paper's own
table (modgap.verdict.paper):

1. retrieval barely changes, a part per R@1 column: each R@1 difference lies within +-``retrieval_tolerance``
   (two one-sided tests), and fails outside it;
2. group-wise metrics rise, a part per metric: the V-Measure and the kNN difference each lie above 0; a part
   whose baseline leaves no headroom for a gain of the paper's size says "no room" and stays out;
3. the gap closes: the gap ratio lies below 1 (runs that collapsed stay out: a collapse closes a gap
   trivially).

Every part tests two one-sided hypotheses, each with a p-value in closed form: that the claim holds (the
difference lies above 0, the ratio below 1, R@1 within the tolerance) and that it fails at its margin (a
gain, or a reduction of the gap, of the margin's size is ruled out; R@1 lies outside the tolerance). Both
shown: "holds, below margin". Neither: inconclusive. A check is the conjunction of its parts. The two
hypotheses of a part are never true together, so Holm's step-down with Shaffer's logical constraint
(modgap.verdict.stats.stepdown_levels) runs over every hypothesis of a family of comparisons and keeps the
family-wise error rate at 1 - ``confidence``; its column decides, and the per-claim column shows each at the
nominal level alone.

A comparison evaluated along a budget ladder is read at its last budget; the ladder says whether it has
converged: from a budget N on, the per-seed change of every paired difference to each later budget (one at
least twice N) lies within its margin by an equivalence test (docs/verdict.md, "Convergence").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modgap.verdict import paper
from modgap.verdict.evidence import UnusableRunsError, runs_problem
from modgap.verdict.stats import POWER, Interval, PairedSample, stepdown_levels
from modgap.verdict.tables import PAPER_PAIRS, paired_r1_columns

HOLDS, HOLDS_BELOW_MARGIN, FAILS, INCONCLUSIVE, NO_ROOM = (
    "holds",
    "holds, below margin",
    "fails",
    "inconclusive",
    "no room",
)


STATES = (HOLDS, HOLDS_BELOW_MARGIN, FAILS, INCONCLUSIVE, NO_ROOM)


RETRIEVAL_COLUMNS = dict(PAPER_PAIRS.values())  # the paper's paired R@1 columns


GROUP_COLUMNS = {"v_measure": "V-Measure", "knn_acc": "kNN"}


# Per-run columns a comparison reports beside its checks: the gap read as the pairs' alignment, and what the
# gap costs each run's clustering (centred minus as is; modgap.metrics.per_run).
GAP_READINGS = {
    "cos_true_pairs": "true-pair cosine",
    "pair_alignment": "pair alignment",
    "gap_cost_v_measure": "V-Measure",
    "gap_cost_knn": "kNN",
}


PRACTICAL_SEEDS = 1000  # beyond this, a seeds note would only say the estimate sits on its threshold


@dataclass(frozen=True)
class Claim:
    """One claim: a part per column it tests, and how they are read. ``kind``: ``within`` (the difference
    inside +-margin; fails outside it), ``gain`` (the difference above 0; fails when a gain of the margin is
    ruled out) or ``reduction`` (the ratio below 1; fails when a reduction by the margin is ruled out)."""

    number: int
    title: str
    kind: str
    columns: Callable[[pd.DataFrame], dict[str, str]]  # runs columns it tests -> their labels


def retrieval_columns(runs: pd.DataFrame) -> dict[str, str]:
    """The R@1 columns of a runs table that claim 1 compares, with their labels: every paired R@1 column
    (modgap.verdict.tables.paired_r1_column) that holds a value, the paper's TV and TA R@1 first. A column without
    any value was not measured (the TA R@1 of an experiment without audio)."""
    return {c: label for c, label in paired_r1_columns(runs.columns).items() if runs[c].notna().any()}


CLAIMS = (
    Claim(1, "R@1 within ±{retrieval}", "within", retrieval_columns),
    Claim(2, "group-wise metrics higher", "gain", lambda runs: dict(GROUP_COLUMNS)),
    Claim(3, "smaller gap", "reduction", lambda runs: {"gap": "gap ratio"}),
)


@dataclass
class Part:
    """One tested unit of a check, a column of the runs table: its paired sample, margin, hypotheses and
    states."""

    claim: Claim
    column: str
    label: str
    seeds: list[int]  # the seeds of the sample, in its order
    sample: PairedSample  # per-seed differences (log ratios for a reduction)
    margin: float  # the tolerance (within), the gain (gain) or the relative reduction (reduction)
    baseline_mean: float
    room: bool = True
    note: str = ""
    p_hold: float = float("nan")
    p_fail: float = float("nan")
    state: str = INCONCLUSIVE
    per_claim_state: str = INCONCLUSIVE

    def interval(self, confidence: float) -> Interval:
        """The interval at the level whose bounds the one-sided tests read (ratios: exp'd)."""
        interval = self.sample.interval(2.0 * confidence - 1.0)
        return interval.exp() if self.claim.kind == "reduction" else interval

    def test(self, min_seeds: int) -> None:
        """Fill in p_hold and p_fail (NaN: not testable, with a note why)."""
        sample, margin = self.sample, self.margin
        if not sample.finite:
            self.note = "no finite values: not decided"
        elif sample.n < min_seeds:
            self.note = f"{sample.n} paired seeds, fewer than claims.min_seeds ({min_seeds}): not decided"
        elif not sample.testable:
            self.note = f"zero-width interval ({self.label}: every seed gave the same difference): not decided"
        if self.note or not self.room:
            return
        if self.claim.kind == "within":
            self.p_hold = sample.p_within(-margin, margin)
            # the two regions outside +-margin are disjoint: a mean in one cannot lie in the other
            self.p_fail = min(sample.p_above(margin), sample.p_below(-margin))
        elif self.claim.kind == "gain":
            self.p_hold, self.p_fail = sample.p_above(0.0), sample.p_below(margin)
        else:
            self.p_hold, self.p_fail = sample.p_below(0.0), sample.p_above(math.log(1.0 - margin))

    def hypotheses(self) -> list[float]:
        return [self.p_hold, self.p_fail]

    @property
    def testable(self) -> bool:
        return not any(math.isnan(p) for p in self.hypotheses())

    def decide(self, hold: bool, fail: bool) -> str:
        if not self.room:
            return NO_ROOM
        if hold and fail:
            return HOLDS_BELOW_MARGIN
        return HOLDS if hold else FAILS if fail else INCONCLUSIVE

    def distances_to_decide(self) -> tuple[float, ...]:
        """How far the sample's mean lies from each threshold its one-sided bounds must clear for the part to
        be decided the way it is easier to reach (both tolerances for R@1 inside them)."""
        mean = self.sample.mean
        if self.claim.kind == "within":
            if abs(mean) < self.margin:
                return (self.margin - mean, self.margin + mean)  # holds: both bounds inside
            return (abs(mean) - self.margin,)
        if self.claim.kind == "gain":
            return (max(mean, self.margin - mean),)
        return (max(-mean, mean - math.log(1.0 - self.margin)),)


@dataclass
class Check:
    """One claim of one comparison: its parts, and their conjunction."""

    claim: Claim
    parts: list[Part]
    state: str = INCONCLUSIVE
    per_claim_state: str = INCONCLUSIVE


def conjunction(states: Sequence[str]) -> str:
    """A claim made of parts: no room when no part has any; fails when a part with room fails; holds (below
    margin where one part is) when every part with room holds; else inconclusive."""
    roomy = [s for s in states if s != NO_ROOM]
    if not roomy:
        return NO_ROOM
    if FAILS in roomy:
        return FAILS
    if all(s in (HOLDS, HOLDS_BELOW_MARGIN) for s in roomy):
        return HOLDS_BELOW_MARGIN if HOLDS_BELOW_MARGIN in roomy else HOLDS
    return INCONCLUSIVE


@dataclass
class Rung:
    """One budget of a comparison's ladder: its per-claim states and paired estimates."""

    budget: int
    evaluation: str
    comparison: Comparison


@dataclass
class Convergence:
    """Where a comparison's ladder stops moving: ``since`` (None: not converged) and why not."""

    since: int | None
    status: str  # "converged", "still moving", "too noisy" or "one budget"
    lines: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """A method against a baseline on one evaluation (an experiment, or one budget of its ladder)."""

    experiment: str
    method: str
    baseline: str
    checks: list[Check]
    seeds: list[int]
    gaps: tuple[float, float]  # mean gap of the method's runs, of the baseline's
    temperatures: tuple[float, float]  # mean end-of-training temperature (NaN: not recorded)
    collapsed: tuple[list[int], list[int]]  # seeds whose run collapsed, method's and baseline's
    sensitivity: list[str] = field(default_factory=list)  # readings without the collapsed pairs
    # per-run columns read beside the checks (GAP_READINGS): column -> (method's values, baseline's), per seed
    readings: dict[str, tuple[PairedSample, PairedSample]] = field(default_factory=dict)
    budget: int | None = None
    ladder: list[Rung] = field(default_factory=list)
    convergence: Convergence | None = None

    def parts(self) -> list[Part]:
        return [part for check in self.checks for part in check.parts]


@dataclass
class Family:
    """Comparisons whose hypotheses one family-wise adjustment covers together."""

    name: str
    comparisons: list[Comparison]


def _column_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy(dtype=float) if column in frame else np.full(len(frame), np.nan)


def _collapsed(frame: pd.DataFrame) -> np.ndarray:
    return frame["collapsed"].fillna(False).to_numpy(dtype=bool) if "collapsed" in frame else np.zeros(len(frame), bool)


def compare(
    method_runs: pd.DataFrame,
    baseline_runs: pd.DataFrame,
    claims: Mapping,
    margins: Mapping[str, float],
    experiment: str,
    method: str,
    baseline: str,
) -> Comparison:
    """The checks of one comparison, tested but not yet decided (``decide`` does that, family by family).
    ``method_runs`` and ``baseline_runs``: runs tables indexed by seed."""
    seeds = sorted(set(method_runs.index) & set(baseline_runs.index))
    a, b = method_runs.loc[seeds], baseline_runs.loc[seeds]
    gone = _collapsed(a) | _collapsed(b)
    headroom = paper.headroom()
    checks = []
    for claim in CLAIMS:
        columns = claim.columns(a)
        if not columns:  # the table as a whole has R@1 values, this experiment's runs none
            raise UnusableRunsError(
                f"experiment {experiment}: no R@1 column with a value (tv_r1, ta_r1 or pair_r1_<anchor>_<other>): "
                "claim 1 has nothing to compare"
            )
        parts = []
        for column, label in columns.items():
            # a collapsed run closes its gap trivially: such pairs stay out of the gap ratio
            kept = ~gone if claim.kind == "reduction" else np.ones(len(seeds), bool)
            pair = PairedSample.log_ratio if claim.kind == "reduction" else PairedSample.difference
            sample = pair(_column_values(a, column)[kept], _column_values(b, column)[kept])
            margin = {
                "within": claims["retrieval_tolerance"],
                "gain": margins.get(column),
                "reduction": margins["gap"],
            }[claim.kind]
            measured = _column_values(b, column)
            measured = measured[np.isfinite(measured)]  # a metric a run could not compute is NaN (its notes say why)
            baseline_mean = float(measured.mean()) if len(measured) else float("nan")
            part = Part(claim, column, label, [s for s, k in zip(seeds, kept) if k], sample, margin, baseline_mean)
            if claim.kind == "gain" and 100.0 - baseline_mean < headroom[column]:
                part.room = False
                part.note = (
                    f"no room: the baseline's {baseline_mean:.1f} leaves less headroom below 100 than "
                    f"the paper's median gain ({headroom[column]:g})"
                )
            part.test(claims["min_seeds"])
            parts.append(part)
        checks.append(Check(claim, parts))
    comparison = Comparison(
        experiment,
        method,
        baseline,
        checks,
        seeds,
        (float(np.mean(_column_values(a, "gap"))), float(np.mean(_column_values(b, "gap")))),
        (float(np.mean(_column_values(a, "temperature"))), float(np.mean(_column_values(b, "temperature")))),
        ([s for s, c in zip(seeds, _collapsed(a)) if c], [s for s, c in zip(seeds, _collapsed(b)) if c]),
    )
    comparison.readings = {
        column: (PairedSample.of(_column_values(a, column)), PairedSample.of(_column_values(b, column)))
        for column in GAP_READINGS
        if column in a and column in b
    }
    if gone.any():
        comparison.sensitivity = _without_collapsed(a[~gone], b[~gone], claims["confidence"])
    return comparison


def _without_collapsed(a: pd.DataFrame, b: pd.DataFrame, confidence: float) -> list[str]:
    """Claim 1 and 2 estimates over the pairs in which neither run collapsed (a reading, not a verdict)."""
    columns = {**retrieval_columns(a), **GROUP_COLUMNS}
    level = 2.0 * confidence - 1.0
    shown = [
        f"Δ{label} {PairedSample.difference(_column_values(a, c), _column_values(b, c)).interval(level).shown()}"
        for c, label in columns.items()
    ]
    return [f"without the collapsed pairs ({len(a)} left): " + "; ".join(shown)]


def tested_parts(comparisons: Sequence[Comparison]) -> list[Part]:
    """The parts of a family whose hypotheses were tested; the first level of the family-wise step-down is
    alpha over their number, the level a part is decided at when it is decided first."""
    return [part for comparison in comparisons for part in comparison.parts() if part.testable]


def decide(comparisons: Sequence[Comparison], confidence: float) -> None:
    """The family-wise step-down (Holm's, with Shaffer's constraint that a part's two hypotheses are never
    both true) over every testable hypothesis of the comparisons (one family), then each part's and each
    check's state, adjusted and at the nominal level."""
    alpha = 1.0 - confidence
    parts = [part for comparison in comparisons for part in comparison.parts()]
    p_values = [p for part in parts for p in part.hypotheses()]
    owners = [index for index, part in enumerate(parts) for _ in part.hypotheses()]
    levels = stepdown_levels(p_values, owners, alpha)
    for index, part in enumerate(parts):
        hold, fail = levels[2 * index], levels[2 * index + 1]
        part.state = part.decide(hold is not None, fail is not None)
        part.per_claim_state = part.decide(part.p_hold <= alpha, part.p_fail <= alpha)
    for comparison in comparisons:
        for check in comparison.checks:
            check.state = conjunction([p.state for p in check.parts])
            check.per_claim_state = conjunction([p.per_claim_state for p in check.parts])


def change_converged(change: PairedSample, margin: float, alpha: float) -> bool:
    """Whether a per-seed change lies within +-margin: the equivalence test (TOST at ``alpha``), or, where every
    seed moved alike, that move itself."""
    if change.finite and change.n >= 2 and change.sd == 0:
        return abs(change.mean) < margin
    return change.p_within(-margin, margin) <= alpha


def _change(earlier: Part, later: Part) -> PairedSample:
    """Per-seed change of a paired quantity between two budgets, over the seeds both hold."""
    first = dict(zip(earlier.seeds, earlier.sample.values))
    second = dict(zip(later.seeds, later.sample.values))
    return PairedSample.of([second[s] - first[s] for s in earlier.seeds if s in second])


def convergence(ladder: Sequence[Rung], confidence: float) -> Convergence:
    """The first budget N from which every paired difference's per-seed change to every later budget (one at
    least 2N) lies within its margin; otherwise whether the ladder's last doubling is still moving (a change
    is shown) or too noisy (no change is shown, none is ruled out; a last line then says how many seeds the
    equivalence test of its noisiest change would need)."""
    alpha, level = 1.0 - confidence, 2.0 * confidence - 1.0
    if len(ladder) < 2:
        return Convergence(None, "one budget")
    lines: list[str] = []
    last_moves: list[str] = []
    since = None
    for index, rung in enumerate(ladder):
        later = ladder[index + 1 :]
        if not later or later[-1].budget < 2 * rung.budget:
            break
        moved, noisy, needs = [], [], []
        for other in later:
            for part, other_part in zip(rung.comparison.parts(), other.comparison.parts()):
                change = _change(part, other_part)
                margin = abs(math.log(1.0 - part.margin)) if part.claim.kind == "reduction" else part.margin
                if change_converged(change, margin, alpha):
                    continue
                interval = change.interval(level)
                text = f"Δ{part.label} moved {interval.shown(2)} from {rung.budget} to {other.budget} epochs (margin ±{margin:.2g})"
                if interval.low > 0 or interval.high < 0:
                    moved.append(text)
                    continue
                noisy.append(text)
                # the equivalence test passes with no drift at all: two thresholds, each a margin from 0
                needed = change.seeds_needed((margin, margin), alpha, most=PRACTICAL_SEEDS)
                if needed is not None:
                    where = f"Δ{part.label} from {rung.budget} to {other.budget} epochs"
                    needs.append((needed, f"{where}, SD {change.sd:.2g}, margin ±{margin:.2g}"))
        if not moved and not noisy:
            since = rung.budget
            lines.append(f"from {rung.budget} epochs on, every paired difference stays within its margin")
            break
        last_moves = moved + noisy
        lines.append(
            f"from {rung.budget} epochs: " + "; ".join((moved + noisy)[:3]) + (" ..." if len(moved + noisy) > 3 else "")
        )
        last_moved, last_needs = bool(moved), needs
    if since is not None:
        return Convergence(since, "converged", lines)
    if not last_moves:
        return Convergence(None, "too short", ["no budget of the ladder has a later one at least twice as long"])
    if last_moved:
        return Convergence(None, "still moving", lines)
    if last_needs:
        lines.append(equivalence_seeds_line(*max(last_needs)))
    return Convergence(None, "too noisy", lines)


def equivalence_seeds_line(needed: int, change: str) -> str:
    """What a too-noisy ladder lacks: the paired seeds the equivalence test of its noisiest change would need
    for the planned power were there no drift at all."""
    power = f"{100 * POWER:g} % power"
    if needed >= PRACTICAL_SEEDS:
        return (
            f"too noisy: even {PRACTICAL_SEEDS} paired seeds would leave the equivalence test of the noisiest "
            f"change ({change}) below {power}"
        )
    return (
        f"too noisy: the equivalence test of the noisiest change ({change}) would need about {needed} paired "
        f"seeds for {power} were there no drift"
    )


def check_claims(
    runs: pd.DataFrame,
    claims: Mapping,
    ladders: Mapping[str, list[tuple[int, str]]] | None = None,
    references: Mapping[str, str | None] | None = None,
) -> list[Family]:
    """The families of comparisons: ``claims.methods`` against ``claims.baseline`` (the verdict), and
    ``claims.controls`` (each ``method`` against its ``baseline``). ``ladders``: experiment -> [(budget,
    evaluation)] for experiments evaluated along a budget ladder, whose comparisons are read at their last
    budget with the ladder's convergence; ``references``: evaluation -> the paper's data set it mirrors
    (modgap.verdict.paper.margins)."""
    ladders, references = ladders or {}, references or {}
    rung_of = {
        evaluation: (experiment, budget) for experiment, rungs in ladders.items() for budget, evaluation in rungs
    }
    pairs = [("verdict", method, claims["baseline"]) for method in claims["methods"]]
    pairs += [("temperature controls", c["method"], c["baseline"]) for c in claims.get("controls", [])]
    compared = runs[runs["method"].isin({name for _, *names in pairs for name in names})]
    r1 = retrieval_columns(runs)
    problem = (
        runs_problem(compared, ["gap"], list(GROUP_COLUMNS), optional=list(r1), readings=list(GAP_READINGS))
        if r1
        else "no R@1 column with a value (tv_r1, ta_r1 or pair_r1_<anchor>_<other>): claim 1 has nothing to compare"
    )
    if problem:
        raise UnusableRunsError(problem)
    families: dict[str, list[Comparison]] = {name: [] for name, _, _ in pairs}
    by_evaluation = {name: block for name, block in runs.groupby("experiment", sort=False)}
    for family, method, baseline in pairs:
        built: dict[str, Comparison] = {}
        for evaluation, block in by_evaluation.items():
            ours = block[block["method"] == method].set_index("seed")
            theirs = block[block["method"] == baseline].set_index("seed")
            if not len(set(ours.index) & set(theirs.index)):
                continue
            margins = paper.margins(references.get(evaluation), claims["margin_fraction"])
            comparison = compare(ours, theirs, claims, margins, evaluation, method, baseline)
            built[evaluation] = comparison
        for evaluation, comparison in built.items():
            if evaluation not in rung_of:
                families[family].append(comparison)
        for experiment, rungs in ladders.items():
            present = [Rung(budget, name, built[name]) for budget, name in rungs if name in built]
            if not present:
                continue
            decide([rung.comparison for rung in present], claims["confidence"])  # nominal states per budget
            headline = present[-1].comparison
            headline.experiment, headline.budget = experiment, present[-1].budget
            headline.ladder, headline.convergence = present, convergence(present, claims["confidence"])
            families[family].append(headline)
    result = [Family(name, comparisons) for name, comparisons in families.items() if comparisons]
    for family in result:
        decide(family.comparisons, claims["confidence"])
    return result
