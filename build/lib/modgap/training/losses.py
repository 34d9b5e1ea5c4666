"""Loss terms of the compared methods (docs/workflow.md, "Methods").

Every term is a function ``term(inputs, **options) -> scalar tensor`` registered
in ``LOSS_TERMS``; a method is a weighted sum of terms chosen in the config
(``methods.<name>.loss``). Adding a loss is one function plus one registry entry.

All embeddings reaching these functions are L2-normalised, shape (N, d).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modgap.study.method_options import schedule_multiplier


@dataclass
class LossInputs:
    """What a loss term may look at for one batch."""

    embeddings: Mapping[str, Tensor]  # modality -> (N, d), unit norm
    logit_scale: Tensor  # scalar, 1 / tau
    sentences: Tensor | None = None  # (N, 384) unit-norm sentence embeddings of the batch's captions
    labels: Tensor | None = None  # (N,) class index, -1 = none


class Temperature(nn.Module):
    """CLIP's temperature: logit_scale = exp(log_scale) = 1/tau, learnable or fixed.

    Learnable: initialised to 1/init and clamped after every optimiser step so that
    1/tau <= max_logit_scale (CLIP). Fixed: a buffer, so it never receives a gradient.
    """

    def __init__(self, init: float = 0.07, learnable: bool = True, max_logit_scale: float = 100.0):
        super().__init__()
        log_scale = torch.tensor(math.log(1.0 / init), dtype=torch.float32)
        self.learnable = learnable
        self.max_log_scale = math.log(max_logit_scale)
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self) -> Tensor:
        return self.log_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep a learnable 1/tau within [1, max_logit_scale]; a fixed temperature is left as configured."""
        if self.learnable:
            self.log_scale.clamp_(0.0, self.max_log_scale)

    @property
    def tau(self) -> float:
        return float(1.0 / self.forward().detach())


def clip_pair_loss(z_a: Tensor, z_b: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE of one modality pair: (CE(a->b) + CE(b->a)) / 2, true pairs on the diagonal."""
    logits = logit_scale * z_a @ z_b.T
    targets = torch.arange(z_a.shape[0], device=z_a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def modality_pairs(modalities: Sequence[str], pairs: str = "all", anchor: str = "text") -> list[tuple[str, str]]:
    """Unordered modality pairs: all of them, or only those containing the anchor."""
    if pairs == "all":
        return list(itertools.combinations(modalities, 2))
    if pairs == "anchor":
        return [(anchor, m) for m in modalities if m != anchor]
    raise ValueError(f"pairs must be 'all' or 'anchor', got {pairs!r}")


def infonce(inputs: LossInputs, *, pairs: str = "all", anchor: str = "text") -> Tensor:
    """CLIP's symmetric InfoNCE averaged over modality pairs (docs/workflow.md, "Methods")."""
    z = inputs.embeddings
    terms = [clip_pair_loss(z[a], z[b], inputs.logit_scale) for a, b in modality_pairs(list(z), pairs, anchor)]
    return torch.stack(terms).mean()


def align_true_pairs(inputs: LossInputs, *, anchor: str = "text") -> Tensor:
    """L_ATP: mean squared distance of every modality to the anchor, over true pairs (docs/workflow.md, "Methods")."""
    z = inputs.embeddings
    z_anchor = z[anchor]
    terms = [(z[m] - z_anchor).pow(2).sum(dim=1).mean() for m in z if m != anchor]
    return torch.stack(terms).mean()


def centroid_uniformity(inputs: LossInputs, *, t: float = 2.0) -> Tensor:
    """L_CU: Wang & Isola's uniformity on the re-normalised per-sample centroids (docs/workflow.md, "Methods")."""
    centroids = F.normalize(torch.stack(list(inputs.embeddings.values())).mean(dim=0), dim=-1)
    n = centroids.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=centroids.device)
    # ||u - v||^2 = 2 - 2 <u, v> for unit vectors; avoids pdist's sqrt, whose gradient is NaN at 0. The pairs
    # i < j gathered by their flat position: the same entries as [i, j], gathered (and scattered back) faster.
    squared = 2.0 - 2.0 * (centroids @ centroids.T).flatten().index_select(0, i * n + j)
    return torch.logsumexp(-t * squared, dim=0) - math.log(squared.numel())


def _separation_ce(own: Tensor, partner: Tensor, caption_similarity: Tensor, logit_scale: Tensor) -> Tensor:
    """One side of IMSep: off-diagonal logits are intra-modal cosines scaled by (1 - s_ij),
    the diagonal is the cross-modal true-pair cosine."""
    intra = (1.0 - caption_similarity) * (own @ own.T)
    true_pair = (own * partner).sum(dim=1)
    logits = logit_scale * torch.diagonal_scatter(intra, true_pair)
    return F.cross_entropy(logits, torch.arange(own.shape[0], device=own.device))


def caption_similarity(inputs: LossInputs, reading: str) -> Tensor:
    """s_ij of IMSep: cosine of the captions' sentence embeddings (``sentence``, as released), or
    1 for two items of the same class and 0 otherwise (``label``, for class-name captions)."""
    if reading == "sentence":
        if inputs.sentences is None:
            raise ValueError("imsep (similarity: sentence) needs the sentence embeddings of the batch's captions")
        return inputs.sentences @ inputs.sentences.T
    if reading == "label":
        labels = inputs.labels
        return ((labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)).float()
    raise ValueError(f"imsep similarity must be 'sentence' or 'label', got {reading!r}")


def intra_modality_separation(
    inputs: LossInputs, *, text_modality: str = "text", similarity: str = "sentence"
) -> Tensor:
    """AlignCLIP's IMSep (as released): L^m + L^T for every non-text modality m, averaged over m."""
    z = inputs.embeddings
    s = caption_similarity(inputs, similarity)
    text = z[text_modality]
    terms = [
        _separation_ce(z[m], text, s, inputs.logit_scale) + _separation_ce(text, z[m], s, inputs.logit_scale)
        for m in z
        if m != text_modality
    ]
    return torch.stack(terms).mean()


LOSS_TERMS: dict[str, Callable[..., Tensor]] = {
    "infonce": infonce,
    "atp": align_true_pairs,
    "cu": centroid_uniformity,
    "imsep": intra_modality_separation,
}


class MethodLoss(nn.Module):
    """A method's objective: weighted loss terms plus the temperature they share."""

    def __init__(self, loss_config: Mapping[str, Mapping], temperature: Mapping, schedule: str = "constant"):
        super().__init__()
        if temperature.get("match"):
            raise ValueError(
                f"the temperature matches method '{temperature['match']}': read it from that run first "
                "(modgap.training.trainer.match_temperature)"
            )
        self.temperature = Temperature(**{k: v for k, v in temperature.items() if k != "match"})
        self.schedule = schedule
        self.weights = {name: float(options.get("weight", 1.0)) for name, options in loss_config.items()}
        self.options = {
            name: {k: v for k, v in options.items() if k != "weight"} for name, options in loss_config.items()
        }

    @property
    def needs_sentences(self) -> bool:
        """Whether a term reads the sentence embeddings of the captions (IMSep as released)."""
        return "imsep" in self.weights and self.options["imsep"].get("similarity", "sentence") == "sentence"

    def term_weights(self, epoch: float, epochs: int) -> dict[str, float]:
        return {
            name: weight * schedule_multiplier(self.schedule, name, epoch, epochs)
            for name, weight in self.weights.items()
        }

    def forward(
        self,
        embeddings: Mapping[str, Tensor],
        epoch: float,
        epochs: int,
        sentences: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and the unweighted value of every term (for logging)."""
        inputs = LossInputs(embeddings, self.temperature(), sentences, labels)
        terms = {name: LOSS_TERMS[name](inputs, **self.options[name]) for name in self.weights}
        weights = self.term_weights(epoch, epochs)
        total = sum(weights[name] * value for name, value in terms.items())
        return total, terms
