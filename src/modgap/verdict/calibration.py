"""The regime calibration: which setting puts the baseline where the paper makes its claims.

The paper's claims are about a baseline (CLIP with a learnable temperature) that leaves a gap between the
modalities (0.86 on CIFAR-10, 0.20 on AV-MNIST) while its group-wise metrics sit below their ceiling. The
calibration trains the baseline alone on a grid of image-tower strength x temperature setting, each cell on
an annealed budget ladder, and this module reads the grid by a rule that looks at the baseline's runs alone
(docs/verdict.md, "Choosing the default's regime"):

1. the cell must be in the paper's regime at the ladder's last budget and at the budget half as long (the
   regime holds over a doubling of training): V-Measure and kNN below their ceilings, mean R@1 at least
   ``r1_over_chance`` times chance, no collapsed seed, and under ``gap_rule: at_least`` a gap of at least
   ``min_gap``;
2. each cell's own convergence is reported beside it (from a budget N on, every seed's change of the gap,
   V-Measure, kNN and R@1 to each later budget, one at least 2N, lies within its margin by an equivalence
   test), not required: on the default's ladder no cell's has converged, since the baseline keeps closing
   its gap as it trains (docs/verdict.md);
3. each experiment takes the strongest tower that has a qualifying cell with a learnable temperature (the
   baseline is CLIP with a learnable temperature; fixed ones are reported, never chosen), and at that tower,
   under ``gap_rule: paper`` (the default), the qualifying learnable setting whose gap at the last budget
   lies nearest the gap the paper reports for CLIP (LT) on the experiment's ``paper_reference`` (CIFAR-10
   0.86, MSCOCO 0.47, AV-MNIST 0.20: AV-MNIST's regime is not CIFAR-10's); under ``at_least``, the first
   qualifying setting in the grid's order (CLIP's own initialisation first). Ties go to the grid's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modgap.io import write_text
from modgap.verdict.decision import change_converged
from modgap.verdict.paper import baseline_gap
from modgap.verdict.paper import margins as paper_margins
from modgap.verdict.stats import PairedSample

# calibration.gap_rule: aim at the paper's baseline gap, or take any gap of at least min_gap.
GAP_RULES = ("paper", "at_least")
# Metrics a converged cell must hold still, with their labels.
CONVERGENCE_METRICS = {"gap": "gap", "v_measure": "V-Measure", "knn_acc": "kNN", "r1_mean": "R@1"}


@dataclass(frozen=True)
class Regime:
    """The paper's regime for one modality count: a large gap, group-wise metrics below their ceilings,
    retrieval far above chance."""

    min_gap: float
    max_v_measure: float
    max_knn: float
    r1_over_chance: float = 3.0


def regime_for(modalities: int, rule: Mapping) -> Regime:
    """The regime of ``calibration`` (two modalities like CIFAR-10, three like AV-MNIST); under ``gap_rule:
    paper`` the gap has no floor, since the choice reads it against the paper's own."""
    ceilings = rule["ceilings"][str(modalities)]
    min_gap = rule["min_gap"] if _gap_rule(rule["gap_rule"]) == "at_least" else 0.0
    return Regime(min_gap, ceilings["v_measure"], ceilings["knn_acc"], rule["r1_over_chance"])


def _gap_rule(gap_rule: str) -> str:
    if gap_rule not in GAP_RULES:
        raise ValueError(f"calibration.gap_rule must be one of {', '.join(GAP_RULES)}, got {gap_rule!r}")
    return gap_rule


def cell_convergence(
    ladder: Sequence[tuple[int, pd.DataFrame]], margins: Mapping[str, float], alpha: float
) -> tuple[int | None, str]:
    """The first budget from which every metric's per-seed change to every later budget (one at least twice
    as long) lies within its margin (TOST at ``alpha``), and a line on what moved where it did not."""
    last = "no budget of the ladder has a later one at least twice as long"
    for index, (budget, runs) in enumerate(ladder):
        later = ladder[index + 1 :]
        if not later or later[-1][0] < 2 * budget:
            break
        moved = []
        for other_budget, other in later:
            seeds = sorted(set(runs.index) & set(other.index))
            for metric, label in CONVERGENCE_METRICS.items():
                change = PairedSample.of(other.loc[seeds, metric].to_numpy() - runs.loc[seeds, metric].to_numpy())
                if not change_converged(change, margins[metric], alpha):
                    moved.append(
                        f"{label} moved {change.mean:+.2f} from {budget} to {other_budget} epochs "
                        f"(margin ±{margins[metric]:g})"
                    )
        if not moved:
            return budget, f"converged from {budget} epochs"
        last = "; ".join(moved[:2])
    return None, f"not converged: {last}"


def regime_problems(runs: pd.DataFrame, regime: Regime) -> list[str]:
    """Why a cell's runs at one budget are outside the regime (empty: inside)."""
    problems = []
    gap, v_measure, knn = runs["gap"].mean(), runs["v_measure"].mean(), runs["knn_acc"].mean()
    if not gap >= regime.min_gap:
        problems.append(f"gap {gap:.2f} < {regime.min_gap:g}")
    if not v_measure < regime.max_v_measure:
        problems.append(f"V-Measure {v_measure:.1f} ≥ {regime.max_v_measure:g}")
    if not knn < regime.max_knn:
        problems.append(f"kNN {knn:.1f} ≥ {regime.max_knn:g}")
    r1, chance = runs["r1_mean"].mean(), runs["r1_chance"].mean()
    if not r1 >= regime.r1_over_chance * chance:
        problems.append(f"R@1 {r1:.1f} < {regime.r1_over_chance:g} x chance")
    collapsed = int(runs["collapsed"].astype(bool).sum()) if "collapsed" in runs else 0
    if collapsed:
        problems.append(f"{collapsed} collapsed seed{'s' if collapsed > 1 else ''}")
    return problems


def calibration_table(
    runs: pd.DataFrame,
    ladders: Mapping[str, list[tuple[int, str]]],
    settings: Sequence[str],
    knobs: Mapping[str, int],
    modality_counts: Mapping[str, int],
    margins: Mapping[str, Mapping[str, float]],
    rule: Mapping,
    alpha: float,
    references: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """One row per (experiment, temperature setting): where its metrics converged, its metrics at the ladder's
    last budget (mean and SD over seeds), its end-of-training temperature, and whether it is in the regime at
    that budget and at the one half as long.

    ``settings``: the temperature settings (methods) in the grid's order of preference; ``knobs``:
    experiment -> image patch size; ``margins``: experiment -> metric -> margin (convergence);
    ``references``: experiment -> its ``paper_reference`` (the gap the choice aims at; none: no target)."""
    references = references or {}
    rows = []
    for experiment, rungs in ladders.items():
        for order, setting in enumerate(settings):
            ladder = []
            for budget, evaluation in rungs:
                block = runs[(runs["experiment"] == evaluation) & (runs["method"] == setting)]
                if len(block):
                    ladder.append((budget, block.set_index("seed")))
            if not ladder:
                continue
            since, convergence = cell_convergence(ladder, margins[experiment], alpha)
            budget, last = ladder[-1]
            regime = regime_for(modality_counts[experiment], rule)
            problems = regime_problems(last, regime)
            half = [(b, runs_at) for b, runs_at in ladder if 2 * b <= budget]
            if not half:
                problems.append("no budget half as long to hold the regime over a doubling")
            elif not problems and (earlier := regime_problems(half[-1][1], regime)):
                problems.append(f"at {half[-1][0]} epochs: " + ", ".join(earlier))
            row = {
                "experiment": experiment,
                "modalities": modality_counts[experiment],
                "paper_reference": references.get(experiment),
                "paper_gap": baseline_gap(references.get(experiment)),
                "patch": knobs[experiment],
                "setting": setting,
                "order": order,
                "seeds": len(last),
                "budget": budget,
                "converged_since": since,
                "convergence": convergence,
            }
            for metric in ("gap", "v_measure", "knn_acc", "r1_mean", "temperature"):
                values = last[metric].to_numpy(dtype=float) if metric in last else np.full(len(last), np.nan)
                row |= {metric: float(np.mean(values)), f"{metric}_std": float(np.std(values, ddof=1))}
            row |= {
                "collapsed": int(last["collapsed"].astype(bool).sum()),
                "in_regime": not problems,
                "why_not": "; ".join(problems),
            }
            rows.append(row)
    return pd.DataFrame(rows)


def choose(table: pd.DataFrame, learnable: Sequence[str], gap_rule: str = "paper") -> dict[str, pd.Series | None]:
    """Per group of experiments (modality count and paper reference, e.g. '2 modalities (cifar10)'): the
    strongest tower (largest patch) with a qualifying learnable setting, and at it the setting whose gap lies
    nearest the paper's baseline gap (``gap_rule`` 'paper', when the group has a reference) or the first in
    the grid's order ('at_least'); None: no cell qualifies."""
    _gap_rule(gap_rule)
    chosen: dict[str, pd.Series | None] = {}
    if table.empty:  # no cell has runs (calibration_markdown says so)
        return chosen
    references = table["paper_reference"].fillna("") if "paper_reference" in table else pd.Series("", table.index)
    for (modalities, reference), block in table.groupby([table["modalities"], references], sort=True):
        key = f"{modalities} modalities" + (f" ({reference})" if reference else "")
        eligible = block[block["in_regime"] & block["setting"].isin(learnable)]
        if eligible.empty:
            chosen[key] = None
            continue
        strongest = eligible[eligible["patch"] == eligible["patch"].max()].sort_values("order")
        if gap_rule == "paper" and reference:
            distance = (strongest["gap"] - strongest["paper_gap"]).abs()
            chosen[key] = strongest.loc[distance.idxmin()]  # the first of equals: the grid's order
        else:
            chosen[key] = strongest.iloc[0]
    return chosen


def calibration_markdown(table: pd.DataFrame, chosen: Mapping[str, pd.Series | None], labels: Mapping[str, str]) -> str:
    """The calibration table as Markdown, with the choice of each modality count marked."""
    if table.empty:
        return "No calibration cell has runs: nothing to choose from.\n"
    lines = [
        "| modalities | image patch | temperature | converged since | gap | V-Measure | kNN | R@1 | τ at the end "
        "| regime? |",
        "|---" * 10 + "|",
    ]
    picked = {(row["experiment"], row["setting"]) for row in chosen.values() if row is not None}
    ordered = table.sort_values(["modalities", "patch", "order"], ascending=[True, False, True])
    for row in ordered.itertuples():
        since = "—" if pd.isna(row.converged_since) else f"{int(row.converged_since)} epochs"
        verdict = (
            "**yes: chosen**"
            if (row.experiment, row.setting) in picked
            else ("yes" if row.in_regime else f"no ({row.why_not})")
        )
        lines.append(
            f"| {row.modalities} | {row.patch} | {labels.get(row.setting, row.setting)} | {since} | "
            f"{row.gap:.2f} ± {row.gap_std:.2f} | {row.v_measure:.1f} ± {row.v_measure_std:.1f} | "
            f"{row.knn_acc:.1f} ± {row.knn_acc_std:.1f} | {row.r1_mean:.1f} | {row.temperature:.3f} | {verdict} |"
        )
    notes = [
        f"- {group}: "
        + (
            f"patch {int(r['patch'])}, {labels.get(r['setting'], r['setting'])} (gap {r['gap']:.2f}"
            + (f"; the paper's CLIP (LT): {r['paper_gap']:.2f})" if pd.notna(r.get("paper_gap")) else ")")
            if r is not None
            else "no cell qualifies"
        )
        for group, r in chosen.items()
    ]
    return "\n".join(lines) + "\n\nChosen by the rule (docs/verdict.md):\n" + "\n".join(notes) + "\n"


def cell_margins(reference: str | None, claims: Mapping, rule: Mapping) -> dict[str, float]:
    """How far a converged cell's metrics may still move: the claims' margins for V-Measure and kNN (modgap.verdict.paper)
    and R@1 (the retrieval tolerance), and ``calibration.gap_margin`` for the gap."""
    paper = paper_margins(reference, claims["margin_fraction"])
    return {
        "gap": rule["gap_margin"],
        "v_measure": paper["v_measure"],
        "knn_acc": paper["knn_acc"],
        "r1_mean": claims["retrieval_tolerance"],
    }


def make(
    runs_csv,
    ladders,
    settings,
    learnable,
    knobs,
    modality_counts,
    references,
    margins,
    rule,
    alpha,
    labels,
    csv_path,
    md_path,
):
    """Write the calibration table (CSV, Markdown) with the rule's choice."""
    table = calibration_table(
        pd.read_csv(runs_csv), ladders, settings, knobs, modality_counts, margins, rule, alpha, references
    )
    write_text(csv_path, table.to_csv(index=False))
    write_text(md_path, calibration_markdown(table, choose(table, learnable, rule["gap_rule"]), labels))
    return table
