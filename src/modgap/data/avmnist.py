"""AV-MNIST (3 modalities): MNIST digits paired by label with spoken digits of the Free Spoken
Digit Dataset (FSDD), and the digit's name as text.

- images: MNIST in the original IDX format (train split -> train/val, test split -> test); with
  ``use_mnist_train: false`` every split is carved from the 10,000 test digits;
- audio: FSDD recordings of the same digit, drawn per image (seeded) from the split's speakers,
  test speakers (``test_speakers``, default yweweler) heard only in test; resampled to the
  feature rate where needed, silent edges trimmed, log-mel features as for the embedded set;
  background noise at a random SNR per recording (``noise``): ESC-50 clips as the AV-MNIST
  generator mixes them, or this project's offline substitutes (white, pink, babble of other FSDD
  speakers), generated deterministically from the data set's seed;
- image degradation by energy (``image_energy_removed``): the images are projected on the leading
  principal components of the training images that keep 1 - removed of their variance (the
  generator removes 75 %);
- text: the digit's name; retrieval is class-level.

Preparation also measures how hard each modality is alone: a linear probe (logistic regression)
on raw image pixels and on time-pooled log-mel features, fitted on the training split and scored
on the test split, recorded in the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import re
import tarfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modgap.data import audio as audio_lib
from modgap.data.download import md5sum
from modgap.data.embedded import DIGIT_WORDS
from modgap.data.format import write_prepared
from modgap.data.sources import ESC50_ARCHIVE, FSDD_ARCHIVE, MNIST_FILES, mnist_keys, uses_mnist_train
from modgap.data.split import stratified_split
from modgap.data.text import encode_captions
from modgap.errors import ExplainedError

log = logging.getLogger(__name__)

MODALITIES = ("image", "audio", "text")
_RECORDING = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


class AvMnistFormatError(ExplainedError, ValueError):
    pass


# -- MNIST ---------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not) as a numpy array; truncated files are errors."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise AvMnistFormatError(f"{path}: unreadable or truncated ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise AvMnistFormatError(f"{path}: not an unsigned-byte IDX file")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise AvMnistFormatError(f"{path}: header promises {shape} but holds {data.size} bytes; truncated?")
    return data.reshape(shape)


def load_mnist(config: Mapping, paths: Mapping[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': (...)} for the MNIST splits in use; images (N, 1, 28, 28)."""
    loaded = {}
    for split in ("train", "test") if uses_mnist_train(config) else ("test",):
        images, labels = read_idx(paths[f"{split}_images"]), read_idx(paths[f"{split}_labels"])
        if len(images) != len(labels):
            raise AvMnistFormatError(f"MNIST {split}: {len(images)} images but {len(labels)} labels")
        loaded[split] = (images.reshape(-1, 1, 28, 28).copy(), labels.astype(np.int64))
    return loaded


# -- FSDD ----------------------------------------------------------------------------------


def fsdd_checksums() -> dict[str, str]:
    """MD5 of every recording of the pinned FSDD commit (shipped with the package)."""
    text = resources.files("modgap").joinpath("reference/fsdd_md5sums.txt").read_text()
    return {Path(name).name: digest for digest, name in (line.split() for line in text.splitlines() if line.strip())}


def _recordings(location: Path) -> Iterator[tuple[str, str, bytes]]:
    """(file name, where it lies, WAV bytes) of every recording in an FSDD archive or directory."""
    if location.is_dir():
        folder = location / "recordings" if (location / "recordings").is_dir() else location
        for path in sorted(folder.glob("*.wav")):
            try:
                data = path.read_bytes()
            except OSError as error:  # a folder, a dangling link, no permission
                raise AvMnistFormatError(f"{path}: cannot be read as a recording ({error.strerror})") from None
            yield path.name, str(path), data
        return
    try:
        with tarfile.open(location, "r:*") as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                if member.isfile() and member.name.endswith(".wav") and "/recordings/" in member.name:
                    yield Path(member.name).name, f"{location}:{member.name}", archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise AvMnistFormatError(f"{location}: truncated or corrupt archive ({error})") from error


def read_wav(data: bytes, origin: str) -> tuple[np.ndarray, int]:
    try:
        wave, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:  # its str() names the in-memory buffer, not the file
        raise AvMnistFormatError(f"{origin}: not a readable WAV file ({error.error_string})") from error
    except RuntimeError as error:
        raise AvMnistFormatError(f"{origin}: not a readable WAV file ({error})") from error
    return wave.mean(axis=1), int(rate)


def load_fsdd(
    location: str | Path, features: Mapping, verify: bool = True, accept_extra: bool = False, config_key: str = "fsdd"
) -> dict:
    """Every usable recording as a feature-rate waveform in the feature window, with digit and speaker.

    Recordings at another sample rate are resampled; empty ones are skipped and counted. With ``verify``,
    every recording must be one of the pinned release, byte for byte: a name the release does not have is
    refused (the message names ``<config_key>.extra_recordings``) unless ``accept_extra`` (then they are
    counted and listed as ``extra``).
    """
    location = Path(location)
    checksums = fsdd_checksums() if verify else {}
    window = audio_lib.window_samples(features)
    waves, digits, speakers, names, extra = [], [], [], [], []
    counts = {"resampled": 0, "skipped_empty": 0, "extra": 0}
    for name, origin, data in _recordings(location):
        match = _RECORDING.match(name)
        if not match:
            continue
        if verify:
            expected = checksums.get(name)
            if expected is None and not accept_extra:
                raise AvMnistFormatError(
                    f"{origin}: not a recording of the FSDD release this project pins (no file of that name); "
                    f"remove it, or set {config_key}.extra_recordings: true to train on recordings of your own"
                )
            if expected is None:
                counts["extra"] += 1
                extra.append(name)
            elif hashlib.md5(data).hexdigest() != expected:
                raise AvMnistFormatError(f"{origin}: MD5 does not match the FSDD release ({expected})")
        wave, rate = read_wav(data, origin)
        if not np.isfinite(wave).all():
            raise AvMnistFormatError(f"{origin}: holds NaN or infinite samples, which no recording can")
        if wave.size == 0:
            counts["skipped_empty"] += 1
            continue
        if rate != features["sample_rate"]:
            counts["resampled"] += 1
            wave = audio_lib.resample(wave, rate, features["sample_rate"])
        waves.append(audio_lib.place_in_window(audio_lib.trim_silence(wave), window))
        digits.append(int(match.group(1)))
        speakers.append(match.group(2))
        names.append(name)
    if not waves:
        raise AvMnistFormatError(f"{location}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) found")
    log.info("FSDD: %d recordings from %s (%s)", len(waves), location, counts)
    return {
        "waves": np.stack(waves),
        "digits": np.array(digits),
        "speakers": np.array(speakers),
        "names": np.array(names),
        "counts": counts,
        "extra": extra,
    }


# -- ESC-50 ----------------------------------------------------------------------------------


def load_esc50(location: str | Path, features: Mapping) -> list[np.ndarray]:
    """ESC-50 clips (archive or directory with audio/*.wav) as feature-rate waveforms."""
    location = Path(location)
    clips = []
    if location.is_dir():
        folder = location / "audio" if (location / "audio").is_dir() else location
        items = ((p.name, p.read_bytes()) for p in sorted(folder.glob("*.wav")))
    else:
        try:
            archive = zipfile.ZipFile(location)
        except (zipfile.BadZipFile, OSError) as error:
            raise AvMnistFormatError(f"{location}: truncated or corrupt zip ({error})") from error
        members = sorted(n for n in archive.namelist() if n.endswith(".wav") and "/audio/" in n)
        items = ((n, archive.read(n)) for n in members)
    for name, data in items:
        wave, rate = read_wav(data, f"{location}/{name}")
        if wave.size:
            clips.append(audio_lib.resample(wave, rate, features["sample_rate"]))
    if not clips:
        raise AvMnistFormatError(f"{location}: no ESC-50 clips found")
    return clips


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled to ``snr_db`` relative to the speech's active (non-silent) part."""
    active = speech[np.abs(speech) > 0]
    speech_power = float(np.mean(active**2)) if active.size else 0.0
    noise_power = float(np.mean(noise**2))
    if noise_power == 0.0 or speech_power == 0.0:
        return speech.astype(np.float32)
    return (speech + noise * np.sqrt(speech_power / noise_power / 10.0 ** (snr_db / 10.0))).astype(np.float32)


def esc50_noise(clips: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of a random ESC-50 clip (looped where shorter than ``length``)."""
    clip = clips[rng.integers(len(clips))]
    if clip.size < length:
        clip = np.resize(clip, length)
    start = rng.integers(clip.size - length + 1)
    return clip[start : start + length]


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(spectrum.size)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=length).astype(np.float32)


def babble_noise(waves: np.ndarray, speakers: np.ndarray, speaker: str, voices: int, rng: np.random.Generator):
    """The sum of ``voices`` recordings of other speakers (any digit), as in a crowd of talkers."""
    others = np.flatnonzero(speakers != speaker)
    return waves[rng.choice(others, size=voices, replace=False)].sum(axis=0)


def add_background(
    waves: np.ndarray, speakers: np.ndarray, fsdd: Mapping, noise: Mapping, clips, rng: np.random.Generator
) -> np.ndarray:
    """Every recording of a split with background noise of ``noise['source']`` at a random SNR."""
    noisy = np.empty_like(waves)
    length = waves.shape[1]
    for i, (wave, speaker) in enumerate(zip(waves, speakers)):
        snr = rng.uniform(*noise["snr_db"])
        if noise["source"] == "esc50":
            background = esc50_noise(clips, length, rng)
        elif noise["source"] == "white":
            background = rng.standard_normal(length).astype(np.float32)
        elif noise["source"] == "pink":
            background = pink_noise(length, rng)
        else:  # babble
            background = babble_noise(fsdd["waves"], fsdd["speakers"], speaker, noise["babble_voices"], rng)
        noisy[i] = scale_to_snr(wave, background, snr)
    return noisy


# -- assembly ----------------------------------------------------------------------------------


def remove_image_energy(splits: dict[str, np.ndarray], removed: float, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Project every split's images on the fewest leading principal components of the training images
    that keep at least ``1 - removed`` of their variance; returns the images and what was kept."""
    flat = {s: x.reshape(len(x), -1).astype(np.float32) for s, x in splits.items()}
    pca = PCA(random_state=seed).fit(flat["train"])
    retained = np.cumsum(pca.explained_variance_ratio_)
    components = int(np.searchsorted(retained, 1.0 - removed - 1e-9) + 1)
    pca = PCA(n_components=components, random_state=seed).fit(flat["train"])
    degraded = {
        s: np.clip(np.round(pca.inverse_transform(pca.transform(x))), 0, 255).astype(np.uint8).reshape(splits[s].shape)
        for s, x in flat.items()
    }
    info = {
        "energy_removed": removed,
        "components_kept": components,
        "of_components": int(flat["train"].shape[1]),
        "variance_retained": float(retained[components - 1]),
    }
    log.info(
        "images: %d of %d principal components keep %.1f %% of the variance",
        components,
        info["of_components"],
        100 * info["variance_retained"],
    )
    return degraded, info


def unimodal_probe_accuracy(splits: Mapping[str, Mapping[str, np.ndarray]], seed: int, max_train: int = 10000) -> dict:
    """Test accuracy (percent) of a logistic regression on raw image pixels and on time-pooled log-mel
    features, each fitted on (at most ``max_train`` items of) the training split."""

    def features(arrays: Mapping[str, np.ndarray], modality: str) -> np.ndarray:
        if modality == "image":
            return arrays["image"].reshape(len(arrays["image"]), -1).astype(np.float32) / 255.0
        audio = arrays["audio"]  # (N, mels, frames): mean over 8 time bins keeps the coarse time course
        bins = np.array_split(np.arange(audio.shape[2]), 8)
        return np.concatenate([audio[:, :, b].mean(axis=2) for b in bins], axis=1)

    rng = np.random.default_rng(seed)
    train, test = splits["train"], splits["test"]
    rows = rng.permutation(len(train["labels"]))[:max_train]
    accuracy = {}
    for modality in ("image", "audio"):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        probe.fit(features(train, modality)[rows], train["labels"][rows])
        accuracy[modality] = float(100.0 * probe.score(features(test, modality), test["labels"]))
    log.info(
        "linear probes on raw inputs, test accuracy: image %.1f %%, audio %.1f %%", accuracy["image"], accuracy["audio"]
    )
    return accuracy


def _subsample(indices: np.ndarray, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= len(indices):
        return indices
    return np.sort(rng.choice(indices, size=size, replace=False))


def prepare_avmnist(
    config: Mapping, inputs: Sequence[str | Path], output_dir: str | Path, name: str = "avmnist"
) -> dict:
    rng = np.random.default_rng(config["seed"])
    features = config["audio"]
    downloaded = {Path(p).name: Path(p) for p in inputs}

    mnist_dir = config["mnist"]["extracted"]
    mnist_paths = {
        key: Path(mnist_dir) / MNIST_FILES[key].name if mnist_dir else downloaded[MNIST_FILES[key].name]
        for key in mnist_keys(config)
    }
    if mnist_dir:
        for key, path in mnist_paths.items():
            if not path.is_file():
                raise AvMnistFormatError(f"datasets.{name}.mnist.extracted: {path} not found")
            if md5sum(path) != MNIST_FILES[key].md5:
                raise AvMnistFormatError(f"{path}: MD5 does not match the original ({MNIST_FILES[key].md5})")
    mnist = load_mnist(config, mnist_paths)

    if uses_mnist_train(config):
        train_images, train_labels = mnist["train"]
        parts = stratified_split(train_labels, config["val_fraction"], 0.0, rng)
        pools = {
            "train": (train_images, train_labels, parts["train"], "mnist-train"),
            "val": (train_images, train_labels, parts["val"], "mnist-train"),
            "test": (*mnist["test"], np.arange(len(mnist["test"][1])), "mnist-test"),
        }
    else:
        images, labels = mnist["test"]
        parts = stratified_split(labels, config["val_fraction"], config["test_fraction"], rng)
        pools = {s: (images, labels, parts[s], "mnist-test") for s in ("train", "val", "test")}

    fsdd_location = config["fsdd"]["extracted"] or downloaded[FSDD_ARCHIVE.name]
    fsdd = load_fsdd(
        fsdd_location, features, config["fsdd"]["verify"], config["fsdd"]["extra_recordings"], f"datasets.{name}.fsdd"
    )
    is_test_speaker = np.isin(fsdd["speakers"], config["test_speakers"])
    if not is_test_speaker.any():
        raise AvMnistFormatError(f"datasets.{name}.test_speakers: none of {config['test_speakers']} found in FSDD")
    noise = config["noise"]
    clips = None
    if noise["source"] == "esc50":
        clips = load_esc50(config["esc50"]["extracted"] or downloaded[ESC50_ARCHIVE.name], features)

    selected = {}
    for split, (images, labels, indices, origin) in pools.items():
        indices = _subsample(indices, config["n_samples"][split], rng)
        speakers_ok = is_test_speaker if split == "test" else ~is_test_speaker
        recordings = np.empty(len(indices), dtype=np.int64)
        for digit in range(10):
            rows = np.flatnonzero(labels[indices] == digit)
            candidates = np.flatnonzero(speakers_ok & (fsdd["digits"] == digit))
            if len(rows) and not len(candidates):
                raise AvMnistFormatError(f"AV-MNIST {split}: no FSDD recording of digit {digit} from its speakers")
            recordings[rows] = rng.choice(candidates, size=len(rows)) if len(rows) else []
        selected[split] = (images[indices], labels[indices], recordings, [f"{origin}-{i:05d}" for i in indices])

    split_images = {s: v[0] for s, v in selected.items()}
    degradation = None
    if config["image_energy_removed"] is not None:
        split_images, degradation = remove_image_energy(split_images, config["image_energy_removed"], config["seed"])
    text = encode_captions([[word] for word in DIGIT_WORDS], config["text"]["max_length"])

    splits = {}
    for split, (_, labels, recordings, ids) in selected.items():
        waves = fsdd["waves"][recordings]
        if noise["source"] != "none":
            waves = add_background(waves, fsdd["speakers"][recordings], fsdd, noise, clips, rng)
        splits[split] = {
            "image": split_images[split],
            "audio": audio_lib.log_mel(waves, features),
            "audio_speaker": fsdd["speakers"][recordings],
            "labels": labels,
            "ids": np.array([f"{i}+{fsdd['names'][r]}" for i, r in zip(ids, recordings)]),
            **{key: value[labels] for key, value in text.items()},
            "captions": [[DIGIT_WORDS[label]] for label in labels],
        }
        if features["keep_waveform"]:
            splits[split]["audio_waveform"] = audio_lib.to_int16(waves)
    return write_prepared(
        output_dir,
        splits,
        name=name,
        modalities=MODALITIES,
        class_names=DIGIT_WORDS,
        source={
            "kind": "avmnist",
            "mnist": {k: str(p) for k, p in mnist_paths.items()},
            "mnist_train_split": uses_mnist_train(config),
            "fsdd": str(config["fsdd"]["extracted"] or downloaded[FSDD_ARCHIVE.name]),
            "fsdd_recordings": int(len(fsdd["names"])),
            "fsdd_counts": fsdd["counts"],
            "fsdd_extra": fsdd["extra"],
            "image_degradation": degradation,
            "noise": dict(noise, substitute=noise["source"] in ("white", "pink", "babble")),
            "unimodal_probe_accuracy": unimodal_probe_accuracy(splits, config["seed"]),
        },
        config=config,
    )
