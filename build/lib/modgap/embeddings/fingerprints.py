"""Fingerprints of what a run was measured on, and of the run itself.

``ItemSet`` fingerprints the items a run was measured on: how many, their labels (with the class names where
labels were strings) and their ids. ``one_test_set`` refuses runs whose fingerprints differ, naming two of
them; ``modgap compare`` applies it to the files it reads, the tables stage to the metrics records (which
carry the fingerprint as ``n_test``, ``test_labels`` and ``test_ids``) and the claims check to the rows of
``runs.csv``. ``embeddings_digest`` and ``distinct_runs`` refuse one run counted twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modgap.errors import ExplainedError

# The keys a metrics record, and a runs table's columns, carry the fingerprint of its test set under.
ITEMS, LABELS_DIGEST, IDS_DIGEST = "n_test", "test_labels", "test_ids"


class OtherItemsError(ExplainedError, ValueError):
    """Runs compared with each other were measured on different items; names two of them."""


class SameRunError(ExplainedError, ValueError):
    """Two seeds of one model hold the same embeddings: one run counted twice; names both."""


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
            raise SameRunError(
                f"{name} holds the same embeddings as {seen[fingerprint]}: each seed must be a run of its own"
            )
        seen[fingerprint] = name
