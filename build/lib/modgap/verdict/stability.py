"""Whether a verdict survives a fresh seed set: the Holm state of every check of two studies side by side.

Two runs tables of the same configuration with disjoint seed sets (``benchmarks/verdict_stability.py`` makes
them) give each check a state; a verdict that any seed set reproduces gives the same state to every check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from modgap.verdict.decision import check_claims


def holm_states(runs: pd.DataFrame, claims: Mapping, ladders: Mapping, references: Mapping) -> dict[str, str]:
    """Check -> its Holm state (claim 2's parts too), for every comparison of every family."""
    states = {}
    for family in check_claims(runs, claims, ladders, references):
        for comparison in family.comparisons:
            where = f"{family.name}: {comparison.experiment}, {comparison.method} vs {comparison.baseline}"
            for check in comparison.checks:
                states[f"{where}, claim {check.claim.number}"] = check.state
                if len(check.parts) > 1:
                    for part in check.parts:
                        states[f"{where}, claim {check.claim.number} ({part.label})"] = part.state
    return states


def side_by_side(first: Mapping[str, str], second: Mapping[str, str], names: Sequence[str]) -> tuple[str, int]:
    """A Markdown table of both studies' states, and how many checks differ (a check one study lacks
    differs)."""
    lines = [f"| check | {names[0]} | {names[1]} | same |", "|---|---|---|---|"]
    differ = 0
    for check in dict.fromkeys([*first, *second]):
        a, b = first.get(check, "—"), second.get(check, "—")
        differ += a != b
        lines.append(f"| {check} | {a} | {b} | {'yes' if a == b else '**no**'} |")
    return "\n".join(lines) + "\n", differ
