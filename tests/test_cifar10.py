"""CIFAR-10 from fixtures in the original format (pickled batches in the python tarball)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from modgap.data import check_batch_size, cifar10, prepare_dataset
from modgap.data.cifar10 import TEST_BATCH as TEST_BATCH_NAME
from modgap.data.cifar10 import CifarFormatError, read_batches
from modgap.data.format import PreparedDataError, load_split, read_manifest
from modgap.study.config import load_config

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 40


def batch(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [i % 10 for i in range(PER_BATCH)]
    return {
        b"batch_label": b"fixture",
        b"labels": labels,
        b"data": rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(PER_BATCH)],
    }


def write_tarball(path, skip: str | None = None):
    members = {f"data_batch_{i}": batch(i) for i in range(1, 6)}
    members["test_batch"] = batch(99)
    members["batches.meta"] = {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            if name == skip:
                continue
            raw = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return members


@pytest.fixture(scope="module")
def cifar_config(repo):
    config = load_config(
        {
            **load_config(repo / "config.yaml"),
            "datasets": {"cifar10": {"source": "cifar10"}},
            "dose_response": {"experiment": None},
            "experiments": [{"name": "c", "dataset": "cifar10", "modalities": ["image", "text"]}],
        }
    )
    return {**config["datasets"]["cifar10"], "verify": False}  # the fixtures are not the release's files


def test_prepare_from_the_tarball(tmp_path, cifar_config):
    members = write_tarball(tmp_path / "cifar-10-python.tar.gz")
    prepare_dataset("cifar10", cifar_config, tmp_path / "out", [tmp_path / "cifar-10-python.tar.gz"])
    manifest = read_manifest(tmp_path / "out")
    assert manifest["class_names"] == CLASSES and manifest["modalities"] == ["image", "text"]
    sizes = {s: manifest["splits"][s]["size"] for s in ("train", "val", "test")}
    assert sizes == {"train": 180, "val": 20, "test": 40}
    test = load_split(tmp_path / "out", "test", with_captions=True)
    expected = members["test_batch"][b"data"].reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(test["image"], expected)  # channel-first, row-major as in the original
    assert [c for (c,) in test["captions"]] == [CLASSES[label] for label in test["labels"]]
    val = load_split(tmp_path / "out", "val")
    assert np.bincount(val["labels"]).tolist() == [2] * 10  # stratified
    train = load_split(tmp_path / "out", "train")
    assert not set(train["ids"]) & set(val["ids"])
    # identical class names share tokens: class-level text
    cats = train["text_tokens"][train["labels"] == 3]
    assert (cats == cats[0]).all()


def test_a_batch_larger_than_the_prepared_training_split_is_refused(tmp_path, cifar_config):
    write_tarball(tmp_path / "cifar-10-python.tar.gz")
    prepare_dataset("cifar10", cifar_config, tmp_path / "out", [tmp_path / "cifar-10-python.tar.gz"])
    with pytest.raises(PreparedDataError, match=r"config key 'train.batch_size': 256 exceeds the 180 training items"):
        check_batch_size(tmp_path / "out", (256, "train.batch_size"), "cifar10")
    check_batch_size(tmp_path / "out", (180, "train.batch_size"), "cifar10")  # a batch of the whole split fits


def test_prepare_from_an_extracted_copy(tmp_path, cifar_config):
    write_tarball(tmp_path / "c.tar.gz")
    with tarfile.open(tmp_path / "c.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    config = {**cifar_config, "extracted": str(tmp_path / "cifar-10-batches-py")}
    prepare_dataset("cifar10", config, tmp_path / "out", [])
    assert read_manifest(tmp_path / "out")["splits"]["test"]["size"] == PER_BATCH


def test_missing_batch_is_reported(tmp_path):
    write_tarball(tmp_path / "c.tar.gz", skip="data_batch_3")
    with pytest.raises(CifarFormatError, match="missing data_batch_3"):
        read_batches(tmp_path / "c.tar.gz")


def test_truncated_archive_is_reported(tmp_path):
    write_tarball(tmp_path / "c.tar.gz")
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "c.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CifarFormatError, match="truncated or corrupt archive"):
        read_batches(tmp_path / "c.tar.gz")


class Payload:
    """Unpickling this runs ``touch <marker>``: what a planted batch would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def extracted_copy(tmp_path) -> Path:
    write_tarball(tmp_path / "c.tar.gz")
    with tarfile.open(tmp_path / "c.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "cifar-10-batches-py"


def test_a_planted_batch_never_runs_its_code(tmp_path):
    folder, marker = extracted_copy(tmp_path), tmp_path / "pwned"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": []}))
    with pytest.raises(
        CifarFormatError, match=r"data_batch_2: not a readable CIFAR-10 batch \(refused to load posix.system"
    ):
        read_batches(folder, verify=False)  # even unverified, the loader builds no callable
    assert not marker.exists()


def test_batches_are_checked_against_the_release_before_unpickling(tmp_path, monkeypatch):
    folder, marker = extracted_copy(tmp_path), tmp_path / "pwned"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": []}))
    unpickled = []
    monkeypatch.setattr(cifar10, "_unpickle", lambda raw, origin: unpickled.append(origin))
    with pytest.raises(CifarFormatError, match=r"batches.meta: MD5 [0-9a-f]{32} is not the release's"):
        read_batches(folder)
    assert unpickled == [] and not marker.exists()


def test_the_release_checksums_pass(tmp_path, monkeypatch):
    folder = extracted_copy(tmp_path)
    fake = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in cifar10.BATCH_MD5}
    monkeypatch.setattr(cifar10, "BATCH_MD5", fake)  # as if the fixtures were the release's files
    assert len(read_batches(folder)[TEST_BATCH_NAME][b"labels"]) == PER_BATCH
