"""Encoders: stems and trunk shapes, pretrained-tower options, and configuration errors."""

from __future__ import annotations

import pytest
import torch

from modgap.training.models import TokenStem, build_encoder, pool_mean

MODEL = {"embed_dim": 8, "width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "dropout": 0.0}
SHAPES = {"image": [1, 28, 28], "audio": [40, 101], "text": [16]}


def towers(**kinds):
    default = {"image": {"kind": "patch", "patch_size": 7}, "audio": {"kind": "frames", "frames_per_token": 8},
               "text": {"kind": "tokens"}}  # fmt: skip
    return {**MODEL, "towers": {**default, **kinds}}


def inputs(batch=3):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.zeros(batch, 16, dtype=torch.long)
    tokens[:, :4] = torch.tensor([101, 1996, 2698, 102])
    return {
        "image": torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8, generator=generator),
        "audio": torch.randn(batch, 40, 101, generator=generator),
        "text": tokens,
    }


@pytest.mark.parametrize("shared", [False, True])
def test_every_modality_maps_to_unit_vectors(shared):
    model = build_encoder(["image", "audio", "text"], SHAPES, towers(), shared, text_vocabulary=[101, 102, 1996, 2698])
    out = model(inputs())
    for z in out.values():
        assert z.shape == (3, 8)
        torch.testing.assert_close(z.norm(dim=1), torch.ones(3))


def test_padding_does_not_change_text_embeddings():
    model = build_encoder(["text"], SHAPES, towers(), False, text_vocabulary=[101, 102, 1996, 2698]).eval()
    short = inputs()["text"][:, :6]
    torch.testing.assert_close(model.encode("text", short), model.encode("text", inputs()["text"]))


def test_unseen_word_pieces_share_one_row():
    stem = TokenStem([101, 102, 2000], max_length=8, width=4)
    rows = stem.row_of[torch.tensor([0, 101, 102, 2000, 5])]
    assert rows.tolist() == [0, 2, 3, 4, 1]
    tokens, valid = stem(torch.tensor([[101, 30000, 102, 0]]))  # beyond the table: the unseen row too
    assert tokens.shape == (1, 4, 4) and valid.tolist() == [[True, True, True, False]]


def test_pooled_audio_frames_are_their_mean_bit_for_bit():
    """The default's pool of 4 frames adds in the order torch's mean does, so pooling faster moved no result;
    on values of very different sizes, where another order of additions shows in the last bits."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(64, 40, 96, generator=generator) * torch.randn(64, 40, 96, generator=generator).mul(3).exp()
    mean = frames.reshape(64, 40, 24, 4).mean(dim=-1)
    assert torch.equal(pool_mean(frames, 4), mean)
    halves = (frames[..., 0::4] + frames[..., 1::4]) + (frames[..., 2::4] + frames[..., 3::4])
    assert not torch.equal(halves / 4, mean)  # the test would see another order


def test_torchvision_backbone_tower():
    model = build_encoder(["image", "text"], {"image": [3, 32, 32], "text": [16]},
                          towers(image={"kind": "resnet18", "pretrained": False}), False, [101, 102])  # fmt: skip
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert model.encode("image", images).shape == (2, 8)


def test_minilm_text_tower_loads_the_bundled_weights():
    model = build_encoder(["image", "text"], SHAPES, towers(text={"kind": "minilm", "freeze": True}), False)
    frozen = [p.requires_grad for p in model.backbones["text"].parameters()]
    assert frozen and not any(frozen)
    assert model.encode("text", inputs()["text"]).shape == (3, 8)


@pytest.mark.parametrize(
    ("kinds", "shared", "message"),
    [
        ({"image": {"kind": "resnet18"}}, True, "cannot share a trunk"),
        ({"audio": {"kind": "resnet18"}}, False, "resnet18 is a image tower"),
        ({"image": {"kind": "frames"}}, False, "needs a 'patch' stem"),
        ({"image": {"kind": "patch", "patch_size": 5}}, False, "not a multiple of patch_size 5"),
    ],
)
def test_impossible_towers_are_rejected(kinds, shared, message):
    with pytest.raises(ValueError, match=message):
        build_encoder(["image", "audio", "text"], SHAPES, towers(**kinds), shared, [101])
