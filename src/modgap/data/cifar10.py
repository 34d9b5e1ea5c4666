"""CIFAR-10 (2 modalities): images with their class name as text (released code: no template).

Reads the official python tarball (pickled batches) or an extracted
``cifar-10-batches-py`` directory. Train = data_batch_1..5 minus a stratified
validation part; test = test_batch. Retrieval is class-level.
"""

from __future__ import annotations

import io
import logging
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from modgap.errors import ExplainedError
from modgap.data.format import write_prepared
from modgap.data.sources import CIFAR10_ARCHIVE as ARCHIVE
from modgap.data.split import stratified_split
from modgap.data.text import encode_captions

log = logging.getLogger(__name__)

MODALITIES = ("image", "text")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"


class CifarFormatError(ExplainedError, ValueError):
    pass


def _unpickle(raw: bytes, origin: str) -> dict:
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as error:  # truncated or not a pickle at all
        raise CifarFormatError(f"{origin}: not a readable CIFAR-10 batch ({error})") from error
    if b"data" not in batch or b"labels" not in batch:
        raise CifarFormatError(f"{origin}: missing 'data' or 'labels'")
    return batch


def read_batches(location: str | Path) -> dict[str, dict]:
    """The pickled batches (plus batches.meta) from the tarball or an extracted directory."""
    location = Path(location)
    wanted = set(TRAIN_BATCHES) | {TEST_BATCH, "batches.meta"}
    found: dict[str, bytes] = {}
    if location.is_dir():
        for name in wanted:
            path = location / name
            if path.is_file():
                found[name] = path.read_bytes()
    else:
        try:
            with tarfile.open(location, "r:gz") as archive:
                for member in archive:
                    name = Path(member.name).name
                    if member.isfile() and name in wanted:
                        found[name] = archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise CifarFormatError(f"{location}: truncated or corrupt archive ({error}); delete it and download again") from error
    missing = sorted(wanted - set(found))
    if missing:
        raise CifarFormatError(f"{location}: missing {', '.join(missing)}")
    batches = {name: _unpickle(found[name], f"{location}/{name}") for name in wanted - {"batches.meta"}}
    meta = pickle.load(io.BytesIO(found["batches.meta"]), encoding="bytes")
    batches["batches.meta"] = meta
    return batches


def _images(batch: dict) -> np.ndarray:
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32)


def prepare_cifar10(config: Mapping, inputs: list[str | Path], output_dir: str | Path, name: str = "cifar10") -> dict:
    location = config.get("extracted") or inputs[0]
    batches = read_batches(location)
    class_names = [c.decode() for c in batches["batches.meta"][b"label_names"]]
    train_images = np.concatenate([_images(batches[b]) for b in TRAIN_BATCHES])
    train_labels = np.concatenate([np.asarray(batches[b][b"labels"], dtype=np.int64) for b in TRAIN_BATCHES])
    test_images = _images(batches[TEST_BATCH])
    test_labels = np.asarray(batches[TEST_BATCH][b"labels"], dtype=np.int64)

    rng = np.random.default_rng(config["seed"])
    parts = stratified_split(train_labels, config["val_fraction"], 0.0, rng)
    log.info("encoding the %d class names", len(class_names))
    text = encode_captions([[c] for c in class_names], config["text"]["max_length"])

    def split(images, labels, ids):
        return {
            "image": images,
            "labels": labels,
            "ids": ids,
            **{key: value[labels] for key, value in text.items()},
            "captions": [[class_names[label]] for label in labels],
        }

    train_ids = np.array([f"train-{i:05d}" for i in range(len(train_labels))])
    splits = {
        "train": split(train_images[parts["train"]], train_labels[parts["train"]], train_ids[parts["train"]]),
        "val": split(train_images[parts["val"]], train_labels[parts["val"]], train_ids[parts["val"]]),
        "test": split(test_images, test_labels, np.array([f"test-{i:05d}" for i in range(len(test_labels))])),
    }
    return write_prepared(
        output_dir,
        splits,
        name=name,
        modalities=MODALITIES,
        class_names=class_names,
        source={"kind": "cifar10", "location": str(location), "url": ARCHIVE.url, "md5": ARCHIVE.md5},
        config=config,
    )
