"""CIFAR-10 (2 modalities): images with their class name as text (released code: no template).

Reads the official python tarball (pickled batches) or an extracted
``cifar-10-batches-py`` directory. Train = data_batch_1..5 minus a stratified
validation part; test = test_batch. Retrieval is class-level.

The batches are pickles, and a pickle can run code. So each batch is checked
against the release's MD5 before it is unpickled (``verify``, on by default), and
unpickled with a loader that builds only what the release holds: dicts, lists,
bytes, numbers and numpy arrays. Anything else is refused, never constructed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from modgap.data.format import write_prepared
from modgap.data.sources import CIFAR10_ARCHIVE as ARCHIVE
from modgap.data.split import stratified_split
from modgap.data.text import encode_captions
from modgap.errors import ExplainedError

log = logging.getLogger(__name__)

MODALITIES = ("image", "text")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# MD5 of every file of the release's cifar-10-batches-py/ (as torchvision's CIFAR10 lists them).
BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
# The only globals a CIFAR-10 batch refers to: numpy's array constructors (under numpy 1 and 2 module
# names) and, in batches re-pickled by Python 3 at protocol 2, the latin-1 encoding of bytes.
_ALLOWED_GLOBALS = {
    (f"numpy.{core}.{module}", name)
    for core in ("core", "_core")
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class CifarFormatError(ExplainedError, ValueError):
    pass


class _BatchUnpickler(pickle.Unpickler):
    """Builds plain data and numpy arrays only; any other global (a callable, a class) is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch holds no such object")


def _unpickle(raw: bytes, origin: str) -> dict:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # truncated, not a pickle, or refers to something a batch never holds
        raise CifarFormatError(f"{origin}: not a readable CIFAR-10 batch ({error})") from None
    if not isinstance(batch, dict):
        raise CifarFormatError(f"{origin}: not a CIFAR-10 batch (a {type(batch).__name__}, not a dict)")
    return batch


def _checked(raw: bytes, name: str, origin: str) -> bytes:
    digest = hashlib.md5(raw).hexdigest()
    if digest != BATCH_MD5[name]:
        raise CifarFormatError(
            f"{origin}: MD5 {digest} is not the release's ({BATCH_MD5[name]}); not unpickled. Download the "
            "original again, or set verify: false for a file you trust"
        )
    return raw


def read_batches(location: str | Path, verify: bool = True) -> dict[str, dict]:
    """The pickled batches (plus batches.meta) from the tarball or an extracted directory.

    ``verify``: check every batch against the release's MD5 before unpickling it.
    """
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
            raise CifarFormatError(
                f"{location}: truncated or corrupt archive ({error}); delete it and download again"
            ) from error
    missing = sorted(wanted - set(found))
    if missing:
        raise CifarFormatError(f"{location}: missing {', '.join(missing)}")
    if verify:
        found = {name: _checked(found[name], name, f"{location}/{name}") for name in sorted(found)}
    batches = {name: _unpickle(raw, f"{location}/{name}") for name, raw in found.items()}
    for name in wanted - {"batches.meta"}:
        if b"data" not in batches[name] or b"labels" not in batches[name]:
            raise CifarFormatError(f"{location}/{name}: missing 'data' or 'labels'")
    if b"label_names" not in batches["batches.meta"]:
        raise CifarFormatError(f"{location}/batches.meta: missing 'label_names'")
    return batches


def _images(batch: dict) -> np.ndarray:
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32)


def prepare_cifar10(config: Mapping, inputs: list[str | Path], output_dir: str | Path, name: str = "cifar10") -> dict:
    location = config.get("extracted") or inputs[0]
    batches = read_batches(location, config["verify"])
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
