"""Stacked seeds (benchmarks/stacked_seeds.py): several seeds trained as one stacked model equal their sequential runs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modgap.training.trainer import Trainer, match_temperature, train_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # stacked seeds live with their benchmark
from stacked_seeds import SeedsTrainer, train_seeds  # noqa: E402

MLP_TOWERS = {"trunk": "mlp", "towers": {"image": {"kind": "patch", "patch_size": 14},
              "audio": {"kind": "frames", "frames_per_token": 24, "pool_frames": 4}, "text": {"kind": "tokens"}}}  # fmt: skip
LADDER = {"epochs": 4, "budgets": [2, 4], "lr_schedule": "wsd"}


def read_log(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def files(folder, seed):
    return folder / f"seed{seed}" / "model.pt", folder / f"seed{seed}" / "log.csv", folder / f"seed{seed}" / "dump.npz"


@pytest.mark.parametrize(
    ("method", "model"),
    [("clip_lt", MLP_TOWERS), ("ours", None), ("ours_released", MLP_TOWERS)],
    ids=["learnable-temperature-mlp", "transformer", "schedule-trunk-per-budget-mlp"],
)
def test_batched_seeds_equal_their_sequential_runs(tmp_path, tiny_data, tiny_run, method, model):
    """Every seed keeps its own initial weights, batches, captions, partners and temperature: at every budget
    of the ladder its embeddings, temperature and epoch log equal its own sequential run's within float
    tolerance (a batched product adds in another order)."""
    run = tiny_run(method, model=model, resample_pairs=True, **LADDER)
    seeds = [0, 1, 2]
    for seed in seeds:
        model_path, log_path, dump_path = files(tmp_path / "sequential", seed)
        train_run(run, tiny_data, model_path, log_path, seed, dump_path)
    logs = train_seeds(run, tiny_data, seeds, [files(tmp_path / "batched", s) for s in seeds])
    assert [len(rows) for rows in logs] == [len(read_log(files(tmp_path / "sequential", s)[1])) for s in seeds]
    finals = []
    for seed in seeds:
        alone, batched = (np.load(files(tmp_path / kind, seed)[2]) for kind in ("sequential", "batched"))
        assert sorted(alone.files) == sorted(batched.files) and "image@2" in alone.files
        for name in alone.files:
            if alone[name].dtype.kind == "f":
                np.testing.assert_allclose(batched[name], alone[name], atol=2e-5, err_msg=f"seed {seed}: {name}")
            else:
                np.testing.assert_array_equal(batched[name], alone[name])
        for row_alone, row_batched in zip(*(read_log(files(tmp_path / k, seed)[1]) for k in ("sequential", "batched"))):
            assert row_alone.keys() == row_batched.keys()
            for column, value in row_alone.items():
                if value and column not in ("epoch", "step", "budget"):
                    assert float(row_batched[column]) == pytest.approx(float(value), rel=1e-4, abs=1e-5), column
                else:
                    assert row_batched[column] == value
        finals.append(batched["image"])
    assert not np.allclose(finals[0], finals[1])  # the seeds are different runs
    assert not any(p.name.startswith(("checkpoint", "snapshot")) for p in (tmp_path / "batched").rglob("*"))


def test_a_temperature_control_batches_each_seed_at_its_matched_temperature(tmp_path, tiny_data, tiny_run):
    """The default's controls fix each seed's temperature at that seed's matched run's: the seeds' runs differ
    in that value alone, and each seed trains as its own run does."""
    clip = tiny_run("clip_lt", model=MLP_TOWERS, epochs=2, lr=0.05)
    seeds = [0, 1]
    train_seeds(clip, tiny_data, seeds, [files(tmp_path / "clip", s) for s in seeds])
    control = tiny_run("ours_tau_clip", model=MLP_TOWERS, epochs=2)
    runs = [match_temperature(control, files(tmp_path / "clip", s)[2]) for s in seeds]
    assert runs[0]["method"]["temperature"]["init"] != runs[1]["method"]["temperature"]["init"]
    train_seeds(runs, tiny_data, seeds, [files(tmp_path / "batched", s) for s in seeds])
    for run, seed in zip(runs, seeds):
        model_path, log_path, dump_path = files(tmp_path / "sequential", seed)
        train_run(run, tiny_data, model_path, log_path, seed, dump_path)
        alone, batched = np.load(dump_path), np.load(files(tmp_path / "batched", seed)[2])
        assert float(batched["temperature"]) == pytest.approx(run["method"]["temperature"]["init"], rel=1e-6)
        for name in ("image", "audio", "text", "temperature"):
            np.testing.assert_allclose(batched[name], alone[name], atol=2e-5, err_msg=f"seed {seed}: {name}")
    other = tiny_run("ours", model=MLP_TOWERS, epochs=2)
    with pytest.raises(ValueError, match="differ in their starting temperature alone"):
        SeedsTrainer([runs[0], other], tiny_data, [tmp_path / "a", tmp_path / "b"], seeds)


def test_a_killed_batched_run_resumes_to_the_same_result(tmp_path, tiny_data, tiny_run, monkeypatch):
    """Each seed's checkpoint is its sequential run's: a batched run killed in a cooldown resumes from them and
    ends as the whole batched run, and a checkpoint it wrote resumes that seed alone too."""
    run = tiny_run("ours", model=MLP_TOWERS, checkpoint_every=1, **LADDER)
    seeds = [3, 5]
    train_seeds(run, tiny_data, seeds, [files(tmp_path / "whole", s) for s in seeds])

    original = SeedsTrainer.train_epoch

    def killed_in_the_second_cooldown(self, epoch, branch=None, horizon=None):
        if branch is not None and branch.budget == 4:
            raise KeyboardInterrupt
        return original(self, epoch, branch, horizon)

    monkeypatch.setattr(SeedsTrainer, "train_epoch", killed_in_the_second_cooldown)
    with pytest.raises(KeyboardInterrupt):
        train_seeds(run, tiny_data, seeds, [files(tmp_path / "killed", s) for s in seeds])
    monkeypatch.setattr(SeedsTrainer, "train_epoch", original)
    checkpoint = files(tmp_path / "killed", 5)[0].parent
    assert (checkpoint / "checkpoint.pt").is_file() and (checkpoint / "snapshot_e2.npz").is_file()
    assert Trainer(run, tiny_data, checkpoint, seed=5).try_resume()

    train_seeds(run, tiny_data, seeds, [files(tmp_path / "killed", s) for s in seeds])
    for seed in seeds:
        whole, resumed = files(tmp_path / "whole", seed), files(tmp_path / "killed", seed)
        assert whole[2].read_bytes() == resumed[2].read_bytes()
        assert read_log(whole[1]) == read_log(resumed[1])


def test_seeds_whose_checkpoints_disagree_train_anew(tmp_path, tiny_data, tiny_run):
    run = tiny_run("clip_lt", model=MLP_TOWERS, epochs=2, checkpoint_every=1)
    train_seeds(run, tiny_data, [0, 1], [files(tmp_path / "whole", s) for s in (0, 1)])
    stale = Trainer(run, tiny_data, tmp_path / "mixed" / "seed1", seed=1)
    stale.save_checkpoint(0, 1)  # seed 1 "after epoch 1", seed 0 without a checkpoint
    train_seeds(run, tiny_data, [0, 1], [files(tmp_path / "mixed", s) for s in (0, 1)])
    for seed in (0, 1):
        assert files(tmp_path / "whole", seed)[2].read_bytes() == files(tmp_path / "mixed", seed)[2].read_bytes()


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("model", "dropout", 0.1, "model.dropout"),
        ("train", "grad_clip", 1.0, "train.grad_clip"),
        ("model", "towers", {**MLP_TOWERS["towers"], "image": {"kind": "resnet18"}}, "BatchNorm2d"),
    ],
    ids=["dropout", "grad-clip", "batch-norm"],
)
def test_what_cannot_be_batched_is_refused(tmp_path, tiny_data, tiny_run, section, key, value, message):
    run = tiny_run("clip_lt", model=MLP_TOWERS)
    run[section] = {**run[section], key: value}
    with pytest.raises(ValueError, match=message):
        SeedsTrainer(run, tiny_data, [tmp_path / "a", tmp_path / "b"], [0, 1])


def test_a_non_finite_loss_names_its_seed(tmp_path, tiny_data, tiny_run):
    trainer = SeedsTrainer(tiny_run("clip_lt", model=MLP_TOWERS), tiny_data, [tmp_path / "a", tmp_path / "b"], [0, 7])
    with torch.no_grad():
        trainer.model.heads["text"][1].weight[1] = float("nan")  # seed 7's text head only
    with pytest.raises(FloatingPointError, match="seed 7: non-finite loss at epoch 1, step 1"):
        trainer.train_epoch(0)
