"""The prepared-data format shared by every data set.

A prepared data set is a directory::

    manifest.json            sizes, modalities, class names, source, checksums
    train/ val/ test/        one folder per split, holding
        labels.npy           int64 (N,), class index; -1 = no single class (kept for retrieval only)
        ids.npy              unicode (N,), sample ids unique within the data set
        image.npy            uint8 (N, C, H, W)
        audio.npy            float32 (N, n_mels, frames), log-mel
        audio_waveform.npy   int16 (N, samples), optional
        audio_speaker.npy    unicode (N,), speaker or synthetic voice, optional
        text_tokens.npy      int32 (N, K, L), K captions per item at most, 0 = padding
        text_embedding.npy   float32 (N, K, 384), unit-norm sentence embeddings
        text_count.npy       int16 (N,), captions of each item (1..K)
        captions.json        N lists of caption strings

Arrays are plain ``.npy`` so large splits can be memory-mapped. Only the files
of the data set's modalities exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modgap import __version__
from modgap.data.text import TOKENIZER
from modgap.errors import ExplainedError, rebuild_command
from modgap.io import atomic_directory, file_digest, read_json, write_json

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
MODALITY_FILES = {
    "image": ("image",),
    "audio": ("audio",),
    "text": ("text_tokens", "text_embedding", "text_count"),
}
OPTIONAL_FILES = ("audio_waveform", "audio_speaker")
COMMON_FILES = ("labels", "ids")


class PreparedDataError(ExplainedError, RuntimeError):
    pass


def expected_arrays(modalities: Iterable[str]) -> list[str]:
    return list(COMMON_FILES) + [name for m in modalities for name in MODALITY_FILES[m]]


def write_prepared(
    output_dir: str | Path,
    splits: Mapping[str, Mapping[str, Any]],
    *,
    name: str,
    modalities: Sequence[str],
    class_names: Sequence[str],
    source: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict:
    """Write a prepared data set atomically and return its manifest.

    ``splits[split]`` maps array names (see the module docstring) to arrays, plus
    ``captions`` (list of lists) when text is a modality. The manifest records the
    data set's ``config`` and, with text, the tokenizer behind the token ids.
    """
    missing_splits = [s for s in SPLITS if s not in splits]
    if missing_splits:
        raise PreparedDataError(f"data set '{name}': missing split(s) {', '.join(missing_splits)}")
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "modalities": list(modalities),
        "class_names": list(class_names),
        "source": dict(source),
        "created_by": f"modgap {__version__}",
        "config": dict(config),
        "splits": {},
    }
    if "text" in modalities:
        manifest["text"] = TOKENIZER
    with atomic_directory(output_dir) as tmp:
        for split in SPLITS:
            arrays = splits[split]
            required = expected_arrays(modalities)
            absent = [a for a in required if a not in arrays]
            if absent:
                raise PreparedDataError(f"data set '{name}', split '{split}': arrays missing: {', '.join(absent)}")
            size = len(arrays["labels"])
            split_dir = tmp / split
            split_dir.mkdir()
            files = {}
            for array_name in required + [a for a in OPTIONAL_FILES if a in arrays]:
                array = np.asarray(arrays[array_name])
                if array.shape[0] != size:
                    raise PreparedDataError(
                        f"data set '{name}', split '{split}': {array_name} has {array.shape[0]} rows, "
                        f"labels have {size}"
                    )
                path = split_dir / f"{array_name}.npy"
                np.save(path, array, allow_pickle=False)
                files[path.name] = {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": file_digest(path)}
            if "text" in modalities:
                captions = arrays["captions"]
                if len(captions) != size:
                    raise PreparedDataError(f"data set '{name}', split '{split}': {len(captions)} caption lists")
                write_json(split_dir / "captions.json", [list(c) for c in captions])
                files["captions.json"] = {"sha256": file_digest(split_dir / "captions.json")}
            labels = np.asarray(arrays["labels"])
            manifest["splits"][split] = {
                "size": size,
                "labelled": int((labels >= 0).sum()),
                "class_counts": np.bincount(labels[labels >= 0], minlength=len(class_names)).tolist(),
                "files": files,
            }
        write_json(tmp / "manifest.json", manifest)
    return manifest


def _rebuild(data_dir: Path) -> str:
    return f"rebuild the data set with `{rebuild_command(data_dir)}`"


def read_manifest(data_dir: str | Path) -> dict:
    data_dir = Path(data_dir)
    path = data_dir / "manifest.json"
    if not path.is_file():
        raise PreparedDataError(f"{path}: not found; is {data_dir} a prepared data set?")
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as error:
        raise PreparedDataError(f"{path}: unreadable manifest ({error}); {_rebuild(data_dir)}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise PreparedDataError(
            f"{path}: format version {version} (this modgap reads {FORMAT_VERSION}); {_rebuild(data_dir)}"
        )
    return manifest


def _load_array(data_dir: Path, split: str, name: str, meta: Mapping | None, mmap: bool) -> np.ndarray:
    """One prepared array, checked against the shape and dtype its manifest records."""
    path = data_dir / split / f"{name}.npy"
    if not path.is_file():
        raise PreparedDataError(f"{path}: missing; {_rebuild(data_dir)}")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # a truncated .npy fails here (header or mmap length)
        raise PreparedDataError(f"{path}: unreadable array ({error}); {_rebuild(data_dir)}") from None
    if meta is not None and (list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]):
        raise PreparedDataError(
            f"{path}: holds {array.dtype} {list(array.shape)}, the manifest records {meta['dtype']} {meta['shape']}; "
            f"{_rebuild(data_dir)}"
        )
    return array


def load_split(
    data_dir: str | Path,
    split: str,
    modalities: Sequence[str] | None = None,
    mmap: bool = False,
    with_captions: bool = False,
) -> dict[str, Any]:
    """Arrays of one split for the given modalities (default: all of the data set's)."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    if split not in manifest["splits"]:
        raise PreparedDataError(f"{data_dir}: no split '{split}' (has {', '.join(manifest['splits'])})")
    modalities = list(modalities or manifest["modalities"])
    unknown = [m for m in modalities if m not in manifest["modalities"]]
    if unknown:
        raise PreparedDataError(
            f"{data_dir}: no modality {', '.join(unknown)} (has {', '.join(manifest['modalities'])})"
        )
    files = manifest["splits"][split]["files"]
    arrays: dict[str, Any] = {}
    for array_name in expected_arrays(modalities):
        arrays[array_name] = _load_array(data_dir, split, array_name, files.get(f"{array_name}.npy"), mmap)
    for array_name in OPTIONAL_FILES:  # e.g. audio_speaker belongs to audio
        if array_name.split("_")[0] in modalities and f"{array_name}.npy" in files:
            arrays[array_name] = _load_array(data_dir, split, array_name, files[f"{array_name}.npy"], mmap)
    if with_captions and "text" in modalities:
        arrays["captions"] = read_json(data_dir / split / "captions.json")
    return arrays


def verify_checksums(data_dir: str | Path) -> list[str]:
    """Files whose SHA-256 differs from the manifest (an empty list means intact)."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    bad = []
    for split, info in manifest["splits"].items():
        for filename, meta in info["files"].items():
            path = data_dir / split / filename
            if not path.is_file() or file_digest(path) != meta["sha256"]:
                bad.append(str(path))
    return bad


def data_notes(data_dir: str | Path) -> list[str]:
    """What a reader of the verdict must know about a prepared data set beyond its configuration: for
    AV-MNIST, where its digits came from (MNIST's training split or a carve of its test split), which
    background noise the speech carries (ESC-50 or an offline substitute), recordings resampled, and
    recordings that are not the release's, accepted on purpose (``fsdd.extra_recordings``). A manifest whose
    record of these is damaged is named, never read as another data set's."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)

    def damaged(key: str, what: str) -> PreparedDataError:
        return PreparedDataError(f"{data_dir / 'manifest.json'}: {key} {what}; {_rebuild(data_dir)}")

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    source, name = manifest.get("source", {}), manifest.get("name")
    if not isinstance(source, dict):
        raise damaged("source", "is not a mapping")
    if not isinstance(name, str):
        raise damaged("name", "is missing or not a string")
    notes = []
    if "mnist_train_split" in source:
        if not isinstance(source["mnist_train_split"], bool):
            raise damaged("source.mnist_train_split", f"is {source['mnist_train_split']!r}, not true or false")
        digits = (
            "training digits from MNIST's training split, test digits from its test split"
            if source["mnist_train_split"]
            else "every split carved from MNIST's 10,000 test digits (no training split used)"
        )
        noise = source.get("noise")
        if not isinstance(noise, dict) or not isinstance(noise.get("source"), str):
            raise damaged("source.noise", "does not record the noise's source")
        kind, snr = noise["source"], noise.get("snr_db")
        if kind != "none" and not (isinstance(snr, list) and len(snr) == 2 and all(map(number, snr))):
            raise damaged("source.noise.snr_db", f"is {snr!r}, not a range [low, high] in dB")
        heard = (
            "no background noise"
            if kind == "none"
            else f"{kind} noise at {snr[0]:g}-{snr[1]:g} dB"
            + (", this project's offline substitute for ESC-50" if noise.get("substitute") else "")
        )
        counts = source.get("fsdd_counts") or {}
        resampled = counts.get("resampled", 0) if isinstance(counts, dict) else None
        if not (isinstance(resampled, int) and not isinstance(resampled, bool) and resampled >= 0):
            raise damaged("source.fsdd_counts.resampled", f"is {resampled!r}, not a count of recordings")
        notes.append(
            f"data set {name}: {digits}; speech with {heard}"
            + (f"; {resampled} FSDD recordings resampled to the common rate" if resampled else "")
        )
    extra = source.get("fsdd_extra") or []
    if not (isinstance(extra, list) and all(isinstance(recording, str) for recording in extra)):
        raise damaged("source.fsdd_extra", "is not a list of recording names")
    if extra:
        listed = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        notes.append(
            f"data set {name}: {len(extra)} FSDD recordings that are not the pinned release's, accepted "
            f"with fsdd.extra_recordings: {listed}"
        )
    return notes
