"""A run's learning-rate schedules and its annealing plan: the trunks it trains and the budgets' cooldown
branches off them (docs/workflow.md, "Training")."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_stable_decay(step: int, warmup: int, cooldown_start: int | None, cooldown_steps: int) -> float:
    """Learning-rate multiplier of warmup-stable-decay (Hagele et al. 2024): linear warm-up over ``warmup``
    steps, then 1 (the trunk), and from ``cooldown_start`` a linear decay towards 0 over ``cooldown_steps``
    (a budget's cooldown branch; None: on the trunk)."""
    multiplier = (step + 1) / warmup if step < warmup else 1.0
    if cooldown_start is not None and step >= cooldown_start:
        multiplier = min(multiplier, 1.0 - (step - cooldown_start) / cooldown_steps)
    return multiplier


@dataclass(frozen=True)
class Branch:
    """A budget's cooldown: from the trunk's state after ``start`` epochs, epochs ``start`` to ``budget`` - 1 at
    a decaying rate give the state evaluated at ``budget`` (start == budget: no cooldown, as under cosine)."""

    start: int
    budget: int


def cooldown_epochs(budget: int, fraction: float) -> int:
    """Epochs of a budget's cooldown: its last ``fraction``, rounded, at least one."""
    return max(1, round(fraction * budget))


def annealing_plan(options: Mapping, schedule_horizon: bool) -> list[list[Branch]]:
    """The trunks of a run and the branches each gives, in training order.

    Under ``wsd`` one constant-rate trunk serves every budget of the ladder, each budget's state being a
    cooldown branch off it, so the ladder costs the trunk plus the branches. A method whose loss weights
    follow a schedule over the run (``schedule_horizon``: the released alpha/beta schedule) sees another
    schedule at every budget: each budget then trains its own trunk from the start. Under ``cosine`` the
    one budget is the run itself.
    """
    budgets = options["budgets"] or [options["epochs"]]
    if options["lr_schedule"] == "cosine":
        return [[Branch(options["epochs"], options["epochs"])]]
    branches = [Branch(b - cooldown_epochs(b, options["cooldown_fraction"]), b) for b in budgets]
    return [[branch] for branch in branches] if schedule_horizon else [branches]
