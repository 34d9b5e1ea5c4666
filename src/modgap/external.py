"""Embeddings made elsewhere: read from a file and checked, for ``modgap evaluate``, ``modgap compare``
(modgap.compare measures them) and the workflow's ``dumps`` data sets (docs/your_embeddings.md).

Formats: an ``.npz`` archive, a ``.safetensors`` file or a ``.pt`` tensor dict with one (rows, width)
array per modality, plus optional ``labels`` (one integer or string class per row; -1: unlabelled), ``ids``
(item identifiers, not measured) and,
for instance-level retrieval over several captions per item, ``text_captions`` with ``text_caption_item``
(the item each caption describes); or one ``.npy`` file per modality, named by its file name. Nothing
loaded can run code: ``.npz``/``.npy`` without pickles, ``.pt`` with torch's weights-only loader.

Every problem is one line naming the file and the array (``EmbeddingFileError``). Two cases are handled
rather than refused, each with a note in the output: rows that are not unit-norm are normalised, and
without labels the group-wise metrics are skipped.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modgap.dumps import CAPTION_ITEM, CAPTIONS, CLASS_NAMES, IDS, LABELS, TEMPERATURE, at_budget, budgets
from modgap.errors import ExplainedError
from modgap.io import save_npz

# Arrays that are not modalities; 'ids', 'class_names' and 'temperature' (as this project's dumps hold them) are
# not measured.
RESERVED = (LABELS, IDS, CAPTIONS, CAPTION_ITEM, CLASS_NAMES, TEMPERATURE)
FORMATS = (".npz", ".npy", ".safetensors", ".pt", ".pth")
# Rows whose norm is further than this from 1 count as not normalised.
NORM_TOLERANCE = 1e-3


class EmbeddingFileError(ExplainedError, ValueError):
    """An embedding file cannot be measured; the one-line message names the file and the array."""


@dataclass
class Embeddings:
    """Checked, unit-norm embeddings: row i of every modality is item i."""

    source: str
    modalities: dict[str, np.ndarray]
    labels: np.ndarray | None = None  # int64 per item, -1: unlabelled
    class_names: list[str] | None = None  # when the file's labels were strings
    captions: np.ndarray | None = None
    caption_item: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(next(iter(self.modalities.values())))

    @property
    def width(self) -> int:
        return next(iter(self.modalities.values())).shape[1]


def refuse(path: str | Path, problem: str) -> EmbeddingFileError:
    """The error that refuses ``path``: the file, then the problem, on one line."""
    return EmbeddingFileError(f"{path}: {problem}")


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The named arrays of one file, by its suffix; never runs code the file holds."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise refuse(path, f"unknown format '{suffix}' (expected one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise refuse(path, "no such file")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {name: _plain_array(archive, name, path) for name in archive.files}
        if suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        if suffix == ".safetensors":
            from safetensors.torch import load_file  # with torch, which .npz files do without

            return {name: _tensor_array(tensor) for name, tensor in load_file(path).items()}
        return _torch_arrays(path)
    except EmbeddingFileError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise refuse(path, "holds pickled Python objects, which are never loaded (save plain arrays)") from None
        raise refuse(path, f"unreadable ({error})") from None
    except Exception as error:  # zip, safetensors and torch raise many types on damaged files
        detail = str(error).splitlines()[0] if str(error) else ""
        raise refuse(path, f"unreadable ({type(error).__name__}: {detail})") from None


def _plain_array(archive, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise refuse(
                path, f"array '{name}' holds pickled Python objects, which are never loaded (save plain arrays)"
            ) from None
        raise


def _tensor_array(tensor) -> np.ndarray:
    import torch  # only for .pt and .safetensors files: reading .npz needs no torch

    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # bfloat16 and float16 have no exact numpy twin everywhere
    return tensor.numpy()


def _torch_arrays(path: Path) -> dict[str, np.ndarray]:
    import torch  # only for .pt files: reading .npz needs no torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise refuse(
            path, "holds Python objects beyond tensors, which are never loaded (save a dict of tensors)"
        ) from None
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise refuse(path, f"holds a {type(payload).__name__}, not a dict of tensors (name -> tensor)")
    return {str(name): _tensor_array(tensor) for name, tensor in payload.items()}


def read_files(paths: Sequence[str | Path]) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of one file, or of one ``.npy`` file per modality; and how to name their source."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmbeddingFileError("no embedding file given")
    if len(paths) == 1:
        return read_arrays(paths[0]), str(paths[0])
    not_npy = [p for p in paths if p.suffix.lower() != ".npy"]
    if not_npy:
        raise refuse(not_npy[0], "several files form one set only as one .npy file per modality")
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        if path.stem in arrays:
            raise refuse(path, f"a second file for modality '{path.stem}'")
        arrays.update(read_arrays(path))
    return arrays, " + ".join(map(str, paths))


def load(
    paths: Sequence[str | Path],
    *,
    modalities: Sequence[str] | None = None,
    labels: str | Path | None = None,
    budget: int | None = None,
    others: str = "refuse",
) -> Embeddings:
    """Read and check the embeddings of ``paths`` (``read_files``).

    ``modalities``: the arrays to measure, in order (default: every array that is not reserved); any
    other array is refused (``others`` 'refuse') or left out with a note ('ignore'). ``labels``: a ``.npy``
    file of labels, for ``.npy`` sets. ``budget``: from a dump of this project's budget ladders, the arrays
    of that epoch (``<modality>@<budget>``).
    """
    arrays, source = read_files(paths)
    where = Path(paths[0]) if len(paths) == 1 else source
    if others == "ignore" and modalities is not None:
        left_out = [name for name in arrays if name not in modalities and name not in RESERVED and "@" not in name]
        arrays = {name: values for name, values in arrays.items() if name not in left_out}
    if labels is not None:
        if LABELS in arrays:
            raise refuse(where, f"has an array 'labels' and --labels {labels} was given too; keep one")
        label_arrays = read_arrays(labels)
        if len(label_arrays) != 1:
            raise refuse(labels, "a labels file holds exactly one array")
        arrays[LABELS] = next(iter(label_arrays.values()))
    notes: list[str] = []
    if others == "ignore" and modalities is not None and left_out:
        notes.append(f"arrays {', '.join(left_out)} left out (not among the modalities {', '.join(modalities)})")
    held = budgets(arrays)
    if budget is None and held:
        notes.append(
            f"the file also holds earlier budgets ({', '.join(map(str, held))} epochs); the final embeddings are "
            "measured (--budget N for another)"
        )
    try:
        arrays = at_budget(arrays, budget)
    except ValueError as error:
        raise refuse(where, str(error)) from None
    names = _modality_names(arrays, modalities, where)
    embedded = {name: _modality(arrays[name], name, where, notes) for name in names}
    _check_shapes(embedded, where)
    n = len(embedded[names[0]])
    result = Embeddings(source, embedded, notes=notes)
    if LABELS in arrays:
        result.labels, result.class_names = _labels(arrays[LABELS], n, where)
        if not (result.labels >= 0).any():
            result.labels = None  # every row unlabelled: measured as without labels
    if CAPTIONS in arrays or CAPTION_ITEM in arrays:
        result.captions, result.caption_item = _captions(arrays, embedded, where, notes)
    return result


def _modality_names(arrays: dict[str, np.ndarray], wanted: Sequence[str] | None, where) -> list[str]:
    held = ", ".join(arrays) or "nothing"
    if wanted is not None:
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise refuse(where, f"no array '{missing[0]}' (it holds {held})")
        unknown = [name for name in arrays if name not in wanted and name not in RESERVED]
        if unknown:
            raise refuse(
                where,
                f"unknown array '{unknown[0]}': neither a modality asked for "
                f"({', '.join(wanted)}) nor one of {', '.join(RESERVED)}",
            )
        names = list(dict.fromkeys(wanted))
    else:
        names = [name for name in arrays if name not in RESERVED]
        for name in names:
            if np.ndim(arrays[name]) != 2:
                raise refuse(
                    where,
                    f"unknown array '{name}' of shape {np.shape(arrays[name])}: a modality is a "
                    f"(rows, width) array; the reserved names are {', '.join(RESERVED)}",
                )
    if len(names) < 2:
        only = f"one modality array ('{names[0]}')" if names else "no modality array"
        raise refuse(where, f"{only}; the gap needs two or more (it holds {held})")
    return names


def _finite_floats(values: np.ndarray, name: str, where) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or values.dtype == np.bool_:
        raise refuse(where, f"array '{name}' holds {values.dtype} values, not real numbers")
    values = values.astype(np.float32) if values.dtype != np.float64 else values
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise refuse(where, f"array '{name}' holds NaN or inf ({int(bad.sum())} values; the first in row {row})")
    return values


def _unit_rows(values: np.ndarray, name: str, where, notes: list[str]) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", values, values))  # float32 is ample for the 1e-3 test
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise refuse(
            where, f"row {int(zero[0])} of array '{name}' is all zeros: it has no direction ({zero.size} such rows)"
        )
    if np.max(np.abs(norms - 1.0)) > NORM_TOLERANCE:
        notes.append(f"rows of '{name}' were not unit-norm (norms {norms.min():.3g}-{norms.max():.3g}); normalised")
        values = values / norms[:, None].astype(values.dtype)
    return np.ascontiguousarray(values, dtype=np.float32)


def _modality(values: np.ndarray, name: str, where, notes: list[str]) -> np.ndarray:
    if np.ndim(values) != 2:
        raise refuse(where, f"array '{name}' has shape {np.shape(values)}, not (rows, width)")
    if 0 in np.shape(values):
        raise refuse(where, f"array '{name}' is empty (shape {np.shape(values)})")
    return _unit_rows(_finite_floats(values, name, where), name, where, notes)


def _check_shapes(embedded: dict[str, np.ndarray], where) -> None:
    (first, z), *others = embedded.items()
    for name, other in others:
        if len(other) != len(z):
            raise refuse(
                where,
                f"array '{name}' has {len(other)} rows and '{first}' {len(z)}: row i of every "
                "modality must be the same item",
            )
        if other.shape[1] != z.shape[1]:
            raise refuse(
                where,
                f"array '{name}' is {other.shape[1]}-d and '{first}' {z.shape[1]}-d: the "
                "modalities must share one embedding space",
            )
    if len(z) < 2:
        raise refuse(where, f"array '{first}' has {len(z)} row; the metrics need two items or more")


def _labels(values: np.ndarray, n: int, where) -> tuple[np.ndarray, list[str] | None]:
    """Integer classes per item (-1: unlabelled); string labels are numbered in sorted order."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise refuse(where, f"array 'labels' has shape {values.shape} for {n} items (one label per row)")
    if values.dtype.kind in "US":
        names, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), [str(name) for name in names]
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise refuse(where, "array 'labels' holds values that are not whole numbers")
    elif values.dtype.kind not in "iu":
        raise refuse(where, f"array 'labels' holds {values.dtype} values, not classes (integers or strings)")
    codes = values.astype(np.int64)
    if (codes < -1).any():
        raise refuse(
            where, f"array 'labels' holds {int(codes.min())}; classes are 0 or more, -1 marks an unlabelled row"
        )
    return codes, None


def _captions(arrays, embedded, where, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if CAPTIONS not in arrays or CAPTION_ITEM not in arrays:
        given, other = (CAPTIONS, CAPTION_ITEM) if CAPTIONS in arrays else (CAPTION_ITEM, CAPTIONS)
        raise refuse(where, f"array '{given}' needs '{other}' beside it")
    if "text" not in embedded:
        raise refuse(where, f"array '{CAPTIONS}' holds more captions of the 'text' modality, which it lacks")
    captions = _modality(arrays[CAPTIONS], CAPTIONS, where, notes)
    item = np.asarray(arrays[CAPTION_ITEM])
    if captions.shape[1] != embedded["text"].shape[1]:
        raise refuse(where, f"array '{CAPTIONS}' is {captions.shape[1]}-d and 'text' {embedded['text'].shape[1]}-d")
    n = len(embedded["text"])
    if item.shape != (len(captions),) or item.dtype.kind not in "iu" or item.min() < 0 or item.max() >= n:
        raise refuse(
            where,
            f"array '{CAPTION_ITEM}' must give each of the {len(captions)} captions its item, an integer in 0-{n - 1}",
        )
    return captions, item.astype(np.int64)


def import_dump(source: str | Path, output: str | Path, modalities: Sequence[str]) -> list[str]:
    """One file of a ``dumps`` data set as this project's embedding dump (the workflow's ``import_dumps``):
    the experiment's modalities checked and unit-norm, labels (-1 where the file has none) with their class
    names, and the captions of instance-level retrieval. Other arrays are left out. Returns the notes."""
    embeddings = load([source], modalities=modalities, others="ignore")
    n = embeddings.n_items
    labels = embeddings.labels if embeddings.labels is not None else np.full(n, -1, dtype=np.int64)
    names = embeddings.class_names or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
    arrays = {**embeddings.modalities, LABELS: labels, IDS: np.arange(n), CLASS_NAMES: np.array(names, dtype=str)}
    if embeddings.captions is not None:
        arrays |= {CAPTIONS: embeddings.captions, CAPTION_ITEM: embeddings.caption_item}
    save_npz(output, **arrays)
    return embeddings.notes
