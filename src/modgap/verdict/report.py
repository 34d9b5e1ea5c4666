"""The claims check as text: every comparison's checks with their estimates, intervals, p-values and states,
why an undecided part is undecided, and the budget ladders (``claims_report``: results/claims.txt)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from string import ascii_lowercase

import pandas as pd

from modgap.errors import corrupt
from modgap.verdict.decision import (
    FAILS,
    GAP_READINGS,
    HOLDS,
    HOLDS_BELOW_MARGIN,
    INCONCLUSIVE,
    NO_ROOM,
    PRACTICAL_SEEDS,
    RETRIEVAL_COLUMNS,
    STATES,
    Check,
    Comparison,
    Family,
    Part,
    check_claims,
    tested_parts,
)
from modgap.verdict.evidence import UnusableRunsError, mismatch, read_runs
from modgap.verdict.stats import POWER, mcnemar_exact


def seeds_note(part: Part, alpha: float, family_parts: int) -> str:
    """Why an inconclusive part is undecided, when its hypotheses could be tested: too few seeds, or the
    family-wise adjustment alone. The seeds are those that would decide it with the planned power, were its
    true mean the observed one and its SD the observed SD, at the level that decides (alpha over the
    ``family_parts`` tested parts of its family: the step-down's first level), and at alpha alone."""
    if part.state != INCONCLUSIVE or part.note:
        return ""
    if part.per_claim_state != INCONCLUSIVE:
        return "decided at the nominal level alone, not after the family-wise adjustment"
    sample, distances = part.sample, part.distances_to_decide()
    deciding = alpha / family_parts
    needed = sample.seeds_needed(distances, deciding, most=PRACTICAL_SEEDS)
    if needed is None or needed <= sample.n:
        return ""
    if needed >= PRACTICAL_SEEDS:  # the estimate sits on its threshold: seeds are not what is missing
        return f"the estimate lies on its threshold: even {PRACTICAL_SEEDS} paired seeds would not decide it"
    alone = sample.seeds_needed(distances, alpha, most=PRACTICAL_SEEDS)
    spread = f"SD {sample.sd:.2g}" + (" on the log scale" if part.claim.kind == "reduction" else "")
    return (
        f"too few seeds: about {needed} paired seeds for {100 * POWER:g} % power at the deciding level "
        f"(alpha/m = {alpha:g}/{family_parts} = {deciding:.3g}); {alone} at {100 * alpha:g} % alone "
        f"(observed {spread})"
    )


def _p_text(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.2g}"


def _named(method: str, labels: Mapping[str, str]) -> str:
    """A method's key, with the configuration's display name beside it where it gives one."""
    return f"{method} ({labels[method]})" if method in labels else method


def _reading_lines(comparison: Comparison, confidence: float) -> list[str]:
    """The gap read two ways (centroid distance and the true pairs' alignment), and what the gap costs each
    method's runs: clustering after centring every modality minus as trained, intervals over seeds."""
    readings, lines = comparison.readings, []
    level = 2.0 * confidence - 1.0

    def both(column: str, digits: int, signed: bool) -> str:
        mine, theirs = readings[column]
        return (
            f"{comparison.method} {mine.interval(level).shown(digits, signed)}, "
            f"{comparison.baseline} {theirs.interval(level).shown(digits, signed)}"
        )

    aligned = [c for c in ("cos_true_pairs", "pair_alignment") if c in readings]
    if aligned:
        lines.append(
            f"  gap as pairs: centroid gap {comparison.method} {comparison.gaps[0]:.3f}, {comparison.baseline} "
            f"{comparison.gaps[1]:.3f}; " + "; ".join(f"{GAP_READINGS[c]} {both(c, 2, False)}" for c in aligned)
        )
    costs = [c for c in ("gap_cost_v_measure", "gap_cost_knn") if c in readings]
    if costs:
        lines.append(
            "  the gap's cost (centred minus as trained): "
            + "; ".join(f"{GAP_READINGS[c]} {both(c, 1, True)}" for c in costs)
        )
    return lines


def _header(comparison: Comparison, labels: Mapping[str, str], confidence: float) -> list[str]:
    where = f"at {comparison.budget} epochs" if comparison.budget is not None else "at its one budget"
    converged = comparison.convergence
    if converged is None:
        status = "convergence not tested (no budget ladder)"
    elif converged.status == "converged":
        status = f"converged: nothing moves by its margin from {converged.since} epochs on"
    else:
        status = f"NOT converged: {converged.status}"
    lines = [
        "",
        f"{comparison.experiment}: {_named(comparison.method, labels)} vs "
        f"{_named(comparison.baseline, labels)}, {where}, {len(comparison.seeds)} paired seeds ({status})",
    ]
    tau_method, tau_base = comparison.temperatures
    if not (math.isnan(tau_method) or math.isnan(tau_base)):
        lines.append(
            f"  temperature at the end: {comparison.method} {tau_method:.3g}, {comparison.baseline} {tau_base:.3g}"
        )
    lines += _reading_lines(comparison, confidence)
    mine, theirs = comparison.collapsed
    if mine or theirs:
        only_mine = len(set(mine) - set(theirs))
        only_theirs = len(set(theirs) - set(mine))
        lines.append(
            f"  ! collapsed runs: {comparison.method} {len(mine)} of {len(comparison.seeds)} (seeds "
            f"{', '.join(map(str, mine)) or 'none'}), {comparison.baseline} {len(theirs)} (seeds "
            f"{', '.join(map(str, theirs)) or 'none'}); exact McNemar p = {mcnemar_exact(only_mine, only_theirs):.2g}; "
            "their pairs stay out of the gap ratio"
        )
        lines += [f"  ! {line}" for line in comparison.sensitivity]
    return lines


def _check_lines(check: Check, comparison: Comparison, claims: Mapping, width: int, family_parts: int) -> list[str]:
    confidence, alpha = claims["confidence"], 1.0 - claims["confidence"]
    title = check.claim.title.format(retrieval=f"{claims['retrieval_tolerance']:g}")
    lines = [
        f"  {'[' + check.state.upper() + ']':<{width}} {'[' + check.per_claim_state + ']':<{width}} "
        f"{check.claim.number}. {title}"
    ]
    for letter, part in zip(ascii_lowercase, check.parts):
        interval = part.interval(confidence)
        if check.claim.kind == "within":
            shown = f"Δ{part.label} {interval.shown()}"
            rule = f"holds within ±{part.margin:g}, fails outside it"
        elif check.claim.kind == "gain":
            shown = f"Δ{part.label} {interval.shown()} (baseline {part.baseline_mean:.1f})"
            rule = f"holds above 0, fails below +{part.margin:.2g}"
        else:
            shown = (
                f"gap ratio {interval.shown(2, signed=False)} (gap "
                f"{comparison.gaps[0]:.3f} vs {comparison.gaps[1]:.3f})"
            )
            rule = f"holds below 1, fails above {1.0 - part.margin:.2g}"
        text = f"{shown}  [{rule}]; p(holds) {_p_text(part.p_hold)}, p(fails) {_p_text(part.p_fail)}"
        notes = [n for n in (part.note, seeds_note(part, alpha, family_parts)) if n]
        text += "".join(f"; {n}" for n in notes)
        if len(check.parts) > 1:
            lines.append(f"      {'[' + part.state.upper() + ']':<{width}} {part.claim.number}{letter}. {text}")
        else:
            lines.append(f"      {text}")
    return lines


def format_ladder(comparison: Comparison, labels: Mapping[str, str]) -> list[str]:
    """A comparison's budget ladder: per budget, both gaps, the paired estimates and the per-claim states
    (nominal level), then where it converged."""
    lines = [
        "",
        f"{comparison.experiment}: {_named(comparison.method, labels)} vs {_named(comparison.baseline, labels)}",
    ]
    lines.append(f"  {'epochs':>6}  {'gap':>13}  {'ΔV-Measure':>10}  {'ΔkNN':>6}  {'ΔR@1':>11}  states (1, 2, 3)")
    for rung in comparison.ladder:
        c = rung.comparison
        estimates = {part.column: part.sample.mean for part in c.parts()}
        recall = "/".join(f"{estimates[k]:+.1f}" for k in RETRIEVAL_COLUMNS if k in estimates)
        lines.append(
            f"  {rung.budget:>6}  {c.gaps[0]:.3f} / {c.gaps[1]:.3f}  {estimates['v_measure']:>+10.1f}  "
            f"{estimates['knn_acc']:>+6.1f}  {recall:>11}  {', '.join(check.per_claim_state for check in c.checks)}"
        )
    converged = comparison.convergence
    lines.append(f"  convergence: {converged.status}" + (f" from {converged.since} epochs" if converged.since else ""))
    lines += [f"    {line}" for line in converged.lines]
    return lines


def _counts(comparisons: Sequence[Comparison], attribute: str) -> str:
    states = [getattr(check, attribute) for c in comparisons for check in c.checks]
    plural = {HOLDS: "hold", HOLDS_BELOW_MARGIN: "hold below margin", FAILS: "fail"}
    shown = [f"{states.count(s)} {plural.get(s, s)}" for s in STATES if states.count(s) or s != NO_ROOM]
    return ", ".join(shown) + f" (of {len(states)} checks)"


def format_report(families: Sequence[Family], claims: Mapping, labels: Mapping[str, str] | None = None) -> str:
    """The verdicts as text; ``labels``: the configuration's display names, shown beside the methods' keys."""
    labels = labels or {}
    if not families:
        return (
            f"No experiment has runs of '{claims['baseline']}' and of any of {', '.join(claims['methods'])}: "
            "nothing to check.\n"
        )
    alpha = 1.0 - claims["confidence"]
    level = f"{100 * (2 * claims['confidence'] - 1):g}%"
    lines = [
        f"Claims check: methods against baselines, paired by seed. Every part tests two one-sided hypotheses "
        f"(the claim holds; it fails at its margin) with t-tests of the per-seed differences (ratios: log scale) "
        f"at {100 * alpha:g}%, p-values in closed form; intervals are {level} (each bound one test's). Margins: "
        f"half the paper's effect in the mirrored setting (docs/verdict.md). The intervals cover training "
        f"randomness (seeds) on one data set and one split.",
    ]
    width = max(len(s) for s in STATES) + 2
    for family in families:
        tested = len(tested_parts(family.comparisons))
        lines += [
            "",
            f"== {family.name.capitalize()}: Holm's step-down over this family's {2 * tested} testable "
            f"hypotheses, with Shaffer's constraint (at most one of a part's two is true: at most {tested} true "
            f"at once), decides (first column); the second column is each at {100 * alpha:g}% alone ==",
        ]
        for comparison in family.comparisons:
            lines += _header(comparison, labels, claims["confidence"])
            lines.append(f"  {'Holm (decides)':<{width}} {'per claim':<{width}}")
            for check in comparison.checks:
                lines += _check_lines(check, comparison, claims, width, tested)
        lines += ["", f"{family.name.capitalize()}, Holm: {_counts(family.comparisons, 'state')}."]
    laddered = [c for family in families for c in family.comparisons if c.ladder]
    if laddered:
        lines += [
            "",
            "Budget ladders (estimates; per-claim states at the nominal level; the verdicts above are read "
            "at each ladder's last budget):",
        ]
        for comparison in laddered:
            lines += format_ladder(comparison, labels)
    return "\n".join(lines) + "\n"


def checked_runs(
    runs_csv: str | Path,
    claims: Mapping,
    expected: Iterable[tuple[str, str, int]] | None = None,
    ladders: Mapping[str, list[tuple[int, str]]] | None = None,
    references: Mapping[str, str | None] | None = None,
    runs: pd.DataFrame | None = None,
) -> list[Family]:
    """The claims check of ``runs_csv``, decided; with ``expected`` runs, a table that lacks any (or holds
    others) is refused as a damaged intermediate instead of giving a verdict. ``runs``: the table as
    ``read_runs`` read it from ``runs_csv``, where the caller has it already."""
    runs = read_runs(runs_csv) if runs is None else runs
    if expected is not None:
        problems = mismatch(runs, expected)
        if problems:
            raise corrupt(runs_csv, "runs table", "; ".join(problems))
    try:
        return check_claims(runs, claims, ladders, references)
    except UnusableRunsError as error:
        raise corrupt(runs_csv, "runs table", str(error)) from None


def report_text(
    families: Sequence[Family],
    claims: Mapping,
    provenance: str | None = None,
    labels: Mapping[str, str] | None = None,
    data_notes: Sequence[str] = (),
) -> str:
    """claims.txt: ``provenance``, a first line naming the configuration; ``labels``: the configuration's display
    names of its methods; ``data_notes``: lines on the data the runs were trained on
    (modgap.data.format.data_notes), shown after it."""
    header = "".join(f"{line}\n\n" for line in [provenance] if line) + "".join(f"Data: {n}\n\n" for n in data_notes)
    return header + format_report(families, claims, labels)


def claims_report(
    runs_csv: str | Path,
    claims: Mapping,
    expected: Iterable[tuple[str, str, int]] | None = None,
    ladders: Mapping[str, list[tuple[int, str]]] | None = None,
    references: Mapping[str, str | None] | None = None,
    provenance: str | None = None,
    labels: Mapping[str, str] | None = None,
    data_notes: Sequence[str] = (),
    runs: pd.DataFrame | None = None,
) -> str:
    """The claims check of ``runs_csv`` (``runs``: as read from it, where the caller has it) as text
    (checked_runs, then report_text)."""
    families = checked_runs(runs_csv, claims, expected, ladders, references, runs)
    return report_text(families, claims, provenance, labels, data_notes)
