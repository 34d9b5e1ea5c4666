"""Embeddings made elsewhere: read from a file and checked, for ``modgap evaluate``, ``modgap compare``
(modgap.your_embeddings measures them) and the workflow's ``dumps`` data sets (docs/your_embeddings.md).

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

import json
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modgap.embeddings.dumps import CAPTION_ITEM, CAPTIONS, CLASS_NAMES, IDS, LABELS, TEMPERATURE, at_budget, budgets
from modgap.embeddings.fingerprints import ItemSet
from modgap.errors import ExplainedError
from modgap.io import save_npz

# Arrays that are not modalities; 'ids', 'class_names' and 'temperature' (as this project's dumps hold them) are
# not measured.
RESERVED = (LABELS, IDS, CAPTIONS, CAPTION_ITEM, CLASS_NAMES, TEMPERATURE)
FORMATS = (".npz", ".npy", ".safetensors", ".pt", ".pth")
# Rows whose norm is further than this from 1 count as not normalised.
NORM_TOLERANCE = 1e-3
# The largest array a file may declare, uncompressed, before anything is read: a small archive can
# declare gigabytes (docs/your_embeddings.md, "Limits"). 1 GiB holds 500,000 rows of 512 float32 values.
MAX_ARRAY_BYTES = 2**30


def array_limit(gib: float | None) -> int:
    """The largest declared array size in bytes: ``gib`` GiB (an option, datasets.<name>.max_array_gib), or
    MAX_ARRAY_BYTES for None."""
    return MAX_ARRAY_BYTES if gib is None else int(gib * 2**30)


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
    ids: np.ndarray | None = None  # the file's item ids, where it gives them
    notes: list[str] = field(default_factory=list)

    @property
    def item_set(self) -> ItemSet:
        """The items these embeddings were measured on (modgap.verdict.evidence): runs compared must share it."""
        labels = self.labels if self.labels is not None else np.full(self.n_items, -1)
        return ItemSet.of(labels, self.class_names, self.ids)

    @property
    def n_items(self) -> int:
        return len(next(iter(self.modalities.values())))

    @property
    def width(self) -> int:
        return next(iter(self.modalities.values())).shape[1]


def refuse(path: str | Path, problem: str) -> EmbeddingFileError:
    """The error that refuses ``path``: the file, then the problem, on one line."""
    return EmbeddingFileError(f"{path}: {problem}")


def check_file(path: str | Path) -> Path:
    """``path``, refused unless it is a file of a known format (by its suffix)."""
    path = Path(path)
    if path.is_dir():
        raise refuse(path, "a folder, not a file")
    if path.suffix.lower() not in FORMATS:
        found = f"unknown format '{path.suffix.lower()}'" if path.suffix else "no format suffix"
        raise refuse(path, f"{found} (expected one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise refuse(path, "no such file")
    return path


def read_arrays(path: str | Path, max_array_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """The named arrays of one file, by its suffix; never runs code the file holds, and reads no array
    whose declared size exceeds ``max_array_bytes`` (each array's size is checked before any is read)."""
    path = check_file(path)
    suffix = path.suffix.lower()
    try:
        _check_declared_sizes(path, suffix, max_array_bytes)
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


def _kind_of_content(path: Path) -> str:
    """What a file holds by its first bytes: 'zip' (an .npz archive, or a .pt file of torch's format),
    'npy', 'pickle' or 'other'."""
    with open(path, "rb") as handle:
        start = handle.read(6)
    if start[:2] == b"PK":
        return "zip"
    if start == b"\x93NUMPY":
        return "npy"
    return "pickle" if start[:1] == b"\x80" else "other"


def _npy_bytes(handle) -> tuple[int, str]:
    """The size an .npy header declares (bytes), and its shape and type in words."""
    version = np.lib.format.read_magic(handle)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(handle)
    return int(np.prod(shape, dtype=object)) * dtype.itemsize, f"shape {shape} {dtype}"


def _declared_sizes(path: Path, suffix: str) -> dict[str, tuple[int, str]]:
    """name -> (declared uncompressed bytes, how the file declares them) of every array, read from headers."""
    kind = _kind_of_content(path)
    wanted = {".npz": "zip", ".npy": "npy"}.get(suffix)
    if wanted and kind != wanted:
        if kind == "pickle":
            raise refuse(path, "holds a Python pickle, which is never loaded (save plain arrays)")
        problem = {
            ("zip", "npy"): "not an .npz archive but one .npy array (name it .npy)",
            ("npy", "zip"): "not a .npy file but a zip archive (an .npz? name it .npz)",
            ("zip", "other"): "not an .npz archive (it does not start as a zip archive does)",
            ("npy", "other"): "not a .npy file (it does not start as a .npy file does)",
        }[wanted, kind]
        raise refuse(path, problem)
    if suffix == ".npy":
        with open(path, "rb") as handle:
            return {path.stem: _npy_bytes(handle)}
    if suffix == ".safetensors":
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length > path.stat().st_size:
                raise ValueError(f"a header of {length} bytes in a file of {path.stat().st_size}")
            header = json.loads(handle.read(length))
        return {
            name: (
                int(entry["data_offsets"][1]) - int(entry["data_offsets"][0]),
                f"shape {tuple(entry['shape'])} {entry['dtype']}",
            )
            for name, entry in header.items()
            if name != "__metadata__"
        }
    if kind != "zip":  # a .pt file of torch's legacy format: no larger than the file
        return {path.name: (path.stat().st_size, "the whole file")}
    sizes = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            declared = [(info.file_size, f"{info.file_size} bytes uncompressed")]
            if suffix == ".npz" and info.filename.endswith(".npy"):
                with archive.open(info) as handle:
                    declared.append(_npy_bytes(handle))
            sizes[info.filename.removesuffix(".npy")] = max(declared)
    return sizes


def _check_declared_sizes(path: Path, suffix: str, max_array_bytes: int) -> None:
    for name, (size, declared) in _declared_sizes(path, suffix).items():
        if size > max_array_bytes:
            raise refuse(
                path,
                f"array '{name}' declares {size / 2**30:.3g} GiB ({declared}), over the limit of "
                f"{max_array_bytes / 2**30:.3g} GiB per array; nothing was read (docs/your_embeddings.md, "
                "'Limits': how to raise it)",
            )


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


def read_files(
    paths: Sequence[str | Path], max_array_bytes: int = MAX_ARRAY_BYTES
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of one file, or of one ``.npy`` file per modality; and how to name their source."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmbeddingFileError("no embedding file given")
    if len(paths) == 1:
        return read_arrays(paths[0], max_array_bytes), str(paths[0])
    not_npy = [p for p in paths if p.suffix.lower() != ".npy"]
    if not_npy:
        raise refuse(not_npy[0], "several files form one set only as one .npy file per modality")
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        if path.stem in arrays:
            raise refuse(path, f"a second file for modality '{path.stem}'")
        arrays.update(read_arrays(path, max_array_bytes))
    return arrays, " + ".join(map(str, paths))


def load(
    paths: Sequence[str | Path],
    *,
    modalities: Sequence[str] | None = None,
    labels: str | Path | None = None,
    budget: int | None = None,
    others: str = "refuse",
    max_array_bytes: int = MAX_ARRAY_BYTES,
) -> Embeddings:
    """Read and check the embeddings of ``paths`` (``read_files``).

    ``modalities``: the arrays to measure, in order (default: every array that is not reserved); any
    other array is refused (``others`` 'refuse') or left out with a note ('ignore'). ``labels``: a ``.npy``
    file of labels, for ``.npy`` sets. ``budget``: from a dump of this project's budget ladders, the arrays
    of that epoch (``<modality>@<budget>``). ``max_array_bytes``: the largest array a file may declare.
    """
    arrays, source = read_files(paths, max_array_bytes)
    where = Path(paths[0]) if len(paths) == 1 else source
    held = ", ".join(arrays) or "nothing"  # what the file holds, before any is left out
    if others == "ignore" and modalities is not None:
        left_out = [name for name in arrays if name not in modalities and name not in RESERVED and "@" not in name]
        arrays = {name: values for name, values in arrays.items() if name not in left_out}
    if labels is not None:
        if LABELS in arrays:
            raise refuse(where, f"has an array 'labels' and --labels {labels} was given too; keep one")
        label_arrays = read_arrays(labels, max_array_bytes)
        if len(label_arrays) != 1:
            raise refuse(labels, "a labels file holds exactly one array")
        arrays[LABELS] = next(iter(label_arrays.values()))
    notes: list[str] = []
    if others == "ignore" and modalities is not None and left_out:
        notes.append(f"arrays {', '.join(left_out)} left out (not among the modalities {', '.join(modalities)})")
    earlier = budgets(arrays)
    if budget is None and earlier:
        notes.append(
            f"the file also holds earlier budgets ({', '.join(map(str, earlier))} epochs); the final embeddings are "
            "measured (--budget N for another)"
        )
    try:
        arrays = at_budget(arrays, budget)
    except ValueError as error:
        raise refuse(where, str(error)) from None
    names = _modality_names(arrays, modalities, where, held)
    embedded = {name: _modality(arrays[name], name, where, notes) for name in names}
    _check_shapes(embedded, where)
    n = len(embedded[names[0]])
    result = Embeddings(source, embedded, notes=notes)
    if IDS in arrays:
        result.ids = _ids(arrays[IDS], n, where)
    if LABELS in arrays:
        result.labels, result.class_names = _labels(arrays[LABELS], n, where)
        if not (result.labels >= 0).any():
            result.labels = None  # every row unlabelled: measured as without labels
    if CAPTIONS in arrays or CAPTION_ITEM in arrays:
        result.captions, result.caption_item = _captions(arrays, embedded, where, notes)
    return result


def _modality_names(arrays: dict[str, np.ndarray], wanted: Sequence[str] | None, where, held: str) -> list[str]:
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
    """Rows scaled to unit norm. Norms are taken in float64 of rows first divided by their largest entry, so
    neither squares that overflow (rows near 1e20 in float32) nor ones that underflow lose a row's direction;
    a row whose norm is 0, subnormal (too small a number to divide by) or beyond the float range is refused."""
    scale = np.abs(values).max(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scaled = values / np.where(scale > 0, scale, 1.0)[:, None]
        norms = scale * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
    tiny = np.finfo(values.dtype).tiny
    for bad, problem in (
        (norms == 0, "is all zeros: it has no direction"),
        ((norms > 0) & (norms < tiny), "has a subnormal norm ({norm:.3g}): too small to give a direction"),
        (~np.isfinite(norms), "has a norm beyond the float range"),
    ):
        rows = np.flatnonzero(bad)
        if rows.size:
            said = problem.format(norm=norms[rows[0]])
            raise refuse(where, f"row {int(rows[0])} of array '{name}' {said} ({rows.size} such rows)")
    if np.max(np.abs(norms - 1.0)) > NORM_TOLERANCE:
        notes.append(f"rows of '{name}' were not unit-norm (norms {norms.min():.3g}-{norms.max():.3g}); normalised")
        values = scaled / (norms / scale)[:, None]
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
    # checked before the cast to int64, which would wrap values beyond its range (2**64 - 1 reads as -1)
    low, high = values.min(), values.max()
    if low < -1:
        raise refuse(where, f"array 'labels' holds {int(low)}; classes are 0 or more, -1 marks an unlabelled row")
    if high > np.iinfo(np.int64).max:
        raise refuse(where, f"array 'labels' holds {int(high)}, beyond the classes int64 can number")
    return values.astype(np.int64), None


def _ids(values: np.ndarray, n: int, where) -> np.ndarray:
    """The file's item ids, one per row (compared across runs: modgap.verdict.evidence)."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise refuse(where, f"array 'ids' has shape {values.shape} for {n} items (one id per row)")
    if values.dtype.kind not in "iuUS":
        raise refuse(where, f"array 'ids' holds {values.dtype} values, not item ids (integers or strings)")
    return values


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


def import_dump(
    source: str | Path, output: str | Path, modalities: Sequence[str], max_array_bytes: int = MAX_ARRAY_BYTES
) -> list[str]:
    """One file of a ``dumps`` data set as this project's embedding dump (the workflow's ``import_dumps``):
    the experiment's modalities checked and unit-norm, labels (-1 where the file has none) with their class
    names, the file's item ids (row numbers where it has none), and the captions of instance-level retrieval.
    Other arrays are left out. Returns the notes."""
    embeddings = load([source], modalities=modalities, others="ignore", max_array_bytes=max_array_bytes)
    n = embeddings.n_items
    labels = embeddings.labels if embeddings.labels is not None else np.full(n, -1, dtype=np.int64)
    names = embeddings.class_names or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
    ids = embeddings.ids if embeddings.ids is not None else np.arange(n)  # the file's, compared across runs
    arrays = {**embeddings.modalities, LABELS: labels, IDS: ids, CLASS_NAMES: np.array(names, dtype=str)}
    if embeddings.captions is not None:
        arrays |= {CAPTIONS: embeddings.captions, CAPTION_ITEM: embeddings.caption_item}
    save_npz(output, **arrays)
    return embeddings.notes
