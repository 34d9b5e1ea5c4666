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
from modgap.embed import dump_embeddings
from modgap.train import NonFiniteLossError, Trainer, train_run, warmup_cosine


def read_log(path):
    with open(path) as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def state(path):
    return torch.load(path, weights_only=False)


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
    assert float(logged[0]["temperature"]) == pytest.approx(0.07, rel=0.2)


_TRAIN_SCRIPT = """
import json, sys
from modgap.train import train_run
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
    audio[3] = np.nan
    np.save(corrupted / "train" / "audio.npy", audio)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1"):
        train_run(tiny_run("clip_lt"), corrupted, tmp_path / "out" / "model.pt", tmp_path / "out" / "log.csv", seed=0)
    assert not (tmp_path / "out" / "model.pt").exists() and not (tmp_path / "out" / "log.csv").exists()


def test_alignclip_shares_one_trunk_and_head(tmp_path, tiny_data, tiny_run):
    shared = Trainer(tiny_run("alignclip"), tiny_data, tmp_path, seed=0).model
    separate = Trainer(tiny_run("clip_lt"), tiny_data, tmp_path, seed=0).model
    assert shared.shared and not separate.shared
    assert len({id(separate.trunks[m]) for m in ("image", "audio", "text")}) == 3

    data = Trainer(tiny_run("alignclip"), tiny_data, tmp_path, seed=0).train_data
    inputs, _ = data.batch(torch.arange(8))
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
    train_run(tiny_run("clip_lt", epochs=1), data, tmp_path / "model.pt", tmp_path / "log.csv", seed=0)
    dumped = dump_embeddings(tmp_path / "model.pt", data, tmp_path / "emb.npz", device="cpu")
    assert len(dumped["text_captions"]) == counts.sum()
    assert dumped["text_caption_item"].tolist() == np.repeat(np.arange(len(counts)), counts).tolist()
    first_of_each = np.searchsorted(dumped["text_caption_item"], np.arange(len(counts)))
    np.testing.assert_allclose(dumped["text_captions"][first_of_each], dumped["text"], atol=1e-6)
