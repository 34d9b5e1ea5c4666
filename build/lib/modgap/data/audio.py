"""Waveform handling and log-mel features shared by every audio data set.

The embedded set's synthetic speech and AV-MNIST's recorded digits go through
the same functions with the same settings, so one audio tower serves both.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import torch
import torchaudio

_LOG_FLOOR = 1e-6


def to_float(wave: np.ndarray) -> np.ndarray:
    """int16 (or any integer) PCM to float32 in [-1, 1]."""
    if np.issubdtype(wave.dtype, np.integer):
        return wave.astype(np.float32) / float(np.iinfo(wave.dtype).max + 1)
    return wave.astype(np.float32)


def to_int16(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)


@functools.lru_cache(maxsize=8)
def _resampler(orig_rate: int, new_rate: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig_rate, new_rate)  # builds the sinc kernel once


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc) of a float waveform."""
    if orig_rate == new_rate:
        return wave.astype(np.float32)
    with torch.no_grad():
        return _resampler(orig_rate, new_rate)(torch.from_numpy(wave.astype(np.float32))).numpy()


def trim_silence(wave: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``threshold`` times the peak."""
    loud = np.flatnonzero(np.abs(wave) > threshold * max(np.abs(wave).max(), 1e-12))
    if loud.size == 0:
        return wave[:0]
    return wave[loud[0] : loud[-1] + 1]


def place_in_window(wave: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Put ``wave`` at ``offset`` in a zero window of ``length`` samples, cutting what overflows."""
    window = np.zeros(length, dtype=np.float32)
    offset = max(0, min(offset, length))
    piece = wave[: length - offset]
    window[offset : offset + piece.size] = piece
    return window


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at a signal-to-noise ratio measured on the non-silent part."""
    active = wave[np.abs(wave) > 0]
    power = float(np.mean(active**2)) if active.size else 0.0
    noise = rng.standard_normal(wave.shape).astype(np.float32) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (wave + noise).astype(np.float32)


def window_samples(features: Mapping) -> int:
    return int(round(features["duration_s"] * features["sample_rate"]))


def log_mel(waves: np.ndarray, features: Mapping) -> np.ndarray:
    """Log-mel spectrogram of a batch of float waveforms (N, samples) -> float32 (N, n_mels, frames)."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=features["sample_rate"],
        n_fft=features["n_fft"],
        hop_length=features["hop_length"],
        n_mels=features["n_mels"],
    )
    with torch.no_grad():
        mel = transform(torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)))
    return torch.log(mel + _LOG_FLOOR).numpy().astype(np.float32)
