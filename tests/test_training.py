"""Training: determinism, kill/resume, non-finite losses, parameter sharing, embedding dumps."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from modgap.data.format import load_split
from modgap.errors import CorruptIntermediateError
from modgap.training.encode import dump_embeddings
from modgap.training.loop import NonFiniteLossError
from modgap.training.schedules import warmup_cosine
from modgap.training.trainer import Trainer, train_run

MLP_TOWERS = {"trunk": "mlp", "towers": {"image": {"kind": "patch", "patch_size": 28},
              "audio": {"kind": "frames", "frames_per_token": 24, "pool_frames": 4}, "text": {"kind": "tokens"}}}  # fmt: skip


def read_log(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def state(path):
    return torch.load(path, weights_only=True)  # what the workflow itself can load


def test_same_seed_same_model_other_seed_other_model(tmp_path, tiny_data, tiny_run):
    run = tiny_run("ours")
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_run(run, tiny_data, tmp_path / name / "model.pt", tmp_path / name / "log.csv", seed=seed)
    a, b, c = (state(tmp_path / n / "model.pt") for n in "abc")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert read_log(tmp_path / "a" / "log.csv") == read_log(tmp_path / "b" / "log.csv")
    assert not all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # removed once finished


def test_epoch_log_has_every_term_and_validation_metrics(tmp_path, tiny_data, tiny_run):
    rows = train_run(tiny_run("ours", epochs=2), tiny_data, tmp_path / "model.pt", tmp_path / "log.csv", seed=0)
    logged = read_log(tmp_path / "log.csv")
    assert len(rows) == len(logged) == 2
    for column in ("loss", "loss_infonce", "loss_atp", "loss_cu", "weight_atp", "weight_cu", "lr", "temperature",
                   "val_gap", "val_r1", "val_cos_true_pairs"):  # fmt: skip
        assert column in logged[0], column
    assert float(logged[0]["temperature"]) == pytest.approx(0.07, rel=0.2)  # the experiment's learnable τ init


_TRAIN_SCRIPT = """
import json, sys
from modgap.training.trainer import train_run
from modgap.runtime import configure_threads
configure_threads(1)
run = json.load(open(sys.argv[1]))
train_run(run, sys.argv[2], sys.argv[3] + "/model.pt", sys.argv[3] + "/log.csv", seed=0)
"""


def test_killed_run_resumes_to_the_same_result(tmp_path, tiny_data, tiny_run):
    run = tiny_run("ours", epochs=16, checkpoint_every=2)
    (tmp_path / "run.json").write_text(json.dumps(run))
    command = [sys.executable, "-c", _TRAIN_SCRIPT, str(tmp_path / "run.json"), str(tiny_data)]

    subprocess.run([*command, str(tmp_path / "whole")], check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "checkpoint.pt").exists()
    assert not (killed / "model.pt").exists() and not (killed / "log.csv").exists()
    epochs_done = torch.load(killed / "checkpoint.pt", weights_only=False)["epoch"]
    assert 0 < epochs_done < 16

    subprocess.run([*command, str(killed)], check=True, capture_output=True)
    whole, resumed = state(tmp_path / "whole" / "model.pt"), state(killed / "model.pt")
    assert all(torch.equal(whole["model"][k], resumed["model"][k]) for k in whole["model"])
    assert read_log(tmp_path / "whole" / "log.csv") == read_log(killed / "log.csv")


def test_checkpoint_of_another_configuration_is_ignored(tmp_path, tiny_data, tiny_run):
    trainer = Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=0)
    trainer.save_checkpoint()
    assert Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=0).try_resume()
    assert not Trainer(tiny_run("ours", epochs=3), tiny_data, tmp_path, seed=0).try_resume()
    assert not Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=1).try_resume()


def test_non_finite_loss_stops_without_outputs(tmp_path, tiny_data, tiny_run):
    corrupted = tmp_path / "data"
    shutil.copytree(tiny_data, corrupted)
    audio = np.load(corrupted / "train" / "audio.npy")
    audio[:] = np.nan  # every batch: the first step fails, before any update, so not for the learning rate
    np.save(corrupted / "train" / "audio.npy", audio)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1, step 1 .*check methods.clip_lt.temperature, "
                       "methods.clip_lt.loss weights and the inputs"):  # fmt: skip
        train_run(tiny_run("clip_lt"), corrupted, tmp_path / "out" / "model.pt", tmp_path / "out" / "log.csv", seed=0)
    assert not (tmp_path / "out" / "model.pt").exists() and not (tmp_path / "out" / "log.csv").exists()


def test_alignclip_shares_one_trunk_and_head(tmp_path, tiny_data, tiny_run):
    shared = Trainer(tiny_run("alignclip"), tiny_data, tmp_path, seed=0).model
    separate = Trainer(tiny_run("clip_lt"), tiny_data, tmp_path, seed=0).model
    assert shared.shared and not separate.shared
    assert len({id(separate.trunks[m]) for m in ("image", "audio", "text")}) == 3

    data = Trainer(tiny_run("alignclip"), tiny_data, tmp_path, seed=0).train_data
    inputs = data.batch(torch.arange(8)).inputs
    trunk_parameters = list(shared.trunk.parameters()) + list(shared.head.parameters())
    for modality in ("image", "audio", "text"):
        shared.zero_grad()
        shared.encode(modality, inputs[modality]).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk_parameters), modality

    def count(module):
        return sum(p.numel() for p in module.parameters())

    per_modality = count(shared.trunk) + count(shared.head)
    assert count(separate) - count(shared) == 2 * per_modality  # three copies instead of one


def test_warmup_then_cosine():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)


def test_embedding_dump_holds_unit_norm_test_embeddings(tmp_path, tiny_data, tiny_run):
    train_run(tiny_run("clip_ft", epochs=1), tiny_data, tmp_path / "model.pt", tmp_path / "log.csv", seed=0)
    dump_embeddings(tmp_path / "model.pt", tiny_data, tmp_path / "emb.npz", device="cpu")
    dumped = np.load(tmp_path / "emb.npz")
    test = load_split(tiny_data, "test")
    assert sorted(dumped.files) == ["audio", "ids", "image", "labels", "text"]
    for modality in ("image", "audio", "text"):
        assert dumped[modality].dtype == np.float32 and dumped[modality].shape == (len(test["labels"]), 8)
        np.testing.assert_allclose(np.linalg.norm(dumped[modality], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(dumped["labels"], test["labels"])
    np.testing.assert_array_equal(dumped["ids"], test["ids"])


def test_embedding_dump_keeps_every_caption_of_multi_caption_items(tmp_path, tiny_data, tiny_run):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    test = data / "test"
    tokens = np.load(test / "text_tokens.npy")
    second = tokens.copy()
    second[:, 0, 2] = 2698  # another word piece in the second caption
    np.save(test / "text_tokens.npy", np.concatenate([tokens, second], axis=1))
    np.save(test / "text_embedding.npy", np.repeat(np.load(test / "text_embedding.npy"), 2, axis=1))
    counts = np.where(np.arange(len(tokens)) % 2 == 0, 2, 1).astype(np.int16)
    np.save(test / "text_count.npy", counts)
    manifest = json.loads((data / "manifest.json").read_text())
    for name in ("text_tokens", "text_embedding"):  # record the new shapes, as preparation would
        manifest["splits"]["test"]["files"][f"{name}.npy"]["shape"] = list(np.load(test / f"{name}.npy").shape)
    (data / "manifest.json").write_text(json.dumps(manifest))
    train_run(tiny_run("clip_lt", epochs=1), data, tmp_path / "model.pt", tmp_path / "log.csv", seed=0)
    dumped = dump_embeddings(tmp_path / "model.pt", data, tmp_path / "emb.npz", device="cpu")
    assert len(dumped["text_captions"]) == counts.sum()
    assert dumped["text_caption_item"].tolist() == np.repeat(np.arange(len(counts)), counts).tolist()
    first_of_each = np.searchsorted(dumped["text_caption_item"], np.arange(len(counts)))
    np.testing.assert_allclose(dumped["text_captions"][first_of_each], dumped["text"], atol=1e-6)


def test_one_seed_gives_every_method_the_same_start(tmp_path, tiny_data, tiny_run):
    """Seed pairing: the same initial weights wherever two methods' architectures agree, the same batches."""
    clip = Trainer(tiny_run("clip_lt"), tiny_data, tmp_path, seed=3).model.state_dict()
    ours = Trainer(tiny_run("ours"), tiny_data, tmp_path, seed=3).model.state_dict()
    shared = Trainer(tiny_run("sharedclip"), tiny_data, tmp_path, seed=3).model.state_dict()
    other_seed = dict(Trainer(tiny_run("clip_lt"), tiny_data, tmp_path, seed=4).model.named_parameters())
    assert clip.keys() == ours.keys() and all(torch.equal(clip[k], ours[k]) for k in clip)
    stems = [k for k in clip if k.startswith("stems.")]
    assert stems and all(torch.equal(clip[k], shared[k]) for k in stems)
    learned = [k for k in stems if k in other_seed and other_seed[k].numel() > 1 and other_seed[k].std() > 0]
    assert learned and not any(torch.equal(clip[k], other_seed[k]) for k in learned)


def test_resampled_partners_stay_within_the_class(tiny_data, tiny_run, tmp_path):
    data = Trainer(tiny_run("clip_lt", resample_pairs=True), tiny_data, tmp_path, seed=0).train_data
    partners = data.partner_choice(torch.Generator().manual_seed(0))
    assert list(partners) == ["audio"]  # image is the item's own; text draws captions
    chosen = partners["audio"].numpy()
    assert (data.labels[chosen] == data.labels).all() and (chosen != np.arange(data.size)).mean() > 0.5
    assert sorted(chosen.tolist()) == list(range(data.size))  # a permutation: every recording used once


@pytest.mark.parametrize("model", [None, MLP_TOWERS], ids=["transformer", "mlp"])
def test_every_seed_is_written_and_a_finished_run_resumes_without_retraining(
    tmp_path, tiny_data, tiny_run, model, caplog
):
    run = tiny_run("ours", epochs=2, model=model)
    paths = {kind: [tmp_path / f"seed{s}" / name for s in (0, 1)]
             for kind, name in (("models", "model.pt"), ("logs", "log.csv"), ("dumps", "test.npz"))}  # fmt: skip
    for seed in (0, 1):
        train_run(run, tiny_data, paths["models"][seed], paths["logs"][seed], seed, paths["dumps"][seed])
    assert all(p.is_file() for ps in paths.values() for p in ps)
    assert not any((tmp_path / f"seed{s}" / "checkpoint.pt").exists() for s in (0, 1))
    first = paths["dumps"][0].read_bytes()
    assert set(np.load(paths["dumps"][0]).files) == {"image", "audio", "text", "labels", "ids", "temperature"}

    # as if killed while writing: seed 0 is finished, its checkpoint kept, its outputs gone
    train_run(run, tiny_data, paths["models"][0], paths["logs"][0], 0, paths["dumps"][0], keep_checkpoint=True)
    for kind in paths:
        paths[kind][0].unlink()
    with caplog.at_level("INFO", logger="modgap.training.trainer"):
        train_run(run, tiny_data, paths["models"][0], paths["logs"][0], 0, paths["dumps"][0])
    assert "at epoch 2" in caplog.text  # seed 0 resumed after its last epoch: nothing retrained
    assert paths["dumps"][0].read_bytes() == first


def test_truncated_checkpoint_names_itself(tmp_path, tiny_data, tiny_run):
    trainer = Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=0)
    trainer.save_checkpoint()
    data = trainer.checkpoint_path.read_bytes()
    trainer.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptIntermediateError, match=r"checkpoint.pt: damaged checkpoint .*delete it"):
        Trainer(tiny_run("ours", epochs=2), tiny_data, tmp_path, seed=0).try_resume()


@pytest.mark.parametrize("model", [None, MLP_TOWERS], ids=["transformer", "mlp"])
def test_gpu_code_paths_run_on_the_cpu(tmp_path, tiny_data, tiny_run, model):
    """bf16 autocast and torch.compile, the options meant for GPUs, give finite losses and the same shapes."""
    plain = train_run(tiny_run("ours", epochs=1, model=model), tiny_data, tmp_path / "a" / "m.pt",
                      tmp_path / "a" / "l.csv", 0, tmp_path / "a" / "e.npz")  # fmt: skip
    amp = train_run(tiny_run("ours", epochs=1, model=model, amp=True), tiny_data, tmp_path / "b" / "m.pt",
                    tmp_path / "b" / "l.csv", 0, tmp_path / "b" / "e.npz")  # fmt: skip
    assert np.isfinite(amp[0]["loss"]) and np.isfinite(amp[0]["val_loss"])
    assert amp[0]["loss"] == pytest.approx(plain[0]["loss"], rel=0.1)  # bf16 rounding, same computation
    a, b = np.load(tmp_path / "a" / "e.npz"), np.load(tmp_path / "b" / "e.npz")
    assert all(a[m].shape == b[m].shape and b[m].dtype == np.float32 for m in ("image", "audio", "text"))


def test_torch_compile_gives_the_eager_losses(tmp_path, tiny_data, tiny_run):
    pytest.importorskip("torch._inductor")
    eager = Trainer(tiny_run("clip_lt", epochs=1, model=MLP_TOWERS), tiny_data, tmp_path / "a", seed=0)
    compiled = Trainer(tiny_run("clip_lt", epochs=1, model=MLP_TOWERS, compile=True), tiny_data, tmp_path / "b", seed=0)
    batch = eager.train_data.batch(torch.arange(16))
    with torch.no_grad():
        expected = eager.forward(batch.inputs)
        got = compiled.forward(batch.inputs)
    for modality in expected:
        torch.testing.assert_close(got[modality], expected[modality], atol=1e-4, rtol=1e-4)


def test_the_weight_schedule_moves_every_step(tmp_path, tiny_data, tiny_run, monkeypatch):
    """The released code changes alpha and beta per step: the loss sees the step's fractional epoch."""
    from modgap.training.losses import MethodLoss

    seen = []
    forward = MethodLoss.forward

    def recording(self, embeddings, epoch, epochs, *args, **kwargs):
        seen.append(epoch)
        return forward(self, embeddings, epoch, epochs, *args, **kwargs)

    monkeypatch.setattr(MethodLoss, "forward", recording)
    trainer = Trainer(tiny_run("ours_released", epochs=2), tiny_data, tmp_path, seed=0)
    trainer.train_epoch(1)
    steps = trainer.steps_per_epoch
    assert steps > 1 and seen[:steps] == pytest.approx([1 + s / steps for s in range(steps)])


def _train(data, folder, run, seed=0):
    train_run(run, data, folder / "model.pt", folder / "log.csv", seed, folder / "dump.npz")
    return folder


@pytest.mark.parametrize("method", ["ours", "ours_released"])
def test_every_budget_of_a_ladder_is_the_annealed_state_of_a_run_trained_to_it(tmp_path, tiny_data, tiny_run, method):
    """A budget's state equals that of a run trained to that budget alone with the same warm-up, constant
    stage and cooldown: for a constant-weight method as a cooldown branch off the shared trunk, for the
    released alpha/beta schedule (which runs over each budget) as a trunk of its own."""
    from modgap.embeddings.dumps import load_method_dump

    ladder = _train(
        tiny_data,
        tmp_path / "ladder",
        tiny_run(method, epochs=4, budgets=[2, 4], lr_schedule="wsd", warmup_fraction=0.2),
    )
    # alone to 2 epochs: warm-up over the same first budget; alone to 4: the same warm-up steps over 4 epochs
    to_2 = _train(tiny_data, tmp_path / "to_2", tiny_run(method, epochs=2, lr_schedule="wsd", warmup_fraction=0.2))
    to_4 = _train(tiny_data, tmp_path / "to_4", tiny_run(method, epochs=4, lr_schedule="wsd", warmup_fraction=0.1))
    for budget, alone in ((2, to_2), (4, to_4)):
        at_budget = load_method_dump(ladder / "dump.npz", budget=None if budget == 4 else budget)
        own = load_method_dump(alone / "dump.npz")
        for name in ("image", "audio", "text", "temperature"):
            np.testing.assert_array_equal(at_budget[name], own[name])
    early, final = load_method_dump(ladder / "dump.npz", budget=2), load_method_dump(ladder / "dump.npz")
    assert not np.array_equal(final["image"], early["image"])
    assert sorted(p.name for p in ladder.iterdir()) == ["dump.npz", "log.csv", "model.pt"]  # snapshots cleaned
    whole, alone_model = state(ladder / "model.pt"), state(to_4 / "model.pt")
    assert all(torch.equal(whole["model"][k], alone_model["model"][k]) for k in whole["model"])


def test_a_ladder_anneals_every_budget_to_a_zero_rate(tmp_path, tiny_data, tiny_run):
    """The epoch log holds the trunk's epochs (no budget) and each budget's cooldown, whose rate falls to
    about 0 by the budget's end while the trunk keeps its constant rate."""
    run = tiny_run("clip_lt", epochs=6, budgets=[2, 3, 6], lr_schedule="wsd", lr=0.01, cooldown_fraction=0.34)
    rows = read_log(_train(tiny_data, tmp_path / "ladder", run) / "log.csv")
    phases = [(int(r["epoch"]), r["budget"]) for r in rows]
    # cooldowns: 1 epoch for budgets 2 and 3 (0.34 x 2 or 3, rounded), 2 for 6; the trunk runs to epoch 4
    assert phases == [(1, ""), (2, "2"), (2, ""), (3, "3"), (3, ""), (4, ""), (5, "6"), (6, "6")]
    trunk = [float(r["lr"]) for r in rows if r["budget"] == ""]
    assert trunk[1:] == [0.01] * 3  # after the warm-up of the first epoch
    ends = [float(r["lr"]) for r in rows if r["budget"] and int(r["epoch"]) == int(r["budget"])]
    steps = Trainer(run, tiny_data, tmp_path / "x", seed=0).steps_per_epoch
    assert ends == pytest.approx([0.01 / steps, 0.01 / steps, 0.01 / (2 * steps)])


def test_a_ladder_killed_mid_cooldown_resumes_to_the_same_result(tmp_path, tiny_data, tiny_run, monkeypatch):
    """A run killed inside a cooldown resumes from the trunk's last checkpoint and ends as the whole run."""
    run = tiny_run("ours", epochs=4, budgets=[2, 4], lr_schedule="wsd", checkpoint_every=1)
    whole = _train(tiny_data, tmp_path / "whole", run)

    calls = []
    original = Trainer.train_epoch

    def killed_in_the_second_cooldown(self, epoch, branch=None, horizon=None):
        if branch is not None and branch.budget == 4:
            raise KeyboardInterrupt
        calls.append(epoch)
        return original(self, epoch, branch, horizon)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_the_second_cooldown)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_data, tmp_path / "killed", run)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert (tmp_path / "killed" / "checkpoint.pt").exists() and (tmp_path / "killed" / "snapshot_e2.npz").exists()
    resumed = _train(tiny_data, tmp_path / "killed", run)
    assert (whole / "dump.npz").read_bytes() == (resumed / "dump.npz").read_bytes()
    assert read_log(whole / "log.csv") == read_log(resumed / "log.csv")


def test_warmup_stable_decay():
    from modgap.training.schedules import warmup_stable_decay

    assert [warmup_stable_decay(s, 4, None, 1) for s in (0, 3, 4, 1000)] == [0.25, 1.0, 1.0, 1.0]
    assert [warmup_stable_decay(s, 4, 10, 4) for s in (9, 10, 11, 13)] == [1.0, 1.0, 0.75, 0.25]
    assert warmup_stable_decay(0, 4, 0, 2) == 0.25  # a cooldown inside the warm-up takes the lower rate


def test_annealing_plan():
    from modgap.training.schedules import Branch, annealing_plan

    wsd = {"epochs": 40, "budgets": [10, 20, 40], "lr_schedule": "wsd", "cooldown_fraction": 0.2}
    assert annealing_plan(wsd, schedule_horizon=False) == [[Branch(8, 10), Branch(16, 20), Branch(32, 40)]]
    assert annealing_plan(wsd, schedule_horizon=True) == [[Branch(8, 10)], [Branch(16, 20)], [Branch(32, 40)]]
    cosine = {"epochs": 6, "budgets": None, "lr_schedule": "cosine", "cooldown_fraction": 0.2}
    assert annealing_plan(cosine, schedule_horizon=False) == [[Branch(6, 6)]]


def test_a_temperature_control_trains_at_the_matched_runs_end_temperature(tmp_path, tiny_data, tiny_run):
    from modgap.training.trainer import match_temperature

    clip = _train(tiny_data, tmp_path / "clip", tiny_run("clip_lt", epochs=2, lr=0.05))
    ended = float(np.load(clip / "dump.npz")["temperature"])
    assert ended != pytest.approx(0.07)  # the learnable temperature moved
    control = tiny_run("ours_tau_clip", epochs=2)
    with pytest.raises(ValueError, match="the temperature matches method 'clip_lt': read it from that run first"):
        Trainer(control, tiny_data, tmp_path / "x", seed=0)
    matched = match_temperature(control, clip / "dump.npz")
    assert matched["method"]["temperature"] == {
        "learnable": False,
        "init": ended,
        "max_logit_scale": 100,
        "match": None,
    }
    rows = read_log(_train(tiny_data, tmp_path / "control", matched) / "log.csv")
    assert [float(r["temperature"]) for r in rows] == pytest.approx([ended] * len(rows), rel=1e-6)


def test_a_training_job_imports_no_analysis_library():
    """A job's start cost is its imports: training never needs pandas, scikit-learn, scipy or matplotlib."""
    code = "import sys, modgap.training.trainer; print(sorted(set(sys.modules) & {'pandas', 'sklearn', 'scipy', 'matplotlib'}))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
