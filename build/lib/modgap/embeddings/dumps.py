"""The embedding dump: one run's test-split embeddings as one ``.npz`` archive, as training writes it and
metrics, figures and the import of embeddings made elsewhere read it.

Arrays: one unit-norm float32 (N, d) array per modality (row i of each is item i), ``labels`` (-1:
unlabelled), ``ids``, optionally ``class_names`` and, where items have several captions,
``text_captions`` with ``text_caption_item`` (the item each caption describes), and ``temperature``, the
run's temperature tau at the end (a scalar). A run on a budget ladder also holds the arrays of every earlier
budget as ``<array>@<epochs>`` (labels and ids are shared).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from modgap.errors import corrupt

MODALITY_ORDER = ("image", "audio", "text")
LABELS, IDS, CLASS_NAMES, CAPTIONS, CAPTION_ITEM = "labels", "ids", "class_names", "text_captions", "text_caption_item"
TEMPERATURE = "temperature"
# Arrays a dump holds per budget of a ladder, as '<array>@<epochs>'.
BUDGET_ARRAYS = (*MODALITY_ORDER, CAPTIONS, TEMPERATURE)
_SNAPSHOT = re.compile(r"(?P<array>.+)@(?P<epochs>\d+)")


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an embedding dump; a truncated or corrupt file, or non-finite embeddings, raise
    CorruptIntermediateError."""
    try:
        with np.load(path) as archive:
            dump = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except Exception as error:  # zipfile, pickle and numpy raise a dozen types on damaged files
        raise corrupt(path, "embedding dump", error) from None
    for name, values in dump.items():
        if name.partition("@")[0] in BUDGET_ARRAYS and not np.isfinite(values).all():
            raise corrupt(path, "embedding dump", f"non-finite values in {name!r}")
    return dump


def budgets(dump: Mapping[str, np.ndarray]) -> list[int]:
    """The earlier budgets (epochs) a dump holds arrays of, ascending."""
    return sorted({int(match["epochs"]) for name in dump if (match := _SNAPSHOT.fullmatch(name))})


def at_budget(dump: Mapping[str, np.ndarray], budget: int | None) -> dict[str, np.ndarray]:
    """The dump as it stood at epoch ``budget`` of its ladder: each array that has '<array>@<epochs>'
    snapshots is that of ``budget`` (or left out when it has none of it); None: at the run's last epoch, the
    dump's own arrays. The snapshots themselves are left out. Raises ValueError when the dump holds nothing
    of ``budget``."""
    plain = {name: values for name, values in dump.items() if not _SNAPSHOT.fullmatch(name)}
    if budget is None:
        return plain
    held = budgets(dump)
    if budget not in held:
        found = f"it holds {', '.join(map(str, held))}" if held else "it holds no '<array>@<epochs>' arrays"
        raise ValueError(f"no embeddings of budget {budget} ({found})")
    snapshotted = [match["array"] for name in dump if (match := _SNAPSHOT.fullmatch(name))]
    at = {name: dump[f"{name}@{budget}"] for name in snapshotted if f"{name}@{budget}" in dump}
    kept = {name: at.get(name, values) for name, values in plain.items() if name not in snapshotted or name in at}
    return {**kept, **at}  # a snapshot takes the place of its final array


def modality_embeddings(dump: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The per-modality arrays of a dump, in canonical modality order."""
    return {m: dump[m] for m in MODALITY_ORDER if m in dump}


def shift_dump(dump: Mapping[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    """A dump after the post-hoc shift; all captions move with the text modality."""
    embeddings = modality_embeddings(dump)
    shifted = {**dump, **posthoc_shift(embeddings, strength)}
    if CAPTIONS in dump:
        offset = dump["text"].mean(axis=0) - np.mean([z.mean(axis=0) for z in embeddings.values()], axis=0)
        moved = dump[CAPTIONS] - strength * offset
        shifted[CAPTIONS] = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
    return shifted


def load_method_dump(path: str | Path, shift: float | None = None, budget: int | None = None) -> dict[str, np.ndarray]:
    """An embedding dump at ``budget`` of its ladder (None: at its run's last epoch), moved by the post-hoc
    shift of strength ``shift`` where one is given."""
    dump = load_embeddings(path)
    try:
        dump = at_budget(dump, budget)
    except ValueError as error:
        raise corrupt(path, "embedding dump", str(error)) from None
    return dump if shift is None else shift_dump(dump, shift)


def posthoc_shift(embeddings: Mapping[str, np.ndarray], strength: float) -> dict[str, np.ndarray]:
    """Liang et al.'s post-hoc shift: move every modality towards the common centroid, re-normalise.

    Each modality moves by ``strength`` times its offset from the mean of the
    modality centroids; for two modalities this is z^a - lambda/2 Delta and
    z^b + lambda/2 Delta with Delta = mean(z^a) - mean(z^b) (docs/workflow.md, "Metrics"). With
    strength 1 the centroids coincide before re-normalisation; negative values widen the gap.
    """
    centroids = {m: z.mean(axis=0) for m, z in embeddings.items()}
    common = np.mean(list(centroids.values()), axis=0)
    shifted = {}
    for modality, z in embeddings.items():
        moved = z - strength * (centroids[modality] - common)
        shifted[modality] = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(z.dtype)
    return shifted
