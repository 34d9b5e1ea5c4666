"""The claims check: do the paper's three claims hold on our runs?

Each method of ``claims.methods`` is compared with ``claims.baseline`` (CLIP with a
learnable temperature) seed by seed, on every experiment that trained both. Each
comparison makes three checks, each decided from confidence intervals
(modgap.stats) of the paired per-seed differences:

1. retrieval barely changes: every R@1 (TV, TA) difference lies within
   +-``retrieval_tolerance`` (holds); one lies entirely outside it (fails);
2. group-wise metrics are higher: the V-Measure and the kNN differences both lie
   above 0 (holds; "holds, below margin" when one of them also lies below
   ``group_margin``, so the gain is shown but a gain of the margin's size is ruled
   out); otherwise, one lies below ``group_margin`` (fails);
3. the gap is smaller: the gap ratio lies below 1 (holds); at or above 1 (fails).

Anything else is inconclusive. An interval from fewer than ``min_seeds`` seeds, or one
of zero width (every seed gave the same difference), never decides a check: it is
inconclusive with a note.

The checks of one report are a family: with a dozen of them, some unadjusted 95 %
decisions are expected to be wrong. Each check gets a p-value, the smallest level at
which its intervals decide it (found by bisection on the level, since a decision only
gets lost as intervals widen), and Holm's step-down procedure assigns the levels at
which the checks are decided while the family-wise error rate stays at 1 - confidence.
The Holm column decides; the per-claim column (each check at the nominal level) is
shown beside it. Each verdict names the training budget it was decided at and whether
all its runs converged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from modgap.errors import corrupt
from modgap.stats import Interval, paired_difference, paired_ratio
from modgap.tables import PAPER_PAIRS, paired_r1_columns

HOLDS, HOLDS_BELOW_MARGIN, FAILS, INCONCLUSIVE = "holds", "holds, below margin", "fails", "inconclusive"
STATES = (HOLDS, HOLDS_BELOW_MARGIN, FAILS, INCONCLUSIVE)
RETRIEVAL_COLUMNS = dict(PAPER_PAIRS.values())  # the paper's paired R@1 columns, whose margins the ladders test
GROUP_COLUMNS = {"v_measure": "V-Measure", "knn_acc": "kNN"}
# A decision is a state and the intervals it was read from, at a given confidence level.
Decision = tuple[str, dict[str, Interval]]


@dataclass
class Verdict:
    experiment: str
    method: str
    claim: str
    state: str  # the deciding one: Holm's family-wise adjusted verdict
    per_claim_state: str  # each check at the nominal level alone
    evidence: str
    p_value: float
    intervals: dict[str, Interval] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    budget: str = ""
    converged: bool | None = True  # None: not known (trained elsewhere)


def _interval(interval: Interval, digits: int = 1, signed: bool = True) -> str:
    sign = "+" if signed else ""
    if interval.is_point:
        return f"{interval.estimate:{sign}.{digits}f} (point value, one seed)"
    return f"{interval.estimate:{sign}.{digits}f} [{interval.low:{sign}.{digits}f}, {interval.high:{sign}.{digits}f}]"


def _undecidable(intervals: Mapping[str, Interval], min_seeds: int) -> str | None:
    """Why these intervals cannot decide a check (None: they can)."""
    if not intervals or any(math.isnan(i.estimate) for i in intervals.values()):
        return "no finite values"
    fewest = min(i.n for i in intervals.values())
    if fewest < min_seeds:
        return f"{fewest} paired seeds, fewer than claims.min_seeds ({min_seeds}): not decided"
    flat = [name for name, i in intervals.items() if i.n >= 2 and i.half_width() == 0]
    if flat:
        return f"zero-width interval ({', '.join(flat)}: every seed gave the same difference): not decided"
    return None


def _retrieval_state(changes: Mapping[str, Interval], tolerance: float) -> str:
    if any(c.above(tolerance) or c.below(-tolerance) for c in changes.values()):
        return FAILS
    if all(c.within(-tolerance, tolerance) for c in changes.values()):
        return HOLDS
    return INCONCLUSIVE


def _group_state(gains: Mapping[str, Interval], margin: float) -> str:
    if all(g.above(0.0) for g in gains.values()):
        return HOLDS_BELOW_MARGIN if any(g.below(margin) for g in gains.values()) else HOLDS
    if any(g.below(margin) for g in gains.values()):
        return FAILS
    return INCONCLUSIVE


def _gap_state(ratios: Mapping[str, Interval]) -> str:
    ratio = ratios["gap_ratio"]
    if ratio.below(1.0):
        return HOLDS
    if ratio.low >= 1.0:
        return FAILS
    return INCONCLUSIVE


def p_value(decide: Callable[[float], Decision], iterations: int = 60) -> float:
    """The smallest level alpha at which ``decide(1 - alpha)`` is not inconclusive, searched in
    [1e-15, 0.5] (1.0 when not decided even at 0.5, i.e. by 50 % intervals).

    Intervals only widen as alpha falls, and a decision rests on intervals clearing thresholds, so
    being decided is monotone in alpha: bisection on log(alpha) finds the boundary.
    """
    low, high = math.log(1e-15), math.log(0.5)
    if decide(1.0 - math.exp(high))[0] == INCONCLUSIVE:
        return 1.0
    if decide(1.0 - math.exp(low))[0] != INCONCLUSIVE:
        return math.exp(low)
    for _ in range(iterations):
        middle = (low + high) / 2.0
        if decide(1.0 - math.exp(middle))[0] == INCONCLUSIVE:
            low = middle
        else:
            high = middle
    return math.exp(high)


def holm_levels(p_values: list[float], alpha: float) -> list[float | None]:
    """Holm's step-down: the level at which each hypothesis is rejected, or None where it is not.

    Sorted by p-value, the i-th (0-based) of m is tested at alpha / (m - i); testing stops at the first
    that is not rejected, and every later one is kept (Holm 1979)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    levels: list[float | None] = [None] * len(p_values)
    for rank, index in enumerate(order):
        level = alpha / (len(p_values) - rank)
        if p_values[index] > level:
            break
        levels[index] = level
    return levels


def _flags(runs: pd.DataFrame, method: str) -> list[str]:
    """Warnings about a method's runs that enter a verdict: not converged, collapsed."""
    flags = []
    for column, what in (("converged", "did not converge"), ("collapsed", "collapsed")):
        if column not in runs:
            continue
        values = runs[column].fillna(column == "converged").astype(bool)  # unknown: not flagged
        count = int((~values).sum()) if column == "converged" else int(values.sum())
        if count:
            flags.append(f"{count} of {len(runs)} {method} runs {what}")
    return flags


def _budget(*runs: pd.DataFrame) -> str:
    epochs = sorted({int(e) for frame in runs if "epochs" in frame for e in frame["epochs"].dropna()})
    if not epochs:
        return "an unknown budget"
    return f"{epochs[0]} epochs" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs"


def _all_converged(*runs: pd.DataFrame) -> bool | None:
    """Whether every run converged; None when no run says (embeddings trained elsewhere)."""
    known = [frame["converged"].dropna() for frame in runs if "converged" in frame]
    if not any(len(values) for values in known):
        return None
    return all(bool(values.astype(bool).all()) for values in known)


def _checks(
    a: pd.DataFrame, b: pd.DataFrame, claims: Mapping, modalities
) -> list[tuple[str, Callable[[float], Decision], Callable]]:
    """The three checks of one comparison: (label, decide(confidence), evidence(intervals))."""
    method, baseline, min_seeds = claims["_method"], claims["baseline"], claims["min_seeds"]
    tolerance, margin = claims["retrieval_tolerance"], claims["group_margin"]

    def checked(intervals_at, state_of):
        # whether the data can decide at all (seeds, spread) is read once, at the nominal level
        undecidable = _undecidable(intervals_at(claims["confidence"]), min_seeds)

        def decide(confidence: float) -> Decision:
            intervals = intervals_at(confidence)
            return (INCONCLUSIVE if undecidable else state_of(intervals)), intervals

        return decide

    labels = retrieval_columns(a)
    recalls = [k for k in labels if a[k].notna().all() and b[k].notna().all()]
    retrieval = checked(lambda c: {k: paired_difference(a[k], b[k], c) for k in recalls},
                        lambda i: _retrieval_state(i, tolerance))  # fmt: skip
    group = checked(lambda c: {k: paired_difference(a[k], b[k], c) for k in GROUP_COLUMNS},
                    lambda i: _group_state(i, margin))  # fmt: skip
    gap = checked(lambda c: {"gap_ratio": paired_ratio(a["gap"], b["gap"], c)}, _gap_state)

    def retrieval_evidence(intervals):
        return "; ".join(f"Δ{labels[k]} {_interval(i)}" for k, i in intervals.items()) + (
            f"  [holds within ±{tolerance:g}, fails outside it]"
        )

    def group_evidence(intervals):
        text = "; ".join(f"Δ{GROUP_COLUMNS[k]} {_interval(i)}" for k, i in intervals.items())
        text += f"  [holds when both lie above 0, fails when one lies below +{margin:g}]"
        width = intervals["v_measure"].half_width()
        if not intervals["v_measure"].is_point and width > margin:
            text += f"; ΔV-Measure half-width {width:.1f} > margin {margin:g}: too few seeds to rule a margin-size gain in or out"
        return text

    def gap_evidence(intervals):
        return (f"gap ratio {_interval(intervals['gap_ratio'], 2, signed=False)} (gap {a['gap'].mean():.3f} vs "
                f"{b['gap'].mean():.3f})  [holds below 1, fails at or above 1]")  # fmt: skip

    return [
        (f"1. {method} vs {baseline}: R@1 within ±{tolerance:g} points", retrieval, retrieval_evidence),
        (f"2. {method} vs {baseline}: V-Measure and kNN higher", group, group_evidence),
        (f"3. {method} vs {baseline}: smaller gap ({modalities} modalities)", gap, gap_evidence),
    ]


def retrieval_columns(runs: pd.DataFrame) -> dict[str, str]:
    """The R@1 columns of a runs table that claim 1 compares, with their labels: every paired R@1 column
    (modgap.tables.paired_r1_column), the paper's TV and TA R@1 first."""
    return paired_r1_columns(runs.columns)


def _margins(claims: Mapping) -> dict[str, float]:
    """How far a paired difference may move when the budget doubles, per metric: each claim's margin."""
    return {**dict.fromkeys(RETRIEVAL_COLUMNS, claims["retrieval_tolerance"]),
            **dict.fromkeys(GROUP_COLUMNS, claims["group_margin"]), "gap_ratio": claims["ratio_margin"]}  # fmt: skip


@dataclass
class Rung:
    """One budget of a comparison's ladder: its verdicts (per claim, nominal level) and estimates."""

    budget: int
    evaluation: str
    states: list[str]
    intervals: dict[str, Interval]  # every paired difference (ratio for the gap) at the nominal level
    gaps: tuple[float, float]  # method's, baseline's

    @property
    def estimates(self) -> dict[str, float]:
        return {k: i.estimate for k, i in self.intervals.items()}


@dataclass
class Ladder:
    """A comparison across the budgets of one experiment, and where it stops moving."""

    experiment: str
    method: str
    rungs: list[Rung]
    converged_at: int | None  # the first budget whose doubling moves no paired difference by its margin
    doubling: list[str]  # the test's outcome at every budget that has a double


def doubling_test(rungs: list[Rung], margins: Mapping[str, float]) -> tuple[int | None, list[str]]:
    """The first budget N whose double 2N (or the next budget above it) changes every paired difference
    by less than its claim's margin, and what the test found at every budget that has a double."""
    lines, converged = [], None
    for rung in rungs:
        double = next((r for r in rungs if r.budget >= 2 * rung.budget), None)
        if double is None:
            continue
        moves = {k: abs(double.estimates[k] - rung.estimates[k]) for k in rung.estimates if k in double.estimates}
        too_far = {k: v for k, v in moves.items() if not v < margins[k]}  # NaN moves too far
        if too_far:
            worst = ", ".join(f"{k} moved {v:.2f} (margin {margins[k]:g})" for k, v in too_far.items())
            lines.append(f"{rung.budget} -> {double.budget} epochs: {worst}")
        else:
            lines.append(f"{rung.budget} -> {double.budget} epochs: every difference moved less than its margin")
            converged = rung.budget if converged is None else converged
    return converged, lines


def check_claims(
    runs: pd.DataFrame,
    claims: Mapping,
    modality_counts: Mapping[str, int],
    ladders: Mapping[str, list[tuple[int, str]]] | None = None,
) -> tuple[list[Verdict], list[Ladder]]:
    """Verdicts for every (experiment, method) pair with runs of both the method and the baseline.

    ``ladders``: experiment -> [(budget, evaluation name)] for experiments evaluated along a budget
    ladder. Such a comparison gives verdicts at its converged budget (``doubling_test``), or at its last
    budget marked not converged; its other budgets appear in its Ladder. The verdicts returned are the
    family Holm's adjustment covers.
    """
    baseline, confidence = claims["baseline"], claims["confidence"]
    ladders = ladders or {}
    rung_of = {
        evaluation: (experiment, budget) for experiment, rungs in ladders.items() for budget, evaluation in rungs
    }
    comparisons = {}  # (evaluation, method) -> (checks, context)
    for experiment, block in runs.groupby("experiment", sort=False):
        base = block[block["method"] == baseline].set_index("seed")
        for method in claims["methods"]:
            ours = block[block["method"] == method].set_index("seed")
            seeds = sorted(set(base.index) & set(ours.index))
            if not seeds:
                continue
            a, b = ours.loc[seeds], base.loc[seeds]
            flags = _flags(a.reset_index(), method) + _flags(b.reset_index(), baseline)
            context = {"budget": _budget(a, b), "converged": _all_converged(a, b), "flags": flags,
                       "gaps": (float(a["gap"].mean()), float(b["gap"].mean()))}  # fmt: skip
            checks = _checks(a, b, {**claims, "_method": method}, modality_counts.get(experiment, "?"))
            comparisons[(experiment, method)] = (checks, context)

    headline, ladder_results = [], []
    margins = _margins(claims)
    for (evaluation, method), (checks, context) in comparisons.items():
        if evaluation not in rung_of:
            headline.append((evaluation, method, checks, context))
    for experiment, rungs in ladders.items():
        for method in claims["methods"]:
            present = [(budget, name) for budget, name in rungs if (name, method) in comparisons]
            if not present:
                continue
            built = []
            for budget, name in present:
                checks, context = comparisons[(name, method)]
                decisions = [decide(confidence) for _, decide, _ in checks]
                intervals = {k: i for _, found in decisions for k, i in found.items()}
                built.append(Rung(budget, name, [state for state, _ in decisions], intervals, context["gaps"]))
            converged_at, lines = doubling_test(built, margins)
            ladder_results.append(Ladder(experiment, method, built, converged_at, lines))
            chosen = converged_at if converged_at is not None else built[-1].budget
            name = next(r.evaluation for r in built if r.budget == chosen)
            checks, context = comparisons[(name, method)]
            context = {**context, "budget": f"{chosen} epochs", "converged": converged_at is not None}
            headline.append((name, method, checks, context))

    pending = [(e, m, label, decide, evidence, context) for e, m, checks, context in headline
               for label, decide, evidence in checks]  # fmt: skip
    p_values = [p_value(decide) for _, _, _, decide, _, _ in pending]
    levels = holm_levels(p_values, 1.0 - confidence)
    verdicts = []
    for (experiment, method, label, decide, evidence, context), p, level in zip(pending, p_values, levels):
        state, intervals = decide(confidence)
        held = decide(1.0 - level)[0] if level is not None else INCONCLUSIVE
        text = evidence(intervals)
        note = _undecidable(intervals, claims["min_seeds"])
        if note:
            text += f"; {note}"
        context = {k: v for k, v in context.items() if k != "gaps"}
        verdicts.append(Verdict(experiment, method, label, held, state, text, p, intervals, **context))
    return verdicts, ladder_results


def format_ladders(ladders: list[Ladder], claims: Mapping, labels: Mapping[str, str] | None = None) -> list[str]:
    """The budget ladder of every comparison: per budget, both gaps, the paired differences and the
    per-claim states; then the doubling test. Methods are named as the verdicts name them (``labels``)."""
    if not ladders:
        return []
    labels = labels or {}
    lines = ["", "Budget ladders (per claim, nominal level; the verdicts above are read where the doubling test "
                 "converged, else at the last budget):"]  # fmt: skip
    for ladder in ladders:
        lines += ["", f"{ladder.experiment}: {_named(ladder.method, labels)} vs {_named(claims['baseline'], labels)}"]
        lines.append(f"  {'epochs':>6}  {'gap':>13}  {'ΔV-Measure':>10}  {'ΔkNN':>6}  {'ΔR@1':>11}  states (1, 2, 3)")
        for rung in ladder.rungs:
            recall = "/".join(f"{rung.estimates[k]:+.1f}" for k in RETRIEVAL_COLUMNS if k in rung.estimates)
            lines.append(
                f"  {rung.budget:>6}  {rung.gaps[0]:.3f} / {rung.gaps[1]:.3f}  {rung.estimates['v_measure']:>+10.1f}  "
                f"{rung.estimates['knn_acc']:>+6.1f}  {recall:>11}  {', '.join(rung.states)}"
            )
        status = f"converged at {ladder.converged_at} epochs" if ladder.converged_at else "not converged on this ladder"
        lines.append(f"  doubling test: {status}")
        lines += [f"    {line}" for line in ladder.doubling]
    return lines


def _p_text(p: float) -> str:
    return "p > 0.5" if p >= 1.0 else f"p = {p:.2g}"


def _named(method: str, labels: Mapping[str, str]) -> str:
    """A method's key, with the configuration's display name beside it where it gives one."""
    return f"{method} ({labels[method]})" if method in labels else method


def format_verdicts(
    verdicts: list[Verdict],
    claims: Mapping,
    ladders: list[Ladder] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The verdicts as text; ``labels``: the configuration's display names, shown beside the methods' keys."""
    labels = labels or {}
    if not verdicts:
        return (
            f"No experiment has runs of '{claims['baseline']}' and of any of {', '.join(claims['methods'])}: "
            "nothing to check.\n"
        )
    level = f"{100 * claims['confidence']:g}%"
    lines = [
        f"Claims check: each method against {claims['baseline']}, paired by seed; {level} t-intervals of the "
        "per-seed differences (ratios: geometric mean). The intervals cover training randomness (seeds) on one "
        "data set and one split.",
        f"The {len(verdicts)} checks are one family: Holm's adjustment decides (first column); the second "
        f"column is each check alone at {level}. Inconclusive: the intervals neither show the claim nor rule it out.",
    ]
    current = None
    width = max(len(s) for s in STATES) + 2
    for verdict in verdicts:
        if (verdict.experiment, verdict.method) != current:
            current = (verdict.experiment, verdict.method)
            status = {True: "all runs converged", False: "NOT all runs converged"}.get(
                verdict.converged, "convergence not known: trained elsewhere"
            )
            lines += [
                "",
                f"{verdict.experiment}: {_named(verdict.method, labels)} vs {_named(claims['baseline'], labels)}, "
                f"at {verdict.budget} ({status})",
            ]
            lines += [f"  ! {flag}" for flag in verdict.flags]
            lines.append(f"  {'Holm (decides)':<{width}} {'per claim':<{width}}")
        scope = f" — at {verdict.budget}, not converged" if verdict.converged is False else ""
        lines.append(f"  {'[' + verdict.state.upper() + ']':<{width}} {'[' + verdict.per_claim_state + ']':<{width}} "
                     f"{verdict.claim}{scope}")  # fmt: skip
        lines.append(f"      {verdict.evidence}; {_p_text(verdict.p_value)}")
    lines += format_ladders(ladders or [], claims, labels)
    lines += ["", "Holm: " + _counts(verdicts, "state") + f" (of {len(verdicts)} checks).",
              "Per claim: " + _counts(verdicts, "per_claim_state") + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _counts(verdicts: list[Verdict], attribute: str) -> str:
    counts = {state: sum(getattr(v, attribute) == state for v in verdicts) for state in STATES}
    return (f"{counts[HOLDS]} hold, {counts[HOLDS_BELOW_MARGIN]} hold below margin, {counts[FAILS]} fail, "
            f"{counts[INCONCLUSIVE]} inconclusive")  # fmt: skip


def definition_mismatch(runs: pd.DataFrame, expected: Mapping[str, str]) -> list[str]:
    """The (experiment, method) pairs of ``runs`` made by another definition than ``expected``
    (``<evaluation>/<method>`` -> modgap.plan.definition_digest); tables without the column are not checked."""
    if "definition" not in runs:
        return []
    found = dict(zip(runs["experiment"] + "/" + runs["method"], runs["definition"]))
    return [f"{key}: its runs were made by definition {found[key]}, this configuration defines {digest}"
            for key, digest in expected.items() if key in found and found[key] != digest]  # fmt: skip


def mismatch(runs: pd.DataFrame, expected: Iterable[tuple[str, str, int]]) -> list[str]:
    """How the (experiment, method, seed) runs of ``runs`` differ from ``expected`` (empty when they match)."""
    expected = {(e, m, int(s)) for e, m, s in expected}
    found = set(zip(runs["experiment"], runs["method"], runs["seed"].astype(int))) if len(runs) else set()
    problems = []
    for label, runs_ in (
        ("missing from the results", expected - found),
        ("not in the configuration", found - expected),
    ):
        if runs_:
            listed = ", ".join(f"{e}/{m}/seed{s}" for e, m, s in sorted(runs_)[:5])
            more = f" and {len(runs_) - 5} more" if len(runs_) > 5 else ""
            problems.append(f"{len(runs_)} runs {label}: {listed}{more}")
    return problems


def claims_report(
    runs_csv: str | Path,
    claims: Mapping,
    modality_counts: Mapping[str, int],
    expected: Iterable[tuple[str, str, int]] | None = None,
    ladders: Mapping[str, list[tuple[int, str]]] | None = None,
    provenance: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The claims check of ``runs_csv``; with ``expected`` runs, a table that lacks any (or holds
    others) is refused as a damaged intermediate instead of giving a verdict. ``provenance``: a first line
    naming the configuration; ``labels``: the configuration's display names of its methods."""
    try:
        runs = pd.read_csv(runs_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise corrupt(runs_csv, "runs table", error) from None
    missing = [c for c in ("experiment", "method", "seed") if c not in runs]
    if missing:
        raise corrupt(runs_csv, "runs table", f"no column {', '.join(missing)}")
    if expected is not None:
        problems = mismatch(runs, expected)
        if problems:
            raise corrupt(runs_csv, "runs table", "; ".join(problems))
    verdicts, ladder_results = check_claims(runs, claims, modality_counts, ladders)
    return (f"{provenance}\n\n" if provenance else "") + format_verdicts(verdicts, claims, ladder_results, labels)
