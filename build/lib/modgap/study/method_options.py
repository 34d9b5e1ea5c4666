"""What a method may say in the config, without importing torch.

The Snakefile validates the configuration before any job starts, in an
environment that may hold only Snakemake; so the loss terms' options and the
weight schedules live here, and ``modgap.training.losses`` implements them (a test checks
that both agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Loss term -> its options and their defaults (keyword arguments of modgap.training.losses.LOSS_TERMS[term]).
LOSS_TERM_OPTIONS: dict[str, dict[str, object]] = {
    "infonce": {"pairs": "all", "anchor": "text"},
    "atp": {"anchor": "text"},
    "cu": {"t": 2.0},
    "imsep": {"text_modality": "text", "similarity": "sentence"},
}

# Options whose value is a modality: (term, option) -> condition under which it is used.
_MODALITY_OPTIONS = {
    ("infonce", "anchor"): lambda options: options.get("pairs", "all") == "anchor",
    ("atp", "anchor"): lambda options: True,
    ("imsep", "text_modality"): lambda options: True,
}

SCHEDULES = ("constant", "paper_code")

# Tower kinds: stems feed the trunk (shareable between modalities); backbones replace stem and trunk.
STEM_KINDS = {"image": "patch", "audio": "frames", "text": "tokens"}
BACKBONE_KINDS = {"resnet18": "image", "resnet50": "image", "vit_b_16": "image", "minilm": "text"}
# Pretrained CLIP-style models (modgap.embeddings.pretrained): one modality's encoder with its own projection into the
# model's joint space; like backbones, they cannot share a trunk.
PRETRAINED_TOWER_KINDS = {"open_clip": ("image", "text"), "hf_clip": ("image", "text")}


def loss_option_problems(loss_config: Mapping[str, Mapping], modalities: Sequence[str]) -> list[tuple[str, str]]:
    """Problems with a method's ``loss`` section for an experiment with these modalities, as
    (key below ``loss``, message) pairs."""
    problems = []
    for term, options in loss_config.items():
        if term not in LOSS_TERM_OPTIONS:
            problems.append((term, f"unknown loss term (known: {', '.join(sorted(LOSS_TERM_OPTIONS))})"))
            continue
        accepted = LOSS_TERM_OPTIONS[term]
        for option in options:
            if option != "weight" and option not in accepted:
                problems.append((f"{term}.{option}", f"unknown option (accepted: weight, {', '.join(accepted)})"))
        if term == "infonce" and options.get("pairs", "all") not in ("all", "anchor"):
            problems.append(("infonce.pairs", f"must be 'all' or 'anchor', got {options['pairs']!r}"))
        if term == "imsep" and options.get("similarity", "sentence") not in ("sentence", "label"):
            problems.append(("imsep.similarity", f"must be 'sentence' or 'label', got {options['similarity']!r}"))
        for (option_term, option), used in _MODALITY_OPTIONS.items():
            if option_term != term or not used(options):
                continue
            modality = options.get(option, accepted[option])
            if modality not in modalities:
                problems.append(
                    (
                        f"{term}.{option}",
                        f"modality '{modality}' is not among the experiment's modalities ({', '.join(modalities)})",
                    )
                )
    return problems


def schedule_multiplier(schedule: str, term: str, epoch: float, epochs: int) -> float:
    """Weight multiplier of a loss term at a (0-based, fractional) epoch: step s of an epoch of S
    steps is at ``epoch + s / S``, since the released code moves the weights every step.

    ``paper_code`` is the released code's schedule over 100 epochs, stretched to
    ``epochs``: alpha (ATP) is 1 until 50 % of training, then rises linearly to 2
    at 100 %; beta (CU) is 1 until 20 %, then falls linearly to 0 at 70 %.
    Other terms keep weight 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "paper_code":
        raise ValueError(f"unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    progress = 100.0 * epoch / epochs  # position on the released code's 100-epoch axis
    if term == "atp":
        return 1.0 + max(0.0, progress - 50.0) / 50.0
    if term == "cu":
        return min(1.0, max(0.0, 1.0 - (progress - 20.0) / 50.0))
    return 1.0
