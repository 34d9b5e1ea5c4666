"""Loss terms against hand-computed values and brute-force loops (docs/workflow.md, "Methods")."""

from __future__ import annotations

import inspect
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from modgap.study.method_options import LOSS_TERM_OPTIONS, schedule_multiplier
from modgap.training.losses import (
    LOSS_TERMS,
    LossInputs,
    MethodLoss,
    Temperature,
    align_true_pairs,
    centroid_uniformity,
    clip_pair_loss,
    infonce,
    intra_modality_separation,
)


def unit(*rows) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def random_embeddings(modalities=("image", "audio", "text"), n=6, d=5, seed=0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {m: F.normalize(torch.randn(n, d, generator=generator, dtype=torch.float64), dim=-1) for m in modalities}


def brute_force_clip(z_a, z_b, scale):
    n = len(z_a)
    total = 0.0
    for i in range(n):
        row = [scale * float(z_a[i] @ z_b[j]) for j in range(n)]
        col = [scale * float(z_b[i] @ z_a[j]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(v) for v in row))
        total += -col[i] + math.log(sum(math.exp(v) for v in col))
    return total / (2 * n)


def test_clip_pair_loss_hand_computed():
    z = unit([1, 0], [0, 1])
    # logits = identity: every row is CE([1, 0], 0) = log(1 + e^-1)
    assert float(clip_pair_loss(z, z, torch.tensor(1.0))) == pytest.approx(math.log(1 + math.exp(-1)))


def test_clip_pair_loss_matches_brute_force_and_is_symmetric():
    z = random_embeddings(("a", "b"), n=7)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    value = float(clip_pair_loss(z["a"], z["b"], scale))
    assert value == pytest.approx(brute_force_clip(z["a"], z["b"], float(scale)), rel=1e-10)
    assert value == pytest.approx(float(clip_pair_loss(z["b"], z["a"], scale)), rel=1e-12)


def test_infonce_averages_all_pairs_for_three_modalities():
    z = random_embeddings()
    scale = torch.tensor(10.0, dtype=torch.float64)
    pairs = list(itertools.combinations(z, 2))
    expected = sum(brute_force_clip(z[a], z[b], 10.0) for a, b in pairs) / 3
    assert float(infonce(LossInputs(z, scale))) == pytest.approx(expected, rel=1e-10)
    anchor_only = (brute_force_clip(z["text"], z["image"], 10.0) + brute_force_clip(z["text"], z["audio"], 10.0)) / 2
    assert float(infonce(LossInputs(z, scale), pairs="anchor", anchor="text")) == pytest.approx(anchor_only, rel=1e-10)


def test_align_true_pairs_hand_computed():
    z = {"image": unit([1, 0], [0, 1]), "text": unit([0, 1], [0, 1])}
    # pair 0: ||(1,-1)||^2 = 2, pair 1: 0 -> mean 1
    assert float(align_true_pairs(LossInputs(z, torch.tensor(1.0)), anchor="text")) == pytest.approx(1.0)


def test_align_true_pairs_three_modalities_averages_over_non_anchor():
    z = {"image": unit([1, 0]), "audio": unit([-1, 0]), "text": unit([0, 1])}
    # image-text: 2, audio-text: 2 -> 1/(M-1) * (2 + 2) = 2; with image as anchor: text 2, audio 4 -> 3
    inputs = LossInputs(z, torch.tensor(1.0))
    assert float(align_true_pairs(inputs, anchor="text")) == pytest.approx(2.0)
    assert float(align_true_pairs(inputs, anchor="image")) == pytest.approx(3.0)


def test_centroid_uniformity_hand_computed():
    # two samples, centroids (1,0) and (0,1) after re-normalisation: ||mu_0 - mu_1||^2 = 2
    z = {"image": unit([1, 0], [0, 1]), "text": unit([1, 0], [0, 1])}
    assert float(centroid_uniformity(LossInputs(z, torch.tensor(1.0)), t=2.0)) == pytest.approx(-4.0)


def test_centroid_uniformity_renormalises_and_matches_brute_force():
    z = random_embeddings(n=5)
    t = 2.0
    mu = [F.normalize(sum(z[m][i] for m in z) / 3, dim=0) for i in range(5)]
    terms = [math.exp(-t * float((mu[i] - mu[j]).pow(2).sum())) for i in range(5) for j in range(i + 1, 5)]
    expected = math.log(sum(terms) / len(terms))
    assert float(centroid_uniformity(LossInputs(z, torch.tensor(1.0)), t=t)) == pytest.approx(expected, rel=1e-10)


def test_centroid_uniformity_gradient_is_finite_for_identical_centroids():
    z = {"image": unit([1, 0], [1, 0]).requires_grad_(), "text": unit([1, 0], [1, 0])}
    centroid_uniformity(LossInputs(z, torch.tensor(1.0))).backward()
    assert torch.isfinite(z["image"].grad).all()


def brute_force_imsep(z, s, scale, text="text"):
    n = len(z[text])
    others = [m for m in z if m != text]
    total = 0.0
    for m in others:
        for own, partner in ((z[m], z[text]), (z[text], z[m])):
            for i in range(n):
                logits = [
                    scale * (float(own[i] @ partner[i]) if j == i else (1 - float(s[i, j])) * float(own[i] @ own[j]))
                    for j in range(n)
                ]
                total += (-logits[i] + math.log(sum(math.exp(v) for v in logits))) / n
    return total / len(others)


@pytest.mark.parametrize("modalities", [("image", "text"), ("image", "audio", "text")])
def test_imsep_matches_brute_force(modalities):
    z = random_embeddings(modalities, n=6)
    sentences = random_embeddings(("s",), n=6, d=8, seed=3)["s"]
    scale = torch.tensor(5.0, dtype=torch.float64)
    value = float(intra_modality_separation(LossInputs(z, scale, sentences=sentences)))
    assert value == pytest.approx(brute_force_imsep(z, sentences @ sentences.T, 5.0), rel=1e-10)


def test_imsep_label_reading_uses_same_class_similarities():
    z = random_embeddings(("image", "text"), n=6)
    labels = torch.tensor([0, 1, 0, 2, -1, -1])
    same = torch.tensor(
        [[float(a == b and a >= 0) for b in labels.tolist()] for a in labels.tolist()], dtype=torch.float64
    )
    assert same[0, 2] == 1 and same[4, 5] == 0 and same[4, 4] == 0  # unlabelled items are like no other
    value = float(intra_modality_separation(LossInputs(z, torch.tensor(5.0, dtype=torch.float64), labels=labels),
                                            similarity="label"))  # fmt: skip
    assert value == pytest.approx(brute_force_imsep(z, same, 5.0), rel=1e-10)


def test_imsep_needs_caption_similarities():
    with pytest.raises(ValueError, match="needs the sentence embeddings"):
        intra_modality_separation(LossInputs(random_embeddings(("image", "text")), torch.tensor(1.0)))


def test_learnable_temperature_gets_gradient_and_fixed_does_not():
    z = random_embeddings(("image", "text"))
    learnable = Temperature(0.07, learnable=True)
    assert float(learnable().detach()) == pytest.approx(1 / 0.07)
    clip_pair_loss(z["image"].float(), z["text"].float(), learnable()).backward()
    assert learnable.log_scale.grad is not None and float(learnable.log_scale.grad) != 0.0
    fixed = Temperature(0.1, learnable=False)
    assert list(fixed.parameters()) == []
    assert not fixed.log_scale.requires_grad
    assert fixed.tau == pytest.approx(0.1)


def test_temperature_clamp_caps_logit_scale_at_100():
    temperature = Temperature(0.07, learnable=True, max_logit_scale=100)
    with torch.no_grad():
        temperature.log_scale.fill_(math.log(250.0))
    temperature.clamp_()
    assert float(temperature().detach()) == pytest.approx(100.0)
    with torch.no_grad():
        temperature.log_scale.fill_(math.log(50.0))
    temperature.clamp_()
    assert float(temperature().detach()) == pytest.approx(50.0)  # below the cap: untouched


def test_a_fixed_temperature_is_never_clamped():
    fixed = Temperature(0.005, learnable=False, max_logit_scale=100)  # 1/tau = 200, above the learnable cap
    fixed.clamp_()
    assert float(fixed().detach()) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("epoch", "epochs", "alpha", "beta"),
    [
        (0, 100, 1.0, 1.0),
        (20, 100, 1.0, 1.0),
        (45, 100, 1.0, 0.5),
        (50, 100, 1.0, 0.4),
        (70, 100, 1.4, 0.0),
        (75, 100, 1.5, 0.0),
        (99, 100, 1.98, 0.0),
        (5, 10, 1.0, 0.4),  # scaled: epoch 5 of 10 is epoch 50 of 100
        (9, 10, 1.8, 0.0),
        (1, 4, 1.0, 0.9),  # 25 % -> beta 1 - 5/50
        (4.5, 10, 1.0, 0.5),  # step half-way through epoch 4 of 10: 45 % of the released 100 epochs
        (8.25, 10, 1.65, 0.0),
    ],
)
def test_paper_code_schedule(epoch, epochs, alpha, beta):
    assert schedule_multiplier("paper_code", "atp", epoch, epochs) == pytest.approx(alpha)
    assert schedule_multiplier("paper_code", "cu", epoch, epochs) == pytest.approx(beta)
    assert schedule_multiplier("paper_code", "infonce", epoch, epochs) == 1.0
    assert schedule_multiplier("constant", "cu", epoch, epochs) == 1.0


def test_method_loss_is_the_weighted_sum_of_its_terms():
    z = {m: v.float() for m, v in random_embeddings().items()}
    loss = MethodLoss(
        {"infonce": {"weight": 1.0}, "atp": {"weight": 0.5, "anchor": "text"}, "cu": {"weight": 2.0, "t": 2.0}},
        {"init": 0.07, "learnable": True},
        schedule="paper_code",
    )
    total, terms = loss(z, epoch=75, epochs=100)
    expected = terms["infonce"] + 0.5 * 1.5 * terms["atp"] + 2.0 * 0.0 * terms["cu"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(terms) == {"infonce", "atp", "cu"}


def test_registry_and_config_options_agree():
    """modgap.study.method_options (read by the config check, without torch) describes modgap.training.losses exactly."""
    assert set(LOSS_TERMS) == set(LOSS_TERM_OPTIONS)
    for name, function in LOSS_TERMS.items():
        keyword = {
            p.name: p.default for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY
        }
        assert keyword == LOSS_TERM_OPTIONS[name], name
