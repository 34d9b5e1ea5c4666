"""Pretrained CLIP-style models of open_clip and Hugging Face transformers (named by modgap.study.model_specs):
loading, and encoding this project's prepared inputs (uint8 images, caption strings, float waveforms) into
the model's joint space. Used by ``modgap embed`` (modgap.embeddings.from_models) and by the pretrained tower kinds
of training (modgap.training.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from modgap.study.model_specs import (
    HF_MODEL_TYPES,
    OPEN_CLIP_MODALITIES,
    ModelError,
    ModelSpec,
    hf_config,
    model_modalities,
    open_clip_weights,
    parse_model_spec,
    unreachable,
)


def load_model(spec: ModelSpec | str, device="cpu") -> "PretrainedModel":
    """The model a spec names, as a ``PretrainedModel`` on ``device`` in eval mode."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    model_modalities(spec)  # one line for what cannot be loaded, before any weights are read
    kind = (
        OpenClipModel
        if spec.library == "open_clip"
        else {"clip": HFClipModel, "clap": HFClapModel}[hf_config(spec)["model_type"]]
    )
    try:
        model = kind(spec)
    except ModelError:
        raise
    except Exception as error:  # the libraries raise many types on truncated or damaged files
        first = str(error).splitlines()[0] if str(error) else ""
        raise ModelError(f"model {spec}: cannot be loaded ({type(error).__name__}: {first})") from None
    return model.to(device).eval()


def model_pixels(images, size: int, mean: Sequence[float], std: Sequence[float]):
    """uint8 images (B, C, H, W) as a CLIP model takes them: RGB (grey repeated), the shorter side resized
    to ``size`` (bicubic, antialiased), the centre ``size`` x ``size`` crop, standardised per channel."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    height, width = x.shape[-2:]
    if min(height, width) != size:
        scale = size / min(height, width)
        shape = (max(size, round(height * scale)), max(size, round(width * scale)))
        x = F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


class PretrainedModel(nn.Module):
    """One pretrained model's encoders into its joint space. Subclasses set ``modalities``, ``embed_dim`` and,
    for images, ``image_size``, ``mean``, ``std``, and implement the ``*_features`` they support: projected,
    not yet normalised features (``encode`` normalises)."""

    modalities: tuple[str, ...] = ()
    embed_dim: int
    image_size: int
    mean: Sequence[float]
    std: Sequence[float]

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec

    @property
    def device(self):
        return next(self.parameters()).device

    def image_features(self, images):
        """uint8 images (B, C, H, W) -> (B, embed_dim)."""
        raise NotImplementedError

    def text_features(self, texts: Sequence[str]):
        """Strings -> (B, embed_dim)."""
        raise NotImplementedError

    def audio_features(self, waveforms, sample_rate: int):
        """Float waveforms (B, samples) in [-1, 1] at ``sample_rate`` -> (B, embed_dim)."""
        raise NotImplementedError

    def encode(self, modality: str, inputs, sample_rate: int | None = None):
        """Unit-norm float32 embeddings of one modality's inputs."""
        if modality == "image":
            features = self.image_features(inputs)
        elif modality == "text":
            features = self.text_features(inputs)
        else:
            features = self.audio_features(inputs, sample_rate)
        return F.normalize(features.float(), dim=-1)


def _quiet_transformers():
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its loading bars would reach the terminal, not the job's log
    transformers_logging.set_verbosity_error()


class OpenClipModel(PretrainedModel):
    modalities = OPEN_CLIP_MODALITIES

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        import open_clip

        if spec.local:  # open_clip reads the folder's config and weights (safetensors, or torch weights-only)
            self.model = open_clip.create_model(f"local-dir:{spec.name}", weights_only=True)
            self.tokenizer = open_clip.get_tokenizer(f"local-dir:{spec.name}")
        else:
            weights = open_clip_weights(spec)
            self.model = open_clip.create_model(spec.name, pretrained=weights, weights_only=True)
            self.tokenizer = open_clip.get_tokenizer(spec.name)
        preprocess = open_clip.get_model_preprocess_cfg(self.model)
        size = preprocess["size"]
        self.image_size = size if isinstance(size, int) else size[0]
        self.mean, self.std = tuple(preprocess["mean"]), tuple(preprocess["std"])
        self.embed_dim = int(
            self.model.text_projection.shape[-1]
            if hasattr(self.model, "text_projection")
            else self.model.visual.output_dim
        )

    def image_features(self, images):
        return self.model.encode_image(model_pixels(images.to(self.device), self.image_size, self.mean, self.std))

    def text_features(self, texts):
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device))


def _hf_load(spec: ModelSpec, load):
    """``load(name)`` for a Hugging Face model (from_pretrained), its failures as one line."""
    _quiet_transformers()
    try:
        return load(spec.name)
    except (OSError, ValueError) as error:  # transformers reports a missing file or an offline miss as these
        raise unreachable(spec, None if spec.local else spec.name, error) from None


class _HFTextModel(PretrainedModel):
    """A Hugging Face model whose text tower takes the tokenizer's ids and mask (CLIP, CLAP)."""

    def text_features(self, texts):
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output


class HFClipModel(_HFTextModel):
    modalities = HF_MODEL_TYPES["clip"]

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        self.model = _hf_load(spec, CLIPModel.from_pretrained)
        self.tokenizer = _hf_load(spec, AutoTokenizer.from_pretrained)
        processor = _hf_load(spec, CLIPImageProcessor.from_pretrained)
        crop = processor.crop_size
        self.image_size = int(crop["height"] if isinstance(crop, dict) else crop.height)
        self.mean, self.std = tuple(processor.image_mean), tuple(processor.image_std)
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.embed_dim = self.model.config.projection_dim

    def image_features(self, images):
        pixels = model_pixels(images.to(self.device), self.image_size, self.mean, self.std)
        return self.model.get_image_features(pixel_values=pixels).pooler_output


class HFClapModel(_HFTextModel):
    modalities = HF_MODEL_TYPES["clap"]

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        self.model = _hf_load(spec, ClapModel.from_pretrained)
        self.tokenizer = _hf_load(spec, AutoTokenizer.from_pretrained)
        self.features = _hf_load(spec, ClapFeatureExtractor.from_pretrained)
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.embed_dim = self.model.config.projection_dim

    def audio_features(self, waveforms, sample_rate):
        import torchaudio

        rate = self.features.sampling_rate
        waves = waveforms.float().cpu()
        if sample_rate != rate:
            waves = torchaudio.functional.resample(waves, sample_rate, rate)
        inputs = self.features(list(waves.numpy()), sampling_rate=rate, return_tensors="pt").to(self.device)
        return self.model.get_audio_features(**inputs).pooler_output
