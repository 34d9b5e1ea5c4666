"""What a comparison may rest on: every run of one evaluation measured on one test set, and a number in
every value a check reads.

The claims check refuses runs of one experiment whose test-set fingerprints (modgap.embeddings.fingerprints)
differ. ``value_problem`` is the one rule for values: a number, finite, NaN only where the run's notes
say why (for the columns that allow it).
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modgap.embeddings.fingerprints import IDS_DIGEST, LABELS_DIGEST, ItemSet, OtherItemsError, one_test_set
from modgap.errors import ExplainedError, corrupt


class UnusableRunsError(ExplainedError, ValueError):
    """A runs table holds a value no check may read, or runs of one experiment on different test sets."""


def value_problem(key: str, value, noted: bool = False) -> str | None:
    """Why a value a table or a check reads is unusable (None: it is usable): not a number, infinite, or NaN
    where ``noted`` is False (a run's notes say why a metric it could not compute is NaN)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        return f"{key} is {value!r}, not a number"
    if math.isinf(value) or (math.isnan(value) and not noted):
        return f"{key} is {float(value)}"
    return None


def _read_number(value):
    """A CSV cell as the number it writes, where it writes one: a column with one word in it is read as text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def runs_problem(
    runs: pd.DataFrame,
    finite: Sequence[str],
    finite_unless_noted: Sequence[str] = (),
    optional: Sequence[str] = (),
    readings: Sequence[str] = (),
) -> str | None:
    """Why a runs table (one row per run) cannot enter a check: a value of ``finite`` or
    ``finite_unless_noted`` columns that ``value_problem`` refuses, a collapse flag that is not one, or runs
    of one experiment on different test sets. The problem names the run and the column. An ``optional`` column
    that no run of an experiment has a value in was not measured there (the R@1 of a modality the experiment
    lacks); every other column is read in every run; a column the table lacks is named as such. A column of
    ``readings`` (shown beside a check, never tested) is read where the table has it: a number or NaN (a
    reading the run could not make), never text or infinite."""
    absent = [key for key in (*finite, *finite_unless_noted, *optional, "collapsed") if key not in runs]
    if absent:
        return f"no column {', '.join(absent)}"
    for experiment, block in runs.groupby("experiment", sort=False):
        measured = [*finite, *finite_unless_noted, *(key for key in optional if block[key].notna().any())]
        rows = block.to_dict("records")
        for row in rows:
            noted = isinstance(row.get("notes"), str) and bool(row["notes"])
            name = f"run {experiment}/{row['method']}/seed{row['seed']}"
            for key in measured:
                problem = value_problem(key, _read_number(row[key]), noted and key in finite_unless_noted)
                if problem:
                    return f"{name}: {problem}; a check reads finite values only"
            for key in (key for key in readings if key in row):
                problem = value_problem(key, _read_number(row[key]), noted=True)
                if problem:
                    return f"{name}: {problem}; a reading is a number or NaN"
            collapsed = {"True": True, "False": False}.get(row.get("collapsed"), row.get("collapsed"))  # as read
            if not isinstance(collapsed, (bool, np.bool_)):  # keeps a pair out of claim 3
                return f"{name}: collapsed is {collapsed!r}, not True or False"
        try:
            one_test_set((f"run {experiment}/{row['method']}/seed{row['seed']}", ItemSet.recorded(row)) for row in rows)
        except OtherItemsError as error:
            return str(error)
    return None


# Columns read as text: a digest or a name made of digits only is still the string it was written as (a
# number would lose its leading zeros and compare unequal to the string it should match).
TEXT_COLUMNS = ("experiment", "method", "definition", "retrieval", LABELS_DIGEST, IDS_DIGEST, "notes")


def read_runs(runs_csv) -> pd.DataFrame:
    """A runs table as the claims check reads it; an unreadable one, or one without the columns that name its
    runs, is refused as a damaged intermediate."""
    try:
        runs = pd.read_csv(runs_csv, dtype={column: str for column in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise corrupt(runs_csv, "runs table", error) from None
    missing = [c for c in ("experiment", "method", "seed") if c not in runs]
    if missing:
        raise corrupt(runs_csv, "runs table", f"no column {', '.join(missing)}")
    seeds = pd.to_numeric(runs["seed"], errors="coerce")
    whole = seeds.notna() & (seeds == seeds.round())
    if not whole.all():
        raise corrupt(runs_csv, "runs table", f"seed {runs['seed'][~whole].tolist()[0]!r} is not a whole number")
    runs["seed"] = seeds.astype(int)
    twice = runs[runs.duplicated(["experiment", "method", "seed"])]
    if len(twice):
        first = twice.iloc[0]
        raise corrupt(
            runs_csv,
            "runs table",
            f"run {first['experiment']}/{first['method']}/seed{first['seed']} is listed more than once",
        )
    return runs


def withdraw_verdict(verdict: str | Path) -> bool:
    """Remove ``verdict`` (claims.txt), and say so: the workflow calls it when a run fails (Snakefile,
    onerror). Whatever failed (a runs table refused, a dump refused on import), the verdict on disk was made
    from evidence this run could not confirm, and Snakemake would call it up to date while older metrics stand
    in for a refused file. The next complete run writes it again (the claims check takes seconds)."""
    verdict = Path(verdict)
    if not verdict.is_file():
        return False
    verdict.unlink()
    print(
        f"removed {verdict}: a run that fails leaves no verdict (the next complete run writes it again)",
        file=sys.stderr,
    )
    return True


def definition_mismatch(runs: pd.DataFrame, expected: Mapping[str, str]) -> list[str]:
    """The (experiment, method) pairs of ``runs`` made by another definition than ``expected``
    (``<evaluation>/<method>`` -> modgap.study.plan.definition_digest); tables without the column are not checked."""
    if "definition" not in runs:
        return []
    keys, problems = runs["experiment"] + "/" + runs["method"], []
    for key, digest in expected.items():  # every row: one seed's run made otherwise is not this study's either
        made = runs[keys == key]
        other = made[made["definition"] != digest].fillna({"definition": "(none)"})
        if len(other):
            which = "" if len(other) == len(made) else f" of seeds {', '.join(map(str, other['seed']))}"
            problems.append(
                f"{key}: its runs{which} were made by definition "
                f"{', '.join(dict.fromkeys(other['definition']))}, this configuration defines {digest}"
            )
    return problems


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
