"""Hostile and broken inputs: names that are paths, planted pickles, foreign directories, a full or
read-only disk, stale temporaries, and outputs that must be byte-stable."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from modgap.errors import CorruptIntermediateError
from modgap.io import (
    OWNED_MARK,
    ForeignDirectoryError,
    OutputWriteError,
    atomic_directory,
    atomic_path,
    remove_stale_temporaries_under,
    save_npz,
    save_torch,
    write_bytes,
)
from modgap.training.model_files import load_trained
from modgap.training.trainer import Trainer, train_run


class Payload:
    """Unpickling this runs ``touch <marker>``: what a planted file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- files never run code ------------------------------------------------------------------------


def test_a_planted_model_file_never_runs_its_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the study's folder: its results/ are rebuilt by a rerun
    marker = tmp_path / "pwned"
    (tmp_path / "results").mkdir()
    torch.save({"format": 3, "run": Payload(marker)}, tmp_path / "results/model.pt")
    with pytest.raises(
        CorruptIntermediateError,
        match=r"model.pt: damaged model file \(UnpicklingError: holds posix.system, not only .*--forcerun",
    ):
        load_trained(tmp_path / "results/model.pt")
    assert not marker.exists()


def test_a_planted_checkpoint_never_runs_its_code(tmp_path, tiny_data, tiny_run):
    trainer = Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=0)
    marker = tmp_path / "pwned"
    torch.save({"fingerprint": trainer.fingerprint, "model": Payload(marker)}, trainer.checkpoint_path)
    with pytest.raises(
        CorruptIntermediateError,
        match=r"checkpoint.pt: damaged checkpoint \(UnpicklingError: holds posix.system.*delete it",
    ):
        trainer.try_resume()
    assert not marker.exists()


def test_trained_files_load_weights_only_and_are_byte_stable(tmp_path, tiny_data, tiny_run):
    """Model archives name their inner folder 'archive', not after a random temporary file."""
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / name / "model.pt")
        train_run(tiny_run("ours", epochs=1), tiny_data, paths[-1], tmp_path / name / "log.csv", seed=0)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    model, payload = load_trained(paths[0])
    assert payload["seed"] == 0 and not model.training
    trainer = Trainer(tiny_run("ours", epochs=1), tiny_data, tmp_path / "c", seed=0)
    trainer.save_checkpoint()
    assert torch.load(trainer.checkpoint_path, weights_only=True)["epoch"] == 0  # resume state: plain data too


def test_an_older_model_format_is_refused_with_advice(tmp_path):
    save_torch(tmp_path / "model.pt", {"format": 2})
    with pytest.raises(ValueError, match="model format 2, expected 3; train again"):
        load_trained(tmp_path / "model.pt")


# -- outputs never remove what they did not write -----------------------------------------------


def test_a_foreign_directory_is_never_replaced(tmp_path):
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("years of work")
    with pytest.raises(ForeignDirectoryError, match="thesis: exists and was not written by this workflow"):
        with atomic_directory(foreign) as tmp:
            (tmp / "manifest.json").write_text("{}")
    assert (foreign / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no temporary left beside it either


def test_a_file_or_link_in_the_way_is_refused(tmp_path):
    (tmp_path / "file").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    for name in ("file", "link"):
        with pytest.raises(ForeignDirectoryError):
            with atomic_directory(tmp_path / name):
                pass
    assert (tmp_path / "file").read_text() == "keep"


def test_a_directory_it_wrote_is_replaced(tmp_path):
    for content in ("first", "second"):
        with atomic_directory(tmp_path / "data") as tmp:
            (tmp / "x.txt").write_text(content)
    assert (tmp_path / "data" / "x.txt").read_text() == "second"
    assert (tmp_path / "data" / OWNED_MARK).is_file()


# -- stale temporaries ---------------------------------------------------------------------------


def test_a_write_removes_what_an_interrupted_write_of_it_left(tmp_path):
    stale = [tmp_path / ".m.json.abc123.tmp", tmp_path / ".m.json.def456.tmp"]
    stale[0].write_text("half")
    stale[1].mkdir()
    other = tmp_path / ".n.json.abc123.tmp"
    other.write_text("another output's")
    with atomic_path(tmp_path / "m.json") as tmp:
        tmp.write_text("{}")
    assert not any(p.exists() for p in stale) and other.exists()


def test_the_run_start_sweep_removes_every_temporary_below_results(tmp_path):
    (tmp_path / "models" / "e" / "ours" / "seed0").mkdir(parents=True)
    stale = [tmp_path / "models" / "e" / "ours" / "seed0" / ".checkpoint.pt.x1.tmp", tmp_path / ".embedded.x2.tmp"]
    stale[0].write_bytes(b"\0" * 10)
    stale[1].mkdir()
    (stale[1] / ".inner.x3.tmp").write_text("inside a stale directory")
    (tmp_path / "models" / "keep.pt").write_text("finished")
    assert remove_stale_temporaries_under(tmp_path) == sorted(stale)
    assert not any(p.exists() for p in stale) and (tmp_path / "models" / "keep.pt").exists()


# -- full and read-only disks ----------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str = "256k"):
    """A tmpfs of ``size`` at ``path``; skips where this machine cannot mount one."""
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_bytes(path, b"\1" * 2**20),
        lambda path: save_npz(path, z=np.ones((512, 512), np.float32)),
        lambda path: save_torch(path, {"w": torch.ones(512, 512)}),
    ],
    ids=["bytes", "npz", "torch"],
)
def test_a_full_disk_names_the_path_and_leaves_nothing(tmp_path, write):
    with small_disk(tmp_path / "disk") as disk:
        target = disk / "results" / "out.bin"
        with pytest.raises(OutputWriteError, match=f"^no space left on device while writing {target}$"):
            write(target)
        assert list(target.parent.iterdir()) == []


def test_a_full_disk_while_preparing_data_leaves_nothing(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        target = disk / "results" / "data" / "embedded"
        with pytest.raises(OutputWriteError, match=f"no space left on device while writing {target}"):
            with atomic_directory(target) as tmp:
                np.save(tmp / "image.npy", np.ones((512, 512), np.float32), allow_pickle=False)
        assert list(target.parent.iterdir()) == []


def test_a_read_only_disk_names_the_path(tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        (disk / "results").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(OutputWriteError, match=f"read-only file system while writing {disk}/results/m.json"):
            write_bytes(disk / "results" / "m.json", b"{}")
