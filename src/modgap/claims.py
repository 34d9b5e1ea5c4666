"""The claims check: do the paper's three claims (SPEC section 1) hold on our runs?

Each method of ``claims.methods`` is compared with ``claims.baseline`` (CLIP with a
learnable temperature) seed by seed, on every experiment that trained both. Each
claim gets one of three verdicts from the confidence intervals (modgap.stats) of
the paired differences:

1. retrieval barely changes: every R@1 (TV, TA) difference lies within
   +-``retrieval_tolerance`` (holds); one lies entirely outside it (fails);
2. group-wise metrics improve: the V-Measure and the kNN differences both lie above
   0 (holds); either lies below ``group_margin``, so a gain of that size is ruled out
   (fails);
3. the gap closes: the gap ratio lies below 1 (holds); it lies at or above 1 (fails).

Anything else is inconclusive; where claim 2's intervals both hold and fail (above 0
but below the margin), holds wins: the gain is shown, if small. With one seed the
bounds are the point values, marked as such. Runs that did not converge or that
collapsed are flagged beside the verdict they enter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from modgap.errors import corrupt
from modgap.stats import Interval, paired_difference, paired_ratio

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
RETRIEVAL_COLUMNS = {"tv_r1": "TV R@1", "ta_r1": "TA R@1"}


@dataclass
class Verdict:
    experiment: str
    method: str
    claim: str
    state: str
    evidence: str
    intervals: dict[str, Interval] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def _interval(interval: Interval, digits: int = 1, signed: bool = True) -> str:
    sign = "+" if signed else ""
    if interval.is_point:
        return f"{interval.estimate:{sign}.{digits}f} (point value, one seed)"
    return f"{interval.estimate:{sign}.{digits}f} [{interval.low:{sign}.{digits}f}, {interval.high:{sign}.{digits}f}]"


def _retrieval_verdict(changes: Mapping[str, Interval], tolerance: float) -> str:
    if not changes or any(pd.isna(c.estimate) for c in changes.values()):
        return INCONCLUSIVE
    if any(c.above(tolerance) or c.below(-tolerance) for c in changes.values()):
        return FAILS
    if all(c.within(-tolerance, tolerance) for c in changes.values()):
        return HOLDS
    return INCONCLUSIVE


def _group_verdict(gains: Mapping[str, Interval], margin: float) -> str:
    if any(pd.isna(g.estimate) for g in gains.values()):
        return INCONCLUSIVE
    if all(g.above(0.0) for g in gains.values()):
        return HOLDS
    if any(g.below(margin) for g in gains.values()):
        return FAILS
    return INCONCLUSIVE


def _gap_verdict(ratio: Interval) -> str:
    if pd.isna(ratio.estimate):
        return INCONCLUSIVE
    if ratio.below(1.0):
        return HOLDS
    if ratio.low >= 1.0:
        return FAILS
    return INCONCLUSIVE


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


def check_claims(runs: pd.DataFrame, claims: Mapping, modality_counts: Mapping[str, int]) -> list[Verdict]:
    """Verdicts for every (experiment, method) pair with runs of both the method and the baseline."""
    baseline, confidence = claims["baseline"], claims["confidence"]
    verdicts = []
    for experiment, block in runs.groupby("experiment", sort=False):
        base = block[block["method"] == baseline].set_index("seed")
        for method in claims["methods"]:
            ours = block[block["method"] == method].set_index("seed")
            seeds = sorted(set(base.index) & set(ours.index))
            if not seeds:
                continue
            a, b = ours.loc[seeds], base.loc[seeds]
            flags = _flags(a.reset_index(), method) + _flags(b.reset_index(), baseline)
            seeds_note = f"{len(seeds)} paired seeds"

            recalls = [k for k in RETRIEVAL_COLUMNS if k in a and a[k].notna().all() and b[k].notna().all()]
            changes = {k: paired_difference(a[k], b[k], confidence) for k in recalls}
            tolerance = claims["retrieval_tolerance"]
            verdicts.append(
                Verdict(
                    experiment, method, "1. closing the gap barely changes retrieval (R@1)",
                    _retrieval_verdict(changes, tolerance),
                    "; ".join(f"Δ{RETRIEVAL_COLUMNS[k]} {_interval(c)}" for k, c in changes.items())
                    + f"  [holds within ±{tolerance:g}, fails outside it; {seeds_note}]",
                    changes, flags,
                )  # fmt: skip
            )

            gains = {k: paired_difference(a[k], b[k], confidence) for k in ("v_measure", "knn_acc")}
            margin = claims["group_margin"]
            verdicts.append(
                Verdict(
                    experiment, method, "2. closing the gap improves group-wise metrics",
                    _group_verdict(gains, margin),
                    f"ΔV-Measure {_interval(gains['v_measure'])}; ΔkNN {_interval(gains['knn_acc'])}"
                    f"  [holds when both lie above 0, fails when one lies below +{margin:g}]",
                    gains, flags,
                )  # fmt: skip
            )

            ratio = paired_ratio(a["gap"], b["gap"], confidence)
            verdicts.append(
                Verdict(
                    experiment, method,
                    f"3. the loss closes the gap ({modality_counts.get(experiment, '?')} modalities)",
                    _gap_verdict(ratio),
                    f"gap ratio {_interval(ratio, 2, signed=False)} (gap {a['gap'].mean():.3f} vs "
                    f"{b['gap'].mean():.3f})  [holds below 1, fails at or above 1]",
                    {"gap_ratio": ratio}, flags,
                )  # fmt: skip
            )
    return verdicts


def format_verdicts(verdicts: list[Verdict], claims: Mapping) -> str:
    if not verdicts:
        return (
            f"No experiment has runs of '{claims['baseline']}' and of any of {', '.join(claims['methods'])}: "
            "nothing to check.\n"
        )
    level = f"{100 * claims['confidence']:g}%"
    lines = [
        f"Claims check: each method against {claims['baseline']}, paired by seed; "
        f"{level} t-intervals of the per-seed differences (ratios: geometric mean).",
    ]
    current = None
    for verdict in verdicts:
        if (verdict.experiment, verdict.method) != current:
            current = (verdict.experiment, verdict.method)
            lines += ["", f"{verdict.experiment}: {verdict.method} vs {claims['baseline']}"]
            lines += [f"  ! {flag}" for flag in verdict.flags]
        lines.append(f"  [{verdict.state.upper():^12}] {verdict.claim}")
        lines.append(f"                 {verdict.evidence}")
    counts = {state: sum(v.state == state for v in verdicts) for state in (HOLDS, FAILS, INCONCLUSIVE)}
    lines += ["", f"{counts[HOLDS]} hold, {counts[FAILS]} fail, {counts[INCONCLUSIVE]} inconclusive "
              f"(of {len(verdicts)} checks)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def mismatch(runs: pd.DataFrame, expected: Iterable[tuple[str, str, int]]) -> list[str]:
    """How the (experiment, method, seed) runs of ``runs`` differ from ``expected`` (empty when they match)."""
    expected = {(e, m, int(s)) for e, m, s in expected}
    found = set(zip(runs["experiment"], runs["method"], runs["seed"].astype(int))) if len(runs) else set()
    problems = []
    for label, runs_ in (("missing from the results", expected - found), ("not in the configuration", found - expected)):
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
) -> str:
    """The claims check of ``runs_csv``; with ``expected`` runs, a table that lacks any (or holds
    others) is refused as a damaged intermediate instead of giving a verdict."""
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
    return format_verdicts(check_claims(runs, claims, modality_counts), claims)
