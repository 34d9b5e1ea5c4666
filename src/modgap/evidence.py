"""What a comparison may rest on: every run of one evaluation measured on one test set, and a number in
every value a check reads.

``ItemSet`` fingerprints the items a run was measured on: how many, their labels (with the class names where
labels were strings) and their ids. ``one_test_set`` refuses runs whose fingerprints differ, naming two of
them; ``modgap compare`` applies it to the files it reads, the tables stage to the metrics records (which
carry the fingerprint as ``n_test``, ``test_labels`` and ``test_ids``) and the claims check to the rows of
``runs.csv``. ``value_problem`` is the one rule for values: a number, finite, NaN only where the run's notes
say why (for the columns that allow it).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modgap.errors import ExplainedError, corrupt

# The keys a metrics record, and a runs table's columns, carry the fingerprint of its test set under.
ITEMS, LABELS_DIGEST, IDS_DIGEST = "n_test", "test_labels", "test_ids"


class OtherItemsError(ExplainedError, ValueError):
    """Runs compared with each other were measured on different items; names two of them."""


class SameRunError(ExplainedError, ValueError):
    """Two seeds of one model hold the same embeddings: one run counted twice; names both."""


class UnusableRunsError(ExplainedError, ValueError):
    """A runs table holds a value no check may read, or runs of one experiment on different test sets."""


def digest(values: Sequence | np.ndarray | None) -> str:
    """A short fingerprint of a sequence of values by what they say, not how they are stored (an int32 1
    and an int64 1 agree; so do 'a' as bytes and as text); 'none' for None (never empty: a CSV reads an
    empty cell back as NaN)."""
    if values is None:
        return "none"
    text = "\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ItemSet:
    """The items a run was measured on: their number and fingerprints of their labels and ids."""

    items: int
    labels: str = "none"
    ids: str = "none"

    @classmethod
    def of(cls, labels: np.ndarray, class_names: Sequence[str] | None = None, ids=None) -> ItemSet:
        """The test set of per-item ``labels`` (with the ``class_names`` their codes stand for) and ``ids``."""
        names = "" if class_names is None else digest(class_names)
        return cls(len(labels), digest(labels) + names, digest(ids))

    @classmethod
    def recorded(cls, record: Mapping) -> ItemSet:
        """The test set a metrics record (or a runs table's row) carries; what it lacks stays unchecked. Digests
        are compared as text: a CSV reader may have read an all-digit one as a number."""
        return cls(record.get(ITEMS), str(record.get(LABELS_DIGEST, "none")), str(record.get(IDS_DIGEST, "none")))

    def fields(self) -> dict:
        """As a metrics record carries it."""
        return {ITEMS: self.items, LABELS_DIGEST: self.labels, IDS_DIGEST: self.ids}

    def difference(self, name: str, other: ItemSet, other_name: str) -> str | None:
        """How this set (of run ``name``) differs from ``other`` (of run ``other_name``); None: it does not."""
        if self.items != other.items:
            return f"{name} holds {self.items} items and {other_name} {other.items}"
        if self.labels != other.labels:
            return f"{name} has other labels than {other_name}"
        if self.ids != other.ids:
            return f"{name} has other item ids than {other_name}"
        return None


def one_test_set(runs: Iterable[tuple[str, ItemSet]]) -> None:
    """Refuse (OtherItemsError) when the named runs were not all measured on the first one's items."""
    first = None
    for name, items in runs:
        if first is None:
            first = name, items
            continue
        difference = items.difference(name, first[1], first[0])
        if difference is not None:
            raise OtherItemsError(f"{difference}: paired runs must share one test set")


def embeddings_digest(modalities: Mapping[str, np.ndarray]) -> str:
    """A fingerprint of a run's embeddings: every modality's name, type, shape and bytes."""
    fingerprint = hashlib.sha256()
    for name, values in modalities.items():
        values = np.ascontiguousarray(values)
        fingerprint.update(f"{name} {values.dtype.str} {values.shape}".encode())
        fingerprint.update(values.data)
    return fingerprint.hexdigest()


def distinct_runs(runs: Iterable[tuple[str, str]]) -> None:
    """Refuse (SameRunError) when two of the named runs of one model have the same ``embeddings_digest``: the
    check pairs seeds as independent runs, and a copy counted as another seed narrows every interval without
    any evidence (a file copied to every seed's name gives zero spread)."""
    seen: dict[str, str] = {}
    for name, fingerprint in runs:
        if fingerprint in seen:
            raise SameRunError(f"{name} holds the same embeddings as {seen[fingerprint]}: each seed must be a "
                               "run of its own")  # fmt: skip
        seen[fingerprint] = name


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


def runs_problem(runs: pd.DataFrame, finite: Sequence[str], finite_unless_noted: Sequence[str] = ()) -> str | None:
    """Why a runs table (one row per run) cannot enter a check: a value of ``finite`` or
    ``finite_unless_noted`` columns that ``value_problem`` refuses, a collapse flag that is not one, or runs
    of one experiment on different test sets. The problem names the run and the column. A column no run of an
    experiment has a value in was not measured there (the R@1 of a modality the experiment lacks); a column
    the table lacks is named as such."""
    absent = [key for key in (*finite, *finite_unless_noted, "collapsed") if key not in runs]
    if absent:
        return f"no column {', '.join(absent)}"
    for experiment, block in runs.groupby("experiment", sort=False):
        measured = [key for key in (*finite, *finite_unless_noted) if key in block and block[key].notna().any()]
        rows = block.to_dict("records")
        for row in rows:
            noted = isinstance(row.get("notes"), str) and bool(row["notes"])
            name = f"run {experiment}/{row['method']}/seed{row['seed']}"
            for key in measured:
                problem = value_problem(key, _read_number(row[key]), noted and key in finite_unless_noted)
                if problem:
                    return f"{name}: {problem}; a check reads finite values only"
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
        raise corrupt(runs_csv, "runs table", f"run {first['experiment']}/{first['method']}/seed{first['seed']} is "
                                              "listed more than once")  # fmt: skip
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
    print(f"removed {verdict}: a run that fails leaves no verdict (the next complete run writes it again)",
          file=sys.stderr)  # fmt: skip
    return True
