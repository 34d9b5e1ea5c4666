"""eSpeak NG through ctypes: every digit in every default voice, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.data import audio
from modgap.data.embedded import DIGIT_WORDS
from modgap.data.speech import EspeakSynthesizer, SpeechSynthesisError
from modgap.study.config import load_config


@pytest.fixture(scope="module")
def synthesizer():
    with EspeakSynthesizer() as synth:
        yield synth


def default_voices(repo):
    speech = load_config(repo / "config.yaml")["datasets"]["embedded"]["speech"]
    return speech["train_voices"] + speech["test_voices"]


def test_every_digit_in_every_default_voice_is_audible_speech(repo, synthesizer):
    for voice in default_voices(repo):
        for word in DIGIT_WORDS:
            wave = audio.to_float(synthesizer.synthesize(word, voice, rate_wpm=170, pitch=50))
            spoken = audio.trim_silence(wave)
            seconds = spoken.size / synthesizer.sample_rate
            assert 0.15 < seconds < 1.0, (voice, word, seconds)
            rms = float(np.sqrt(np.mean(spoken**2)))
            assert rms > 0.01 and np.abs(spoken).max() > 0.1, (voice, word, rms)


def test_rate_changes_duration(synthesizer):
    slow = audio.trim_silence(audio.to_float(synthesizer.synthesize("seven", "en+m3", rate_wpm=110)))
    fast = audio.trim_silence(audio.to_float(synthesizer.synthesize("seven", "en+m3", rate_wpm=260)))
    assert slow.size > 1.4 * fast.size


def test_voices_differ(synthesizer):
    a = synthesizer.synthesize("three", "en+m1")
    b = synthesizer.synthesize("three", "en+f3")
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_same_request_sequence_gives_same_samples():
    requests = [("four", "en+m2", 150, 40), ("nine", "en+f1", 200, 70), ("four", "en+m2", 150, 40)]
    outputs = []
    for _ in range(2):
        with EspeakSynthesizer() as synth:
            outputs.append([synth.synthesize(*r) for r in requests])
    for first, second in zip(*outputs):
        np.testing.assert_array_equal(first, second)


_SEQUENCE_HASH = """
import hashlib
from modgap.data.speech import EspeakSynthesizer
with EspeakSynthesizer() as synth:
    waves = [synth.synthesize(w, v, r, p) for w, v, r, p in {requests!r}]
print(hashlib.sha256(b"".join(w.tobytes() for w in waves)).hexdigest())
"""


def test_same_requests_give_same_samples_in_every_process():
    """eSpeak seeds its generator from the clock unless told otherwise: check across processes."""
    import subprocess
    import sys

    words = [w for w in DIGIT_WORDS for _ in range(3)]
    requests = [(w, ["en+m1", "en+f2", "en-us+klatt"][i % 3], 130 + 7 * i, 25 + i) for i, w in enumerate(words)]
    code = _SEQUENCE_HASH.format(requests=requests)
    hashes = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(3)
    }
    assert len(hashes) == 1


def test_unknown_voice_variant_is_an_error(synthesizer):
    with pytest.raises(SpeechSynthesisError, match="no voice variant 'robot9000'"):
        synthesizer.synthesize("one", "en+robot9000")
    with pytest.raises(SpeechSynthesisError, match="no voice 'xx'"):
        synthesizer.synthesize("one", "xx")


def test_noise_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    clean = np.sin(np.linspace(0, 400, 8000)).astype(np.float32)
    noisy = audio.add_noise(clean, snr_db=10.0, rng=rng)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)


def test_place_in_window_pads_and_cuts():
    wave = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(audio.place_in_window(wave, 8, 2), [0, 0, 1, 2, 3, 4, 5, 0])
    np.testing.assert_array_equal(audio.place_in_window(wave, 4, 2), [0, 0, 1, 2])


def test_resample_keeps_duration_and_pitch():
    t = np.arange(22050) / 22050
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    down = audio.resample(tone, 22050, 8000)
    assert down.size == 8000
    spectrum = np.abs(np.fft.rfft(down))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s signal: bin = Hz
