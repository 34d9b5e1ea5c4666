"""AV-MNIST on the real files mirrored in ../shared/data (MNIST test split, FSDD recordings)."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tarfile

import numpy as np
import pytest
import soundfile
from conftest import SHARED

from modgap.data.avmnist import (
    AvMnistFormatError,
    add_background,
    load_fsdd,
    pink_noise,
    read_idx,
    remove_image_energy,
    scale_to_snr,
    unimodal_probe_accuracy,
)
from modgap.data.format import FORMAT_VERSION, PreparedDataError, data_notes
from modgap.errors import ExplainedError
from modgap.io import write_json
from modgap.verdict.report import claims_report

MNIST = SHARED / "data" / "mnist" / "raw"
FSDD = SHARED / "data" / "fsdd"
FEATURES = {"sample_rate": 8000, "duration_s": 1.0, "n_fft": 256, "hop_length": 80, "n_mels": 40}
pytestmark = pytest.mark.skipif(not FSDD.is_dir(), reason="needs ../shared/data beside the repository")


def test_mnist_idx_files_read_as_in_the_original():
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]  # MNIST test class counts


def test_truncated_idx_is_reported(tmp_path):
    raw = gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:5000]))
    with pytest.raises(AvMnistFormatError, match="truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "broken.gz").write_bytes((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2000])
    with pytest.raises(AvMnistFormatError, match="unreadable or truncated"):
        read_idx(tmp_path / "broken.gz")


def test_fsdd_recordings_load_with_digits_and_speakers():
    fsdd = load_fsdd(FSDD, FEATURES)
    assert len(fsdd["names"]) == 3000 and fsdd["waves"].shape == (3000, 8000)
    assert sorted(set(fsdd["speakers"])) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert np.bincount(fsdd["digits"]).tolist() == [300] * 10
    assert fsdd["counts"] == {"resampled": 0, "skipped_empty": 0, "extra": 0} and fsdd["extra"] == []


def few_recordings(folder, names=("3_theo_1.wav", "7_yweweler_2.wav", "0_george_3.wav")):
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(FSDD / "recordings" / name, folder / name)
    return folder


def test_wrong_rate_is_resampled_and_empty_files_are_skipped(tmp_path):
    folder = few_recordings(tmp_path / "recordings")
    wave, rate = soundfile.read(FSDD / "recordings" / "5_lucas_4.wav", dtype="float32")
    upsampled = np.interp(np.arange(0, len(wave), 0.5), np.arange(len(wave)), wave).astype(np.float32)
    soundfile.write(folder / "5_lucas_99.wav", upsampled, 16000)
    soundfile.write(folder / "6_lucas_98.wav", np.zeros(0, dtype=np.float32), 8000)
    fsdd = load_fsdd(tmp_path, FEATURES, accept_extra=True)  # recordings of one's own, accepted on purpose
    assert fsdd["counts"] == {"resampled": 1, "skipped_empty": 1, "extra": 2}
    assert fsdd["extra"] == ["5_lucas_99.wav", "6_lucas_98.wav"]
    assert "6_lucas_98.wav" not in fsdd["names"].tolist()
    resampled = fsdd["waves"][fsdd["names"].tolist().index("5_lucas_99.wav")]
    direct = load_fsdd(few_recordings(tmp_path / "direct" / "recordings", ("5_lucas_4.wav",)), FEATURES)["waves"][0]
    assert np.corrcoef(resampled, direct)[0, 1] > 0.95


def test_modified_recording_fails_its_checksum(tmp_path):
    folder = few_recordings(tmp_path / "recordings")
    data = bytearray((folder / "3_theo_1.wav").read_bytes())
    data[-1] ^= 0xFF
    (folder / "3_theo_1.wav").write_bytes(bytes(data))
    with pytest.raises(AvMnistFormatError) as error:
        load_fsdd(tmp_path, FEATURES)
    assert str(error.value).startswith(f"{folder}/3_theo_1.wav: MD5 does not match the FSDD release (")


@pytest.mark.parametrize("name", ["3_bob_0.wav", "5_alice_0.wav"])
def test_a_recording_the_release_does_not_have_is_refused_unless_accepted(tmp_path, name):
    """Renaming a damaged file, or adding noise under a speaker's name, must not pass the checksum check."""
    folder = few_recordings(tmp_path / "recordings")
    noise = np.random.default_rng(0).standard_normal((44100, 2)).astype(np.float32) * 0.1
    soundfile.write(folder / name, noise, 44100)  # 44.1 kHz stereo noise
    with pytest.raises(AvMnistFormatError) as error:
        load_fsdd(tmp_path, FEATURES, config_key="datasets.av.fsdd")
    assert str(error.value) == (
        f"{folder}/{name}: not a recording of the FSDD release this project pins (no file of that name); "
        "remove it, or set datasets.av.fsdd.extra_recordings: true to train on recordings of your own"
    )
    accepted = load_fsdd(tmp_path, FEATURES, accept_extra=True)
    assert accepted["extra"] == [name] and accepted["counts"]["resampled"] == 1


def test_an_unreadable_recording_names_its_file_not_a_buffer(tmp_path):
    folder = few_recordings(tmp_path / "recordings")
    (folder / "4_bob_0.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AvMnistFormatError) as error:
        load_fsdd(tmp_path, FEATURES, accept_extra=True)
    assert (
        str(error.value)
        == f"{folder}/4_bob_0.wav: not a readable WAV file (Error in WAV file. No 'data' chunk marker.)"
    )


def test_fsdd_archive_as_published(tmp_path):
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("2_jackson_0.wav", "2_yweweler_0.wav"):
            tar.add(FSDD / "recordings" / name, arcname=f"free-spoken-digit-dataset-26eb9aa/recordings/{name}")
        readme = b"not a recording"
        info = tarfile.TarInfo("free-spoken-digit-dataset-26eb9aa/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    fsdd = load_fsdd(archive, FEATURES)
    assert fsdd["names"].tolist() == ["2_jackson_0.wav", "2_yweweler_0.wav"]


def test_background_noise_is_mixed_at_the_requested_snr():
    rng = np.random.default_rng(0)
    speech = np.zeros(8000, dtype=np.float32)
    speech[1000:5000] = np.sin(np.linspace(0, 300, 4000))
    mixed = scale_to_snr(speech, rng.standard_normal(8000).astype(np.float32), snr_db=6.0)
    noise = mixed - speech
    snr = 10 * np.log10(np.mean(speech[1000:5000] ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(6.0, abs=0.01)


def test_pink_noise_falls_3_db_per_octave():
    noise = pink_noise(2**16, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    low, high = power[100:200].mean(), power[1600:3200].mean()  # four octaves apart
    assert 10 * np.log10(low / high) == pytest.approx(4 * 3.0103 + 1.2, abs=1.5)  # 1/f (band widths differ)


@pytest.mark.parametrize("source", ["white", "pink", "babble"])
def test_offline_noise_is_deterministic_and_babble_comes_from_other_speakers(source):
    fsdd = load_fsdd(FSDD, FEATURES)
    rows = np.flatnonzero(fsdd["speakers"] == "theo")[:4]
    noise = {"source": source, "snr_db": [5.0, 5.0], "babble_voices": 3}
    first = add_background(fsdd["waves"][rows], fsdd["speakers"][rows], fsdd, noise, None, np.random.default_rng(1))
    again = add_background(fsdd["waves"][rows], fsdd["speakers"][rows], fsdd, noise, None, np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    speech = fsdd["waves"][rows]
    for clean, noisy in zip(speech, first):
        active = clean[np.abs(clean) > 0]
        snr = 10 * np.log10(np.mean(active**2) / np.mean((noisy - clean) ** 2))
        assert snr == pytest.approx(5.0, abs=0.01)


def test_energy_removal_keeps_the_requested_variance_of_real_digits():
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:4000].reshape(-1, 1, 28, 28)
    splits = {"train": images[:3000], "test": images[3000:]}
    degraded, info = remove_image_energy(splits, removed=0.75, seed=0)
    assert 0.25 <= info["variance_retained"] < 0.30 and info["components_kept"] < 10  # a handful of 784
    flat = splits["train"].reshape(3000, -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    kept = degraded["train"].reshape(3000, -1).astype(np.float64) - flat.mean(axis=0)
    ratio = np.sum(kept**2) / np.sum(centred**2)  # variance of the reconstruction
    assert info["variance_retained"] - 0.04 < ratio <= info["variance_retained"]  # clipping to 0..255 takes a little
    assert degraded["test"].shape == splits["test"].shape and degraded["test"].dtype == np.uint8


def test_unimodal_probes_see_degraded_images_as_harder():
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:3000].reshape(-1, 1, 28, 28)
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")[:3000].astype(np.int64)
    audio = np.random.default_rng(0).normal(size=(3000, 4, 16)).astype(np.float32)  # carries no class
    splits = {s: {"image": images[r], "audio": audio[r], "labels": labels[r]}
              for s, r in (("train", slice(0, 2000)), ("test", slice(2000, 3000)))}  # fmt: skip
    clean = unimodal_probe_accuracy(splits, seed=0)
    degraded_images, _ = remove_image_energy({s: v["image"] for s, v in splits.items()}, 0.75, seed=0)
    degraded = unimodal_probe_accuracy({s: {**v, "image": degraded_images[s]} for s, v in splits.items()}, seed=0)
    assert clean["image"] > 80 and degraded["image"] < clean["image"] - 20
    assert clean["audio"] < 20  # chance is 10 %


def test_accepted_extra_recordings_are_named_in_the_verdict(tmp_path, monkeypatch):
    extra = [f"{d}_bob_{i}.wav" for d in range(3) for i in range(3)]
    write_json(
        tmp_path / "av" / "manifest.json",
        {"format_version": FORMAT_VERSION, "name": "av", "source": {"fsdd_extra": extra}},
    )
    notes = data_notes(tmp_path / "av")
    assert notes == [
        "data set av: 9 FSDD recordings that are not the pinned release's, accepted with fsdd.extra_recordings: "
        "0_bob_0.wav, 0_bob_1.wav, 0_bob_2.wav, 1_bob_0.wav, 1_bob_1.wav and 4 more"
    ]
    runs = tmp_path / "runs.csv"
    runs.write_text("experiment,method,seed\n")
    monkeypatch.setattr("modgap.verdict.report.check_claims", lambda *args: [])  # the header alone
    report = claims_report(runs, {"baseline": "clip_lt", "methods": ["ours"], "confidence": 0.95}, data_notes=notes)
    assert report.startswith(f"Data: {notes[0]}\n\nNo experiment has runs")


def test_a_folder_named_like_a_recording_is_named_in_one_line(tmp_path):
    folder = few_recordings(tmp_path / "recordings")
    (folder / "1_bob_3.wav").mkdir()
    with pytest.raises(
        AvMnistFormatError, match=re.escape(f"{folder}/1_bob_3.wav: cannot be read as a recording (Is a directory)")
    ):
        load_fsdd(tmp_path, FEATURES, accept_extra=True)


def test_a_recording_of_nan_samples_is_refused_not_silence(tmp_path):
    folder = few_recordings(tmp_path / "recordings")
    soundfile.write(folder / "2_bob_0.wav", np.full(800, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AvMnistFormatError, match=re.escape(f"{folder}/2_bob_0.wav: holds NaN or infinite samples")):
        load_fsdd(tmp_path, FEATURES, accept_extra=True)


def test_mnist_training_split_auto_follows_what_the_local_copy_holds(tmp_path):
    """use_mnist_train 'auto': the training split when downloading, and from a local copy only when the copy
    holds its two files (one alone is refused); true and false are kept as they are."""
    from modgap.data.sources import mnist_keys, uses_mnist_train

    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, copy / name)
    config = {"use_mnist_train": "auto", "mnist": {"extracted": str(copy), "mirror": None}}
    assert not uses_mnist_train(config) and mnist_keys(config) == ["test_images", "test_labels"]
    (copy / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(ExplainedError, match="train-labels-idx1-ubyte.gz missing or not a file"):
        uses_mnist_train(config)  # one of the two training files: refused, neither split read in its place
    (copy / "train-labels-idx1-ubyte.gz").mkdir()
    with pytest.raises(ExplainedError, match="train-labels-idx1-ubyte.gz missing or not a file"):
        uses_mnist_train(config)
    (copy / "train-labels-idx1-ubyte.gz").rmdir()
    (copy / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    assert uses_mnist_train(config) and len(mnist_keys(config)) == 4
    assert uses_mnist_train({"use_mnist_train": "auto", "mnist": {"extracted": None, "mirror": None}})
    assert not uses_mnist_train({"use_mnist_train": False, "mnist": {"extracted": None, "mirror": None}})


def test_the_verdict_says_where_the_digits_and_the_noise_came_from(tmp_path):
    def notes_of(**source):
        write_json(
            tmp_path / "av" / "manifest.json", {"format_version": FORMAT_VERSION, "name": "av", "source": source}
        )
        return data_notes(tmp_path / "av")

    pink = {"source": "pink", "snr_db": [0, 20], "substitute": True}
    assert notes_of(mnist_train_split=False, noise=pink, fsdd_counts={"resampled": 0}) == [
        "data set av: every split carved from MNIST's 10,000 test digits (no training split used); speech with "
        "pink noise at 0-20 dB, this project's offline substitute for ESC-50"
    ]
    esc50 = {"source": "esc50", "snr_db": [0, 20], "substitute": False}
    assert notes_of(mnist_train_split=True, noise=esc50, fsdd_counts={"resampled": 3}) == [
        "data set av: training digits from MNIST's training split, test digits from its test split; speech with "
        "esc50 noise at 0-20 dB; 3 FSDD recordings resampled to the common rate"
    ]
    assert notes_of(mnist_train_split=True, noise={"source": "none"}) == [
        "data set av: training digits from MNIST's training split, test digits from its test split; speech with "
        "no background noise"
    ]
    assert notes_of() == []  # not AV-MNIST: nothing to say


@pytest.mark.parametrize(
    "damage, key",
    [
        (dict(mnist_train_split="false"), "source.mnist_train_split is 'false', not true or false"),
        (dict(noise={"snr_db": [0, 20]}), "source.noise does not record the noise's source"),  # was: no noise
        (dict(noise=None), "source.noise does not record the noise's source"),
        (dict(noise={"source": "pink"}), "source.noise.snr_db is None, not a range"),
        (dict(noise={"source": "pink", "snr_db": ["0", "20"]}), "source.noise.snr_db is ['0', '20'], not a range"),
        (dict(fsdd_counts={"resampled": "3"}), "source.fsdd_counts.resampled is '3', not a count"),
        (dict(fsdd_extra="0_bob_0.wav"), "source.fsdd_extra is not a list of recording names"),
    ],
)
def test_a_damaged_data_record_is_named_not_misreported(tmp_path, damage, key):
    """A manifest whose record of the digits' split or the noise is damaged names the manifest and the key
    (with the rebuild command) instead of a KeyError, or a note that says the opposite of what was done."""
    pink = {"source": "pink", "snr_db": [0, 20], "substitute": True}
    source = {"mnist_train_split": True, "noise": pink, "fsdd_counts": {"resampled": 0}} | damage
    write_json(tmp_path / "av" / "manifest.json", {"format_version": FORMAT_VERSION, "name": "av", "source": source})
    with pytest.raises(PreparedDataError, match=re.escape(f"{tmp_path / 'av' / 'manifest.json'}: {key}")):
        data_notes(tmp_path / "av")
