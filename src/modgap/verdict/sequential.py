"""Seeds planned to decide: the verdict's checks tested in rounds of seeds fixed before the first round, with
the error rate spent over the rounds (docs/verdict.md, "Seeds planned to decide").

The design: cumulative seed counts per round (``decide.rounds``, say 5, 10, 20) and a spending function
alpha(t) of the information fraction t = seeds / last round's seeds (Lan & DeMets 1983): O'Brien-Fleming's
shape, 2 - 2 Phi(z_{1 - alpha/2} / sqrt t), spends little early; Pocock's, alpha ln(1 + (e - 1) t), evenly.
Round k may spend alpha(t_k) - alpha(t_{k-1}). Every hypothesis of the verdict family (two per part, of which
at most one is true) is tested at round k at that increment over the number of parts, m, counted at the first
round. A true null hypothesis is then rejected at round k with probability at most the increment over m,
whatever happened before (its p-value at round k reads the first n_k seeds, a number fixed by the design), so
over all rounds with at most alpha / m, and over the at most m true nulls with at most alpha: Bonferroni over
rounds and parts, conservative where the rounds' statistics are correlated, and valid however comparisons
stop. A hypothesis rejected at a round stays rejected; a comparison gets the next round's seeds only while one
of its checks is undecided.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from modgap.errors import corrupt
from modgap.io import read_json, write_text
from modgap.verdict import paper
from modgap.verdict.decision import INCONCLUSIVE, NO_ROOM, PRACTICAL_SEEDS, compare, conjunction
from modgap.verdict.stats import seeds_for_power
from modgap.verdict.tables import load_runs_of

SPENDING_RULES = ("obrien_fleming", "pocock")


def spent(rule: str, fraction: float, alpha: float) -> float:
    """The error rate spent by information fraction ``fraction`` (0 to 1) under ``rule``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"an information fraction lies in [0, 1], got {fraction}")
    if fraction == 0.0:
        return 0.0
    if rule == "obrien_fleming":
        return float(2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(fraction)))
    if rule == "pocock":
        return float(alpha * math.log(1.0 + (math.e - 1.0) * fraction))
    raise ValueError(f"unknown spending rule {rule!r}: one of {', '.join(SPENDING_RULES)}")


def round_levels(rounds: Sequence[int], alpha: float, rule: str) -> list[float]:
    """The error rate each round may spend: the increments of the spending function at the rounds' seed counts
    (they sum to ``alpha``)."""
    if list(rounds) != sorted(set(rounds)) or not rounds or rounds[0] < 2:
        raise ValueError(f"rounds must be rising seed counts of at least 2, got {list(rounds)}")
    fractions = [0.0, *(n / rounds[-1] for n in rounds)]
    return [spent(rule, b, alpha) - spent(rule, a, alpha) for a, b in zip(fractions, fractions[1:])]


@dataclass(frozen=True)
class Design:
    rounds: tuple[int, ...]  # cumulative paired seeds per round
    spending: str
    seeds: tuple[int, ...]  # the seeds in the order rounds take them (as many as the last round)

    @classmethod
    def of(cls, options: Mapping) -> Design:
        rounds = tuple(int(n) for n in options["rounds"])
        first = int(options["first_seed"])
        return cls(rounds, options["spending"], tuple(range(first, first + rounds[-1])))

    def round_seeds(self, index: int) -> list[int]:
        return list(self.seeds[: self.rounds[index]])


# A round's per-seed metrics file names its seed: results/decide/metrics/<experiment>/<method>/seed<N>.json
SEED_FILE = re.compile(r"seed(\d+)\.json$")
# What a round's record holds (read back by the next round and by the report).
ROUND_KEYS = ("round", "family_parts", "finished", "comparisons")


def load_round_runs(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The runs of a round's per-seed metrics files, each file holding the one seed its name says (a record
    of another seed is a damaged intermediate, named with the command that rebuilds it)."""
    files = []
    for path in paths:
        found = SEED_FILE.search(str(path))
        if found is None:
            raise ValueError(f"{path}: a round's metrics file is named seed<N>.json")
        files.append((path, [int(found.group(1))]))
    return load_runs_of(files)


def read_round(path: str | Path) -> dict:
    """A round's record, refused as a damaged intermediate unless it is the record ``run_round`` writes."""
    try:
        record = read_json(path)
    except (ValueError, UnicodeDecodeError) as error:
        raise corrupt(path, "decide round record", error) from None
    if not isinstance(record, dict) or any(key not in record for key in ROUND_KEYS):
        raise corrupt(path, "decide round record", f"not a round's record (it holds {', '.join(ROUND_KEYS)})")
    return record


def _part_key(part) -> str:
    return f"{part.claim.number}:{part.column}"


def _part_record(part, confidence: float, before: Mapping, index: int, level: float) -> dict:
    """A part's record after this round: hypotheses rejected now at ``level`` or at an earlier round."""
    hold_round, fail_round = before.get("hold_round"), before.get("fail_round")
    if part.room and hold_round is None and part.p_hold <= level:
        hold_round = index
    if part.room and fail_round is None and part.p_fail <= level:
        fail_round = index
    interval = part.interval(confidence)
    return {
        "key": _part_key(part),
        "label": part.label,
        "room": part.room,
        "estimate": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "p_hold": part.p_hold,
        "p_fail": part.p_fail,
        "hold_round": hold_round,
        "fail_round": fail_round,
        "state": part.decide(hold_round is not None, fail_round is not None),
        "note": part.note,
        "sd": part.sample.sd,  # with the distances: the seeds the cap would have needed (report_text)
        "distances": list(part.distances_to_decide()) if part.sample.finite else [],
    }


def run_round(
    index: int,
    runs: pd.DataFrame,
    comparisons: Sequence[tuple[str, str, str]],
    design: Design,
    claims: Mapping,
    references: Mapping[str, str | None],
    previous: Mapping | None = None,
) -> dict:
    """Round ``index`` of the design: every comparison (experiment, method, baseline) still open after
    ``previous`` (the last round's record; None at the first) tested on ``runs`` (per-seed records of the
    round's seeds), its hypotheses rejected at the round's level; those closed earlier carried over.
    Returns the round's record (JSON-ready)."""
    round_alpha = round_levels(design.rounds, 1.0 - claims["confidence"], design.spending)[index]
    earlier = {(c["experiment"], c["method"]): c for c in (previous or {}).get("comparisons", [])}
    tested = {}
    for experiment, method, baseline in comparisons:
        before = earlier.get((experiment, method))
        if before is not None and not before["open"]:
            continue
        block = runs[runs["experiment"] == experiment]
        ours = block[block["method"] == method].set_index("seed")
        theirs = block[block["method"] == baseline].set_index("seed")
        margins = paper.margins(references.get(experiment), claims["margin_fraction"])
        comparison = compare(ours, theirs, claims, margins, experiment, method, baseline)
        if comparison.seeds != design.round_seeds(index):
            raise ValueError(
                f"round {index + 1}: {experiment}: {method} vs {baseline} has paired seeds {comparison.seeds}, "
                f"the design's round has {design.round_seeds(index)}"
            )
        tested[(experiment, method)] = comparison
    # m is counted once, at the first round, when every comparison is open
    family_parts = (previous or {}).get("family_parts") or sum(len(c.parts()) for c in tested.values())
    level = round_alpha / family_parts
    records = []
    for experiment, method, baseline in comparisons:
        before = earlier.get((experiment, method))
        comparison = tested.get((experiment, method))
        if comparison is None:
            records.append(before)
            continue
        checks_before = {c["claim"]: c for c in (before or {}).get("checks", [])}
        checks = []
        for check in comparison.checks:
            was = checks_before.get(check.claim.number, {})
            parts_before = {p["key"]: p for p in was.get("parts", [])}
            parts = [
                _part_record(part, claims["confidence"], parts_before.get(_part_key(part), {}), index, level)
                for part in check.parts
            ]
            state = conjunction([p["state"] for p in parts])
            decided_round = was.get("decided_round")
            if decided_round is None and state != INCONCLUSIVE:
                decided_round = index
            checks.append(
                {
                    "claim": check.claim.number,
                    "title": check.claim.title,
                    "state": state,
                    "decided_round": decided_round,
                    "parts": parts,
                }
            )
        records.append(
            {
                "experiment": experiment,
                "method": method,
                "baseline": baseline,
                "seeds": [int(s) for s in comparison.seeds],
                "round": index,
                "open": any(c["state"] == INCONCLUSIVE for c in checks) and index + 1 < len(design.rounds),
                "checks": checks,
            }
        )
    return {
        "round": index,
        "seeds": design.rounds[index],
        "spending": design.spending,
        "round_alpha": round_alpha,
        "family_parts": family_parts,
        "level": level,
        "comparisons": records,
        "finished": not any(r["open"] for r in records),
    }


def open_comparisons(record: Mapping | None, comparisons: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The comparisons the next round trains seeds for: every one before the first round, then those left open."""
    if record is None:
        return list(comparisons)
    still = {(c["experiment"], c["method"]) for c in record["comparisons"] if c["open"]}
    return [c for c in comparisons if (c[0], c[1]) in still]


def report_text(record: Mapping, design: Design, claims: Mapping, labels: Mapping[str, str] | None = None) -> str:
    """The sequential verdict as text: the design, then per comparison each check's state and the round that
    decided it (or why none did)."""
    labels = labels or {}
    alpha = 1.0 - claims["confidence"]
    levels = round_levels(design.rounds, alpha, design.spending)
    lines = [
        f"Seeds planned to decide: rounds of {', '.join(map(str, design.rounds))} paired seeds (seeds "
        f"{design.seeds[0]}-{design.seeds[-1]} in that order), {design.spending.replace('_', '-')} spending of "
        f"{100 * alpha:g} %: per round "
        + ", ".join(f"{100 * a:.3g} %" for a in levels)
        + f", each hypothesis at that over the family's {record['family_parts']} parts (Bonferroni over rounds and "
        "parts). A comparison gets the next round's seeds while one of its checks is undecided.",
        "",
    ]
    for comparison in record["comparisons"]:
        method, baseline = comparison["method"], comparison["baseline"]
        named = " vs ".join(f"{m} ({labels[m]})" if m in labels else m for m in (method, baseline))
        reached = comparison["round"] + 1
        going_on = comparison["open"]  # a record of a round before the cap: the next round's seeds are owed
        status = "open after round" if going_on else "stopped after round"
        lines.append(
            f"{comparison['experiment']}: {named}, {len(comparison['seeds'])} paired seeds ({status} {reached} of "
            f"{len(design.rounds)})"
        )
        next_seeds = design.seeds[len(comparison["seeds"]) : design.rounds[min(reached, len(design.rounds) - 1)]]
        for check in comparison["checks"]:
            title = check["title"].format(retrieval=f"{claims['retrieval_tolerance']:g}")
            # every later round reads these seeds again: a part they leave without a value stays undecided
            valueless = any(
                p["state"] != NO_ROOM and not (math.isfinite(p["estimate"]) and math.isfinite(p["low"]))
                for p in check["parts"]
            )
            decided = (
                f"decided in round {check['decided_round'] + 1} ({design.rounds[check['decided_round']]} seeds)"
                if check["decided_round"] is not None
                else f"open after round {reached}: round {reached + 1} adds seeds {_span(next_seeds)}"
                + (", though a part without a value in these seeds stays undecided" if valueless else "")
                if going_on
                else f"undecided at the cap of {design.rounds[-1]} seeds"
                if check["state"] == INCONCLUSIVE
                else ""
            )
            lines.append(f"  [{check['state'].upper()}] {check['claim']}. {title}: {decided}")
            for part in check["parts"]:
                if part["state"] == NO_ROOM:
                    lines.append(f"      {part['label']}: no room")
                    continue
                if not math.isfinite(part["estimate"]) or not math.isfinite(part["low"]):
                    lines.append(f"      {part['label']} n/a: {part.get('note') or 'no finite value'}")
                    continue
                sign = "" if part["key"].startswith("3:") else "+"  # the gap ratio is no difference
                why = ""
                if part["state"] == INCONCLUSIVE and check["state"] == INCONCLUSIVE and not going_on:
                    why = "; " + _cap_note(part, record["level"])
                lines.append(
                    f"      {part['label']} {part['estimate']:{sign}.2f} [{part['low']:{sign}.2f}, "
                    f"{part['high']:{sign}.2f}]: {part['state']}; p(holds) {part['p_hold']:.2g}, "
                    f"p(fails) {part['p_fail']:.2g}{why}"
                )
        lines.append("")
    states = [check["state"] for c in record["comparisons"] for check in c["checks"]]
    so_far = "" if record["finished"] else f" after round {record['round'] + 1} of {len(design.rounds)}"
    lines.append(
        f"Sequential verdict{so_far}: {sum(s != INCONCLUSIVE for s in states)} of {len(states)} checks decided "
        f"({', '.join(f'{states.count(s)} {s}' for s in dict.fromkeys(states))})."
    )
    return "\n".join(lines) + "\n"


def first_round_text(
    runs: pd.DataFrame,
    finals: Mapping[str, str],
    comparisons: Sequence[tuple[str, str, str]],
    design: Design,
    claims: Mapping,
    references: Mapping[str, str | None],
    labels: Mapping[str, str] | None = None,
) -> str:
    """claims.txt's account of the plan: these runs, read at each experiment's last epoch (``finals``: the name
    of that evaluation in ``runs``; ``references``: each evaluation's paper reference), tested as the plan's
    first round, so that every check decided there names its round and every other one the seeds the next
    round adds; or, where their seeds are not that round's, which are."""
    if not comparisons:
        return ""
    header = (
        "== The same runs as round 1 of the plan of seeds (snakemake --cores all decide; results/decide.txt) ==\n\n"
        "Another test than the verdict above: round 1's share of the error rate over the plan's family, a stricter "
        "level than Holm's, so a check decided above may be open here; the plan's next rounds decide it.\n\n"
    )
    missing = sorted({experiment for experiment, _, _ in comparisons} - set(finals))
    if missing:
        raise ValueError(f"no last-epoch evaluation named for {', '.join(missing)}")
    at_last_epoch = runs[runs["experiment"].isin(set(finals.values()))].copy()
    at_last_epoch["experiment"] = at_last_epoch["experiment"].map({v: k for k, v in finals.items()})
    planned = design.round_seeds(0)
    for experiment, method, baseline in comparisons:
        for name in (method, baseline):
            rows = at_last_epoch[(at_last_epoch["experiment"] == experiment) & (at_last_epoch["method"] == name)]
            seeds = sorted(int(seed) for seed in rows["seed"])
            if seeds != planned:
                return (
                    f"{header}Not read: {experiment}: {name} has seeds {_span(seeds) or 'none'}, round 1 of the "
                    f"plan seeds {_span(planned)}; `snakemake --cores all decide` trains the plan's own.\n"
                )
    by_experiment = {experiment: references.get(finals[experiment]) for experiment, _, _ in comparisons}
    record = run_round(0, at_last_epoch, comparisons, design, claims, by_experiment)
    return header + report_text(record, design, claims, labels)


def _span(seeds: Sequence[int]) -> str:
    """Seeds as text: a run of consecutive ones as first-last, others listed."""
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _cap_note(part: Mapping, level: float) -> str:
    """Why the cap left a part undecided: the paired seeds a test at the last round's level would need for 80 %
    power, were the observed mean and SD the true ones; or that the estimate sits on its threshold."""
    needed = seeds_for_power(part.get("distances", []), part.get("sd", math.nan), level, most=PRACTICAL_SEEDS)
    if needed is None:
        return "no spread or distance to plan seeds from"
    if needed >= PRACTICAL_SEEDS:
        return f"its estimate lies on its threshold: even {PRACTICAL_SEEDS} seeds would not decide it"
    return f"about {needed} paired seeds would decide it at the last round's level ({level:.2g}, 80 % power)"


def write_report(
    record: Mapping,
    design: Design,
    claims: Mapping,
    labels: Mapping[str, str] | None = None,
    *,
    text: str | Path,
    table: str | Path,
) -> None:
    """The sequential verdict as text and as a table (one row per check), each written atomically."""
    rows = [
        {
            "experiment": c["experiment"],
            "method": c["method"],
            "baseline": c["baseline"],
            "claim": check["claim"],
            "state": check["state"],
            "decided_round": None if check["decided_round"] is None else check["decided_round"] + 1,
            "seeds": len(c["seeds"]),
        }
        for c in record["comparisons"]
        for check in c["checks"]
    ]
    write_text(table, pd.DataFrame(rows).to_csv(index=False))
    write_text(text, report_text(record, design, claims, labels))
