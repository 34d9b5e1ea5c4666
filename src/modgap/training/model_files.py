"""A trained model's file: written atomically, read weights-only (no file can run code), rebuilt as the
encoder it was trained as."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from modgap.training.models import MultimodalEncoder, build_encoder

# Version of the model files written by modgap.training.trainer (bumped when the architecture changes).
MODEL_FORMAT = 3  # 3: plain tensors and containers only, loaded weights-only


def load_weights_only(path, what: str, device: torch.device | str = "cpu", advice: str | None = None):
    """``torch.load`` that can never run code: tensors and plain containers only (weights_only).

    A file holding anything else (a pickled object, an older format, a planted payload) is refused
    as a damaged ``what`` naming the file, with ``advice`` or else the command that rebuilds it.
    """
    import pickle
    import re

    from modgap.errors import CorruptIntermediateError, corrupt

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch.load raises many types on truncated, foreign or unsafe files
        refused = re.search(r"GLOBAL (\S+)", str(error)) if isinstance(error, pickle.UnpicklingError) else None
        if refused:
            detail = f"UnpicklingError: holds {refused.group(1)}, not only tensors and plain data; not loaded"
        else:
            detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if advice is None:
            raise corrupt(path, what, detail) from None
        raise CorruptIntermediateError(f"{path}: damaged {what} ({detail}); {advice}", path, what, detail) from None


def save_trained(path, payload: Mapping) -> None:
    """Write a trained run (``format``, ``run``, ``seed``, ``input_shapes``, ``text_vocabulary``, weights) atomically."""
    from modgap.io import save_torch

    save_torch(path, {"format": MODEL_FORMAT, **payload})


def load_trained(model_path, device: torch.device | str = "cpu") -> tuple[MultimodalEncoder, dict]:
    """The encoder written by ``save_trained`` and the payload it came with (run configuration, seed)."""
    payload = load_weights_only(model_path, "model file", device)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{model_path}: model format {payload.get('format')}, expected {MODEL_FORMAT}; train again")
    run = payload["run"]
    model = build_encoder(
        run["modalities"],
        payload["input_shapes"],
        run["model"],
        run["method"]["encoder"] == "shared",
        payload["text_vocabulary"],
    )
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload
