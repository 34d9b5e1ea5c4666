"""Encoders: modality stems, a trunk (transformer or MLP), projection heads, and torchvision/MiniLM towers.

A tower maps one modality to the joint space: stem -> trunk -> pooled -> head ->
L2 normalisation. Stems turn raw inputs into token sequences of the trunk's
width (image patches, audio frames, word pieces), so one trunk can serve every
modality: with ``encoder: shared`` (AlignCLIP, SharedCLIP) all modalities run
through the same trunk and head; with ``encoder: separate`` (the CLIP baselines
and ours) each modality gets its own copy of the same architecture.

``model.trunk: transformer`` runs attention blocks over the tokens (ViT-style);
``mlp`` mean-pools the tokens first and runs residual MLP blocks, which is what a
transformer over a single token amounts to. With a whole-image patch and all
audio frames in one token, the MLP trunk gives the CPU-sized towers of the
embedded default.

Every component (stem, trunk, head, backbone) is initialised from its own seed,
derived from the run's seed and the component's name: two methods trained with
the same seed start from the same weights wherever their architectures agree.

Pretrained towers (``resnet18``, ``resnet50``, ``vit_b_16``, ``minilm``) replace
stem and trunk of one modality and are only available with separate encoders.
So do the towers of a pretrained CLIP-style model (``open_clip``, ``hf_clip``), which keep that model's own
projection instead of a head: fine-tuning starts from the published joint space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modgap.study.method_options import BACKBONE_KINDS, PRETRAINED_TOWER_KINDS, STEM_KINDS
from modgap.training.backbones import (
    ImageInput,
    MiniLMTextTower,
    TorchvisionImageTower,
    masked_mean,
    pretrained_tower,
)


class PatchStem(nn.Module):
    """Image -> non-overlapping patch tokens with learned positions.

    Patches are cut by a reshape and projected by one matrix product (a strided
    convolution computes the same, several times slower on the CPU).
    """

    def __init__(self, image_shape: Sequence[int], width: int, patch_size: int, image_size: int | None = None):
        super().__init__()
        channels, height, _ = image_shape
        size = image_size or height
        if size % patch_size:
            raise ValueError(f"image size {size} is not a multiple of patch_size {patch_size}")
        self.input = ImageInput(channels, image_size)
        self.patch_size = patch_size
        self.project = nn.Linear(channels * patch_size**2, width)
        self.position = nn.Parameter(torch.randn(1, (size // patch_size) ** 2, width) * 0.02)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self.input(images)
        batch, channels, height, width = x.shape
        p = self.patch_size
        patches = x.reshape(batch, channels, height // p, p, width // p, p).permute(0, 2, 4, 1, 3, 5)
        tokens = self.project(patches.reshape(batch, (height // p) * (width // p), channels * p * p))
        return tokens + self.position, None


def pool_mean(frames: Tensor, size: int) -> Tensor:
    """Means of ``size`` consecutive entries along the last axis: the strided slices added in order, then
    divided. Twice as fast on the CPU as ``mean`` over a trailing axis of a few entries, which adds in the
    same order for the default's pool of 4 (so its results are those of ``mean``, bit for bit; tested)."""
    total = frames[..., 0::size]
    for offset in range(1, size):
        total = total + frames[..., offset::size]
    return total / size


class FrameStem(nn.Module):
    """Log-mel (B, n_mels, frames) -> tokens of ``frames_per_token`` frames each, with learned positions.

    ``pool_frames`` first averages that many consecutive frames (a cheaper token
    for the MLP trunk); frames that do not fill a last token are dropped. Each
    token's features are layer-normalised before the projection, since log-mel
    levels differ by orders of magnitude between bands and recordings.
    """

    def __init__(self, audio_shape: Sequence[int], width: int, frames_per_token: int, pool_frames: int = 1):
        super().__init__()
        n_mels, frames = audio_shape
        self.pool_frames = pool_frames
        self.frames_per_token = frames_per_token
        self.tokens = frames // pool_frames // frames_per_token
        if self.tokens == 0:
            raise ValueError(
                f"model.towers.audio: {frames} frames hold no token of {frames_per_token} x {pool_frames} frames"
            )
        features = n_mels * frames_per_token
        self.norm = nn.LayerNorm(features)
        self.project = nn.Linear(features, width)
        self.position = nn.Parameter(torch.randn(1, self.tokens, width) * 0.02)

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        batch, n_mels, _ = audio.shape
        frames = audio.float()[:, :, : self.tokens * self.frames_per_token * self.pool_frames]
        if self.pool_frames > 1:
            frames = pool_mean(frames, self.pool_frames)
        chunks = frames.reshape(batch, n_mels, self.tokens, self.frames_per_token).permute(0, 2, 1, 3)
        tokens = self.project(self.norm(chunks.reshape(batch, self.tokens, -1)))
        return tokens + self.position, None


class TokenStem(nn.Module):
    """Word-piece ids (B, L), 0 = padding -> embeddings with learned positions and a padding mask.

    The embedding table covers only ``vocabulary`` (the word pieces of the training
    captions) plus one row for any other piece: a 30k-row table would cost more
    optimiser time than the whole text tower on small data.

    The stem keeps every column it is given, so that its shapes never depend on the data (which
    ``torch.func.vmap`` over seeds needs); batches arrive without their all-padding columns
    (modgap.training.inputs.without_padding_columns).
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
        rows = self.row_of[tokens.clamp_max(len(self.row_of) - 1)]
        rows = torch.where(tokens < len(self.row_of), rows, torch.ones_like(rows))
        return self.embed(rows) + self.position[:, : tokens.shape[-1]], tokens != 0


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


class TransformerTrunk(nn.Module):
    """Transformer over stem tokens, mean-pooled over the valid tokens."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: Tensor, valid: Tensor | None) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens, valid)
        return masked_mean(self.norm(tokens), valid)


class MLPTrunk(nn.Module):
    """Mean of the valid stem tokens, then pre-norm residual MLP blocks (a transformer without attention)."""

    def __init__(self, width: int, depth: int, mlp_ratio: float, dropout: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width)
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: Tensor, valid: Tensor | None) -> Tensor:
        x = masked_mean(tokens, valid)
        for block in self.blocks:
            x = x + block(x)
        return self.norm(x)


TRUNKS = ("transformer", "mlp")


def make_trunk(model: Mapping) -> nn.Module:
    if model["trunk"] == "mlp":
        return MLPTrunk(model["width"], model["depth"], model["mlp_ratio"], model["dropout"])
    return TransformerTrunk(model["width"], model["depth"], model["heads"], model["mlp_ratio"], model["dropout"])


def _head(features: int, embed_dim: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(features), nn.Linear(features, embed_dim, bias=False))


def component_seed(seed: int, name: str) -> int:
    """A seed for one named component of a run's encoder (stable across processes and platforms)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()[:8], "little") >> 1


def seeded(seed: int | None, name: str, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with torch's generator seeded for this component, leaving the global state as it was."""
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed(seed, name))
        return build()


class MultimodalEncoder(nn.Module):
    """One embedding function per modality: a stem (or backbone) per modality, then trunk and head,
    both shared by every modality (``self.trunk``, ``self.head``) or one per modality (``self.trunks``,
    ``self.heads``)."""

    def __init__(
        self,
        stems: Mapping[str, nn.Module],
        backbones: Mapping[str, nn.Module],
        trunks: nn.Module | Mapping[str, nn.Module],
        heads: nn.Module | Mapping[str, nn.Module],
    ):
        super().__init__()
        self.shared = isinstance(trunks, nn.Module)
        self.stems = nn.ModuleDict(stems)
        self.backbones = nn.ModuleDict(backbones)
        if self.shared:
            self.trunk, self.head = trunks, heads
        else:
            self.trunks, self.heads = nn.ModuleDict(trunks), nn.ModuleDict(heads)

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


def _stem_or_backbone(modality: str, tower: Mapping, input_shape, width: int, shared: bool, vocabulary, loaded: dict):
    """(is_backbone, module) for one modality's tower configuration."""
    kind = tower["kind"]
    expected = STEM_KINDS[modality]
    if kind in PRETRAINED_TOWER_KINDS:
        if modality not in PRETRAINED_TOWER_KINDS[kind] or shared:
            raise ValueError(
                f"model.towers.{modality}.kind: {kind} takes {' or '.join(PRETRAINED_TOWER_KINDS[kind])} "
                "with separate encoders"
            )
        return True, pretrained_tower(modality, tower, loaded)
    if kind in BACKBONE_KINDS:
        if BACKBONE_KINDS[kind] != modality:
            raise ValueError(f"model.towers.{modality}.kind: {kind} is a {BACKBONE_KINDS[kind]} tower")
        if shared:
            raise ValueError(
                f"model.towers.{modality}.kind: {kind} cannot share a trunk (encoder: shared needs "
                f"stem towers: {', '.join(STEM_KINDS.values())})"
            )
        if kind == "minilm":
            backbone = MiniLMTextTower()
        else:
            backbone = TorchvisionImageTower(kind, input_shape, tower.get("image_size"), tower.get("pretrained", False))
        if tower.get("freeze", False):
            backbone.requires_grad_(False)
        return True, backbone
    if kind != expected:
        raise ValueError(f"model.towers.{modality}.kind: {modality} needs a '{expected}' stem, got '{kind}'")
    if modality == "image":
        return False, PatchStem(input_shape, width, tower.get("patch_size", 7), tower.get("image_size"))
    if modality == "audio":
        return False, FrameStem(input_shape, width, tower.get("frames_per_token", 8), tower.get("pool_frames", 1))
    return False, TokenStem(vocabulary, input_shape[-1], width)


def build_encoder(
    modalities: Sequence[str],
    input_shapes: Mapping[str, Sequence[int]],
    model: Mapping,
    shared: bool,
    text_vocabulary: Sequence[int] = (),
    seed: int | None = None,
) -> MultimodalEncoder:
    """The encoder of a run.

    ``input_shapes`` gives each modality's per-sample array shape; ``text_vocabulary``
    the word-piece ids a token stem learns embeddings for; ``seed`` seeds every
    component by its name (None: torch's global generator, as it stands).
    """
    model = {"trunk": "transformer", **model}
    stems: dict[str, nn.Module] = {}
    backbones: dict[str, nn.Module] = {}
    loaded: dict[str, nn.Module] = {}  # pretrained models, each loaded once for all its towers
    for modality in modalities:
        is_backbone, module = seeded(
            seed,
            f"stem.{modality}",
            lambda: _stem_or_backbone(
                modality,
                model["towers"][modality],
                input_shapes[modality],
                model["width"],
                shared,
                text_vocabulary,
                loaded,
            ),
        )
        (backbones if is_backbone else stems)[modality] = module
    width, embed_dim = model["width"], model["embed_dim"]
    if shared:
        trunks = seeded(seed, "trunk", lambda: make_trunk(model))
        heads = seeded(seed, "head", lambda: _head(width, embed_dim))
    else:
        trunks = {m: seeded(seed, f"trunk.{m}", lambda: make_trunk(model)) for m in stems}
        heads = {m: seeded(seed, f"head.{m}", lambda: _head(width, embed_dim)) for m in stems} | {
            m: nn.Identity()
            if getattr(tower, "joint_space", False)
            else seeded(seed, f"head.{m}", lambda: _head(tower.features, embed_dim))
            for m, tower in backbones.items()
        }
    return MultimodalEncoder(stems, backbones, trunks, heads)
