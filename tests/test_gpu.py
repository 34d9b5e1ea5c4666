"""The GPU code paths on a CUDA device: skipped without one; benchmarks/gpu_check.sh runs them on a GPU machine.

Tolerances: a GPU adds in another order than the CPU, and the differences grow with every step, so runs on
the two devices are compared after one epoch of a tiny model, not bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modgap.training import inputs
from modgap.training.inputs import SplitInputs
from modgap.training.trainer import Trainer, train_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # stacked seeds live with their benchmark
from stacked_seeds import train_seeds  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
MLP_TOWERS = {"trunk": "mlp", "towers": {"image": {"kind": "patch", "patch_size": 7},
              "audio": {"kind": "frames", "frames_per_token": 24, "pool_frames": 4}, "text": {"kind": "tokens"}}}  # fmt: skip


def trained(tmp_path, data, run, name, seed=0):
    folder = tmp_path / name
    rows = train_run(run, data, folder / "model.pt", folder / "log.csv", seed, folder / "dump.npz")
    return rows, np.load(folder / "dump.npz")


@pytest.mark.parametrize("model", [None, MLP_TOWERS], ids=["transformer", "mlp"])
def test_a_run_on_cuda_trains_as_on_the_cpu(tmp_path, tiny_data, tiny_run, model):
    """Same seed, same batches, same initial weights: one epoch on the GPU ends where the CPU's does, within
    the rounding of another order of additions (TF32 stays off for float32 products)."""
    cpu_rows, cpu = trained(tmp_path, tiny_data, tiny_run("ours", model=model, epochs=1, device="cpu"), "cpu")
    cuda_rows, cuda = trained(tmp_path, tiny_data, tiny_run("ours", model=model, epochs=1, device="cuda"), "cuda")
    assert cuda_rows[0]["loss"] == pytest.approx(cpu_rows[0]["loss"], rel=1e-4)
    for modality in ("image", "audio", "text"):
        np.testing.assert_allclose(cuda[modality], cpu[modality], atol=1e-4)


def test_bf16_autocast_on_cuda_stays_close_to_float32(tmp_path, tiny_data, tiny_run):
    plain, _ = trained(tmp_path, tiny_data, tiny_run("ours", model=MLP_TOWERS, epochs=1, device="cuda"), "fp32")
    amp, dump = trained(
        tmp_path, tiny_data, tiny_run("ours", model=MLP_TOWERS, epochs=1, device="cuda", amp=True), "bf16"
    )
    assert np.isfinite(amp[0]["loss"]) and amp[0]["loss"] == pytest.approx(plain[0]["loss"], rel=0.05)
    assert dump["image"].dtype == np.float32


def test_batched_seeds_on_cuda_equal_their_sequential_runs(tmp_path, tiny_data, tiny_run):
    run = tiny_run("clip_lt", model=MLP_TOWERS, epochs=4, budgets=[2, 4], lr_schedule="wsd", device="cuda")
    seeds = [0, 1, 2]
    paths = [(tmp_path / f"b{s}" / "model.pt", tmp_path / f"b{s}" / "log.csv", tmp_path / f"b{s}" / "dump.npz")
             for s in seeds]  # fmt: skip
    train_seeds(run, tiny_data, seeds, paths)
    for seed, (_, _, dump) in zip(seeds, paths):
        _, alone = trained(tmp_path, tiny_data, run, f"s{seed}", seed)
        batched = np.load(dump)
        for name in ("image", "audio", "text", "image@2", "temperature"):
            np.testing.assert_allclose(batched[name], alone[name], atol=1e-4, err_msg=f"seed {seed}: {name}")


def test_a_split_gathered_per_batch_through_pinned_memory_equals_a_resident_one(tiny_data, monkeypatch):
    device = torch.device("cuda")
    resident = SplitInputs(tiny_data, "train", ["image", "audio", "text"], device)
    monkeypatch.setattr(inputs, "DEVICE_RESIDENT_LIMIT", 0)  # as for a split too large for the GPU
    gathered = SplitInputs(tiny_data, "train", ["image", "audio", "text"], device)
    assert resident.resident and not gathered.resident
    index = torch.randperm(resident.size, generator=torch.Generator().manual_seed(0))[:32]
    captions = resident.caption_choice(torch.Generator().manual_seed(1))
    a, b = resident.batch(index, captions), gathered.batch(index, captions)
    for modality in a.inputs:
        assert b.inputs[modality].device.type == "cuda" and torch.equal(a.inputs[modality], b.inputs[modality])
    assert torch.equal(a.labels, b.labels)


def test_the_trainer_places_everything_on_the_gpu(tmp_path, tiny_data, tiny_run):
    trainer = Trainer(tiny_run("ours", model=MLP_TOWERS, device="auto"), tiny_data, tmp_path, seed=0)
    assert trainer.device.type == "cuda"
    tensors = [
        *trainer.model.parameters(),
        *trainer.model.buffers(),
        *trainer.loss.buffers(),
        *trainer.loss.parameters(),
    ]
    assert all(t.device.type == "cuda" for t in tensors)
    assert all(t.device.type == "cuda" for t in trainer.train_data.arrays.values())
