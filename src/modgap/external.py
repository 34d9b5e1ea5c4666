"""Embeddings made elsewhere: read from a file, checked, and measured with the study's whole metric set
(``modgap evaluate``, ``modgap compare`` and the workflow's ``dumps`` data sets; docs/your_embeddings.md).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modgap.errors import ExplainedError

LABELS, IDS, CAPTIONS, CAPTION_ITEM = "labels", "ids", "text_captions", "text_caption_item"
# Arrays that are not modalities; 'ids', 'class_names' and 'temperature' (as this project's dumps hold them) are not
# measured.
RESERVED = (LABELS, IDS, CAPTIONS, CAPTION_ITEM, "class_names", "temperature")
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


def _refuse(path: str | Path, problem: str) -> EmbeddingFileError:
    return EmbeddingFileError(f"{path}: {problem}")


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The named arrays of one file, by its suffix; never runs code the file holds."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise _refuse(path, f"unknown format '{suffix}' (expected one of {', '.join(FORMATS)})")
    if not path.is_file():
        raise _refuse(path, "no such file")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {name: _plain_array(archive, name, path) for name in archive.files}
        if suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            return {name: _tensor_array(tensor) for name, tensor in load_file(path).items()}
        return _torch_arrays(path)
    except EmbeddingFileError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise _refuse(path, "holds pickled Python objects, which are never loaded (save plain arrays)") from None
        raise _refuse(path, f"unreadable ({error})") from None
    except Exception as error:  # zip, safetensors and torch raise many types on damaged files
        detail = str(error).splitlines()[0] if str(error) else ""
        raise _refuse(path, f"unreadable ({type(error).__name__}: {detail})") from None


def _plain_array(archive, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise _refuse(
                path, f"array '{name}' holds pickled Python objects, which are never loaded (save plain arrays)"
            ) from None
        raise


def _tensor_array(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # bfloat16 and float16 have no exact numpy twin everywhere
    return tensor.numpy()


def _torch_arrays(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _refuse(
            path, "holds Python objects beyond tensors, which are never loaded (save a dict of tensors)"
        ) from None
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise _refuse(path, f"holds a {type(payload).__name__}, not a dict of tensors (name -> tensor)")
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
        raise _refuse(not_npy[0], "several files form one set only as one .npy file per modality")
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        if path.stem in arrays:
            raise _refuse(path, f"a second file for modality '{path.stem}'")
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
            raise _refuse(where, f"has an array 'labels' and --labels {labels} was given too; keep one")
        label_arrays = read_arrays(labels)
        if len(label_arrays) != 1:
            raise _refuse(labels, "a labels file holds exactly one array")
        arrays[LABELS] = next(iter(label_arrays.values()))
    notes: list[str] = []
    if others == "ignore" and modalities is not None and left_out:
        notes.append(f"arrays {', '.join(left_out)} left out (not among the modalities {', '.join(modalities)})")
    arrays = _at_budget(arrays, budget, where, notes)
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


def _at_budget(arrays: dict[str, np.ndarray], budget: int | None, where, notes: list[str]) -> dict[str, np.ndarray]:
    """Arrays of a budget ladder's dump (``<name>@<epochs>``): those of ``budget``, or the final ones."""
    snapshots = sorted(
        {int(name.partition("@")[2]) for name in arrays if "@" in name and name.partition("@")[2].isdigit()}
    )
    plain = {name: values for name, values in arrays.items() if "@" not in name}
    if budget is None:
        if snapshots:
            notes.append(f"the file also holds earlier budgets ({', '.join(map(str, snapshots))} epochs); the final "
                         "embeddings are measured (--budget N for another)")  # fmt: skip
        return plain
    if budget not in snapshots:
        found = f"it holds {', '.join(map(str, snapshots))}" if snapshots else "it holds no '<array>@<epochs>' arrays"
        raise _refuse(where, f"no embeddings of budget {budget} ({found})")
    at = {name.partition("@")[0]: values for name, values in arrays.items() if name.endswith(f"@{budget}")}
    return {**plain, **at}


def _modality_names(arrays: dict[str, np.ndarray], wanted: Sequence[str] | None, where) -> list[str]:
    held = ", ".join(arrays) or "nothing"
    if wanted is not None:
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise _refuse(where, f"no array '{missing[0]}' (it holds {held})")
        unknown = [name for name in arrays if name not in wanted and name not in RESERVED]
        if unknown:
            raise _refuse(where, f"unknown array '{unknown[0]}': neither a modality asked for "
                                 f"({', '.join(wanted)}) nor one of {', '.join(RESERVED)}")  # fmt: skip
        names = list(dict.fromkeys(wanted))
    else:
        names = [name for name in arrays if name not in RESERVED]
        for name in names:
            if np.ndim(arrays[name]) != 2:
                raise _refuse(where, f"unknown array '{name}' of shape {np.shape(arrays[name])}: a modality is a "
                                     f"(rows, width) array; the reserved names are {', '.join(RESERVED)}")  # fmt: skip
    if len(names) < 2:
        only = f"one modality array ('{names[0]}')" if names else "no modality array"
        raise _refuse(where, f"{only}; the gap needs two or more (it holds {held})")
    return names


def _finite_floats(values: np.ndarray, name: str, where) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or values.dtype == np.bool_:
        raise _refuse(where, f"array '{name}' holds {values.dtype} values, not real numbers")
    values = values.astype(np.float32) if values.dtype != np.float64 else values
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise _refuse(where, f"array '{name}' holds NaN or inf ({int(bad.sum())} values; the first in row {row})")
    return values


def _unit_rows(values: np.ndarray, name: str, where, notes: list[str]) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", values, values))  # float32 is ample for the 1e-3 test
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise _refuse(
            where, f"row {int(zero[0])} of array '{name}' is all zeros: it has no direction ({zero.size} such rows)"
        )
    if np.max(np.abs(norms - 1.0)) > NORM_TOLERANCE:
        notes.append(f"rows of '{name}' were not unit-norm (norms {norms.min():.3g}-{norms.max():.3g}); normalised")
        values = values / norms[:, None].astype(values.dtype)
    return np.ascontiguousarray(values, dtype=np.float32)


def _modality(values: np.ndarray, name: str, where, notes: list[str]) -> np.ndarray:
    if np.ndim(values) != 2:
        raise _refuse(where, f"array '{name}' has shape {np.shape(values)}, not (rows, width)")
    if 0 in np.shape(values):
        raise _refuse(where, f"array '{name}' is empty (shape {np.shape(values)})")
    return _unit_rows(_finite_floats(values, name, where), name, where, notes)


def _check_shapes(embedded: dict[str, np.ndarray], where) -> None:
    (first, z), *others = embedded.items()
    for name, other in others:
        if len(other) != len(z):
            raise _refuse(where, f"array '{name}' has {len(other)} rows and '{first}' {len(z)}: row i of every "
                                 "modality must be the same item")  # fmt: skip
        if other.shape[1] != z.shape[1]:
            raise _refuse(where, f"array '{name}' is {other.shape[1]}-d and '{first}' {z.shape[1]}-d: the "
                                 "modalities must share one embedding space")  # fmt: skip
    if len(z) < 2:
        raise _refuse(where, f"array '{first}' has {len(z)} row; the metrics need two items or more")


def _labels(values: np.ndarray, n: int, where) -> tuple[np.ndarray, list[str] | None]:
    """Integer classes per item (-1: unlabelled); string labels are numbered in sorted order."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise _refuse(where, f"array 'labels' has shape {values.shape} for {n} items (one label per row)")
    if values.dtype.kind in "US":
        names, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64), [str(name) for name in names]
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.all(values == np.round(values)):
            raise _refuse(where, "array 'labels' holds values that are not whole numbers")
    elif values.dtype.kind not in "iu":
        raise _refuse(where, f"array 'labels' holds {values.dtype} values, not classes (integers or strings)")
    codes = values.astype(np.int64)
    if (codes < -1).any():
        raise _refuse(
            where, f"array 'labels' holds {int(codes.min())}; classes are 0 or more, -1 marks an unlabelled row"
        )
    return codes, None


def _captions(arrays, embedded, where, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if CAPTIONS not in arrays or CAPTION_ITEM not in arrays:
        given, other = (CAPTIONS, CAPTION_ITEM) if CAPTIONS in arrays else (CAPTION_ITEM, CAPTIONS)
        raise _refuse(where, f"array '{given}' needs '{other}' beside it")
    if "text" not in embedded:
        raise _refuse(where, f"array '{CAPTIONS}' holds more captions of the 'text' modality, which it lacks")
    captions = _modality(arrays[CAPTIONS], CAPTIONS, where, notes)
    item = np.asarray(arrays[CAPTION_ITEM])
    if captions.shape[1] != embedded["text"].shape[1]:
        raise _refuse(where, f"array '{CAPTIONS}' is {captions.shape[1]}-d and 'text' {embedded['text'].shape[1]}-d")
    n = len(embedded["text"])
    if item.shape != (len(captions),) or item.dtype.kind not in "iu" or item.min() < 0 or item.max() >= n:
        raise _refuse(where, f"array '{CAPTION_ITEM}' must give each of the {len(captions)} captions its item, "
                             f"an integer in 0-{n - 1}")  # fmt: skip
    return captions, item.astype(np.int64)


def evaluate(embeddings: Embeddings, options, *, level: str = "instance", anchor: str | None = None,
             progress=lambda stage: None) -> dict:  # fmt: skip
    """The whole metric set of checked embeddings (modgap.evaluate.measure), with what was measured."""
    from modgap.evaluate import is_collapsed, measure

    names = list(embeddings.modalities)
    anchor = anchor or ("text" if "text" in names else names[0])
    if anchor not in names:
        raise _refuse(embeddings.source, f"no modality '{anchor}' to retrieve from (it has {', '.join(names)})")
    if level == "class" and embeddings.labels is None:
        raise _refuse(embeddings.source, "class-level retrieval needs labels (an array 'labels', or --labels)")
    results = {"source": embeddings.source, "n_items": embeddings.n_items, "width": embeddings.width,
               "modalities": names, "anchor": anchor, "retrieval": level}  # fmt: skip
    if embeddings.labels is not None:
        results["n_labelled"] = int((embeddings.labels >= 0).sum())
    measured = measure(embeddings.modalities, embeddings.labels, level, options, anchor=anchor, progress=progress,
                       text_captions=embeddings.captions, text_caption_item=embeddings.caption_item)  # fmt: skip
    notes = embeddings.notes + measured.pop("notes")
    results.update(measured)
    results["collapsed"] = is_collapsed(results, options["collapse"])
    results["notes"] = notes
    results["options"] = {key: options[key] for key in ("recall_at", "kmeans_k", "kmeans_n_init", "kmeans_random_state",
                                                         "knn_k", "knn_test_fraction", "knn_seed", "knn_split")}  # fmt: skip
    return results


def _number(value, digits: int = 2) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    """The results of ``evaluate`` as a Markdown report."""
    names = results["modalities"]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    lines = [f"# Embeddings of {results['source']}", "",
             f"{results['n_items']} items x {results['width']}-d, modalities {', '.join(names)}; retrieval at the "
             f"{results['retrieval']} level from '{results['anchor']}'."]  # fmt: skip
    if results["notes"]:
        lines += ["", *[f"- note: {note}" for note in results["notes"]]]
    if results["collapsed"]:
        lines += ["", "- **collapsed**: every input maps to about one point (true pairs near-identical while "
                      "retrieval is at chance, or one modality's rows near-identical)"]  # fmt: skip
    lines += ["", "## Gap (per modality pair)", "",
              "| pair | centroid distance (L2M) | true-pair distance (L2I) | RMG | true-pair cosine |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for a, b in pairs:
        lines.append(f"| {a}-{b} | {_number(results[f'gap_{a}_{b}'], 3)} | {_number(results[f'true_pair_distance_{a}_{b}'], 3)} "
                     f"| {_number(results[f'rmg_{a}_{b}'], 3)} | {_number(results[f'cos_true_pairs_{a}_{b}'], 3)} |")  # fmt: skip
    if len(pairs) > 1:
        lines.append(f"| mean | {_number(results['gap'], 3)} | {_number(results['true_pair_distance'], 3)} "
                     f"| {_number(results['rmg'], 3)} | {_number(results['cos_true_pairs'], 3)} |")  # fmt: skip
    lines += ["", "## Spread (per modality)", "", "| modality | mean intra-modality cosine | uniformity (t = 2) |",
              "|---|---:|---:|"]  # fmt: skip
    lines += [
        f"| {m} | {_number(results[f'intra_cos_{m}'], 3)} | {_number(results[f'uniformity_{m}'], 3)} |" for m in names
    ]
    ks = results["options"]["recall_at"]
    lines += ["", f"## Retrieval ({results['retrieval']} level, percent; chance R@1 {_number(results['r1_chance'])})", "",
              "| query -> target | " + " | ".join(f"R@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]  # fmt: skip
    anchor = results["anchor"]
    for other in (m for m in names if m != anchor):
        for query, target in ((anchor, other), (other, anchor)):
            lines.append(
                f"| {query} -> {target} | "
                + " | ".join(_number(results.get(f"r{k}_{query}_{target}"), 1) for k in ks)
                + " |"
            )
    lines += ["", "## Group-wise (percent)", ""]
    if "n_labelled" not in results or not results["n_labelled"]:
        lines.append("Skipped: no labels.")
    else:
        k = int(results["kmeans_k"]) if not math.isnan(results.get("kmeans_k", math.nan)) else "-"
        lines += [f"KMeans k = {k} ({results['options']['kmeans_n_init']} starts) on all modalities' labelled rows; "
                  f"{results['options']['knn_k']}-NN on a {results['options']['knn_split']} split "
                  f"(seed {results['options']['knn_seed']}).", "",
                  "| V-Measure | homogeneity | completeness | NMI | ARI | kNN |", "|---:|---:|---:|---:|---:|---:|",
                  "| " + " | ".join(_number(results[key], 1) for key in
                                    ("v_measure", "homogeneity", "completeness", "nmi", "ari", "knn_acc")) + " |"]  # fmt: skip
    return "\n".join(lines) + "\n"


def paired_files(baseline: str | Path, method: str | Path) -> list[tuple[str, Path, Path]]:
    """(run name, baseline file, method file) for every embedding file of two folders, paired by file name
    (one file per seed); a file without its partner is refused."""
    found = {}
    for folder in (Path(baseline), Path(method)):
        if not folder.is_dir():
            raise EmbeddingFileError(f"{folder}: not a folder of embedding files")
        found[folder] = {p.name: p for p in sorted(folder.iterdir())
                         if p.is_file() and p.suffix.lower() in FORMATS and p.suffix.lower() != ".npy"}  # fmt: skip
        if not found[folder]:
            raise EmbeddingFileError(f"{folder}: no embedding file ({', '.join(f for f in FORMATS if f != '.npy')}; "
                                     "one per seed)")  # fmt: skip
    (first, a), (second, b) = found.items()
    for folder, names, other in ((first, a, b), (second, b, a)):
        lonely = sorted(set(names) - set(other))
        if lonely:
            partner = second if folder == first else first
            raise EmbeddingFileError(
                f"{folder / lonely[0]}: no file of the same name in {partner} (runs pair by file name)"
            )
    return [(Path(name).stem, a[name], b[name]) for name in a]


def _same_labels(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def compare(
    baseline: str | Path,
    method: str | Path,
    options,
    claims,
    *,
    level: str = "instance",
    anchor: str | None = None,
    modalities: Sequence[str] | None = None,
    budget: int | None = None,
    experiment: str = "external",
    paper_reference: str | None = None,
    progress=lambda stage: None,
):
    """The claims check of one method's per-seed embeddings against a baseline's: (verdicts report, runs
    table). ``claims``: the check's options (modgap.claims), whose ``baseline`` and ``methods`` name the
    two folders; ``paper_reference``: the paper's data set whose effects set the margins (modgap.paper)."""
    from modgap.claims import PAIR_R1_PREFIX, check_claims, format_report
    from modgap.tables import runs_frame

    records, reference = [], None
    for run, *files in paired_files(baseline, method):
        for name, path in zip((claims["baseline"], claims["methods"][0]), files):
            progress(str(path))
            embeddings = load([path], modalities=modalities, budget=budget)
            found = (list(embeddings.modalities), embeddings.n_items)
            if reference is None:
                reference = (found, path, embeddings.labels)
            elif found != reference[0]:
                (names, n), first, _ = reference
                raise _refuse(path, f"holds {found[1]} items of {', '.join(found[0])}, {first} {n} items of "
                                    f"{', '.join(names)}: paired runs must share one test set")  # fmt: skip
            elif not _same_labels(embeddings.labels, reference[2]):
                raise _refuse(
                    path, f"its labels differ from those of {reference[1]}: paired runs must share one test set"
                )
            record = evaluate(embeddings, options, level=level, anchor=anchor)
            records.append({"experiment": experiment, "method": name, "seed": run, **record})
    frame = runs_frame(records)
    names, chosen = reference[0][0], records[0]["anchor"]
    if "tv_r1" not in frame and "ta_r1" not in frame:
        for other in (m for m in names if m != chosen):
            frame[f"{PAIR_R1_PREFIX}{chosen}_{other}"] = frame[[f"r1_{chosen}_{other}", f"r1_{other}_{chosen}"]].mean(
                axis=1
            )
    frame = frame.drop(columns=["options", "modalities"])
    return format_report(check_claims(frame, claims, references={experiment: paper_reference}), claims), frame


def import_dump(source: str | Path, output: str | Path, modalities: Sequence[str]) -> list[str]:
    """One file of a ``dumps`` data set as this project's embedding dump (the workflow's ``import_dumps``):
    the experiment's modalities checked and unit-norm, labels (-1 where the file has none) with their class
    names, and the captions of instance-level retrieval. Other arrays are left out. Returns the notes."""
    from modgap.io import save_npz

    embeddings = load([source], modalities=modalities, others="ignore")
    n = embeddings.n_items
    labels = embeddings.labels if embeddings.labels is not None else np.full(n, -1, dtype=np.int64)
    names = embeddings.class_names or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
    arrays = {**embeddings.modalities, "labels": labels, "ids": np.arange(n), "class_names": np.array(names, dtype=str)}
    if embeddings.captions is not None:
        arrays |= {CAPTIONS: embeddings.captions, CAPTION_ITEM: embeddings.caption_item}
    save_npz(output, **arrays)
    return embeddings.notes
