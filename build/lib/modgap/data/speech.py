"""Speech synthesis with eSpeak NG, driven through ctypes on the library shipped in ``espeakng-loader``.

Two things make eSpeak NG output vary between runs: a random generator seeded
from the clock (re-seeded here before every utterance) and synthesis state kept
in static variables, through which an utterance depends a little on the ones
before it. Each ``EspeakSynthesizer`` therefore loads its own private copy of
the shared library: a fixed sequence of requests on a fresh synthesizer gives
the same samples in every process, whatever else the process does.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path

import espeakng_loader
import numpy as np

from modgap.errors import ExplainedError

# espeak_AUDIO_OUTPUT and espeak_PARAMETER values from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_CHARS_UTF8 = 1
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechSynthesisError(ExplainedError, RuntimeError):
    pass


def available_variants() -> list[str]:
    """Voice variants (the part after '+' in 'en+m3') shipped with the bundled eSpeak NG data."""
    return sorted(p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir())


class EspeakSynthesizer:
    """Text to 16-bit mono speech at the library's native rate (22,050 Hz)."""

    def __init__(self) -> None:
        self._tmpdir = tempfile.mkdtemp(prefix="modgap-espeak-")
        private_copy = os.path.join(self._tmpdir, "libespeak-ng-private.so")
        shutil.copyfile(espeakng_loader.get_library_path(), private_copy)
        self._lib = ctypes.CDLL(private_copy, mode=os.RTLD_LOCAL)
        self._declare_signatures()
        data_path = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if rate <= 0:
            raise SpeechSynthesisError(f"espeak_Initialize failed (returned {rate}) with data at {data_path!r}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # Keep a reference: the C library calls it after this constructor returns.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _declare_signatures(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(
        self, text: str, voice: str = "en", rate_wpm: int = 175, pitch: int = 50, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text`` with an eSpeak voice ('language' or 'language+variant'); int16 samples.

        ``seed`` drives eSpeak's own small random variations (e.g. in its voice sources).
        """
        if voice != self._voice:
            _, _, variant = voice.partition("+")
            # eSpeak silently falls back to the default voice for an unknown variant
            if variant and variant not in available_variants():
                raise SpeechSynthesisError(
                    f"eSpeak NG has no voice variant {variant!r} (in {voice!r}); "
                    f"available: {', '.join(available_variants())}"
                )
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise SpeechSynthesisError(f"eSpeak NG has no voice {voice!r} (unknown language?)")
            self._voice = voice
        self._lib.espeak_SetParameter(_PARAMETER_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(_PARAMETER_PITCH, int(pitch), 0)
        self._lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks.clear()
        encoded = text.encode() + b"\0"
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, 0, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if status != _EE_OK or not self._chunks:
            raise SpeechSynthesisError(f"eSpeak NG produced no audio for {text!r} (voice {voice}, status {status})")
        return np.concatenate(self._chunks)

    def close(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            self._lib = None
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> EspeakSynthesizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
