"""The training loop, written once: a run's annealing plan (trunk epochs, cooldown branches, budget snapshots,
checkpoints), its epochs, and the optimiser sequence of a step.

``BudgetLadder`` trains one seed (``modgap.training.trainer.Trainer``) or several stacked as one model (the stacked-seeds
trainer of ``benchmarks/stacked_seeds.py``); a subclass says only how one batch's losses are computed
(``step_losses``) and how its seeds' files are kept.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from modgap.errors import ExplainedError
from modgap.training.inputs import Batch
from modgap.training.schedules import Branch, warmup_cosine, warmup_stable_decay


class NonFiniteLossError(ExplainedError, FloatingPointError):
    pass


def add_step_losses(sums: dict[str, float], total: float, terms: Mapping[str, float]) -> None:
    """Add one step's total loss and unweighted terms to an epoch's running sums."""
    sums["loss"] = sums.get("loss", 0.0) + total
    for name, value in terms.items():
        sums[f"loss_{name}"] = sums.get(f"loss_{name}", 0.0) + value


class BudgetLadder:
    """Training along a run's annealing plan (docs/workflow.md, "Training"): the order of trunk epochs,
    cooldown branches, budget snapshots and checkpoints, an epoch, and a step's optimiser sequence.

    A subclass holds ``model``, ``loss`` and ``optimizer`` (the ones that train) and ``members`` (one
    ``modgap.training.trainer.Trainer`` per seed, each with its data, draws, log and files: a single seed's trainer is its
    own member); it computes one batch's losses (``step_losses``: a loss per seed), joins the seeds' batches
    (``join_batches``), brings its members up to date with the weights that train (``sync_members``), keeps a
    budget's annealed state (``keep_budget``), resumes (``resume``), builds fresh weights (``build``) and saves
    checkpoints; and it sets ``run``, ``options``, ``trunks``, ``trunk``, ``start_epoch``, ``finished``,
    ``steps_per_epoch`` and ``warmup_steps``."""

    run: Mapping
    options: Mapping
    trunks: list[list[Branch]]
    trunk: int
    start_epoch: int
    members: list  # one modgap.training.trainer.Trainer per seed
    finished: list[int]  # the budgets whose annealed state is kept so far
    steps_per_epoch: int
    warmup_steps: int
    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer

    @property
    def epochs_done(self) -> int:
        return len(self.members[0].log_rows)

    @property
    def final_budget(self) -> int:
        return self.trunks[-1][-1].budget

    def _weights(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _load_weights(self, state: Mapping) -> None:
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])

    # -- the plan ------------------------------------------------------------------------------
    def anneal(self, branch: Branch, horizon: int, advance) -> None:
        """Train a budget's cooldown from the current trunk state and keep that budget's annealed state: the
        run's final state for the last budget, else a snapshot of its test embeddings, after which the trunk
        state is restored."""
        trunk_state = None if branch.budget == self.final_budget else copy.deepcopy(self._weights())
        for epoch in range(branch.start, branch.budget):
            advance(self.record_epoch(epoch, branch, horizon))
        self.keep_budget(branch.budget, snapshot=trunk_state is not None)
        if trunk_state is not None:
            self._load_weights(trunk_state)

    def fit(self, progress: bool = False) -> None:
        """Train every trunk and anneal every budget (docs/workflow.md, "Training"); resumes from a checkpoint
        at a trunk's epoch boundary."""
        self.resume()
        bar = None
        if progress:
            from tqdm import tqdm

            total = sum(b.budget - b.start for t in self.trunks for b in t) + sum(t[-1].start for t in self.trunks)
            bar = tqdm(total=total, initial=self.epochs_done, desc=self.run["method_name"], unit="epoch")

        def advance(rows: list[dict]) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{np.mean([r['loss'] for r in rows]):.3f}", gap=f"{np.mean([r['val_gap'] for r in rows]):.2f}"
                )

        for index in range(self.trunk, len(self.trunks)):
            branches = self.trunks[index]
            horizon = branches[-1].budget
            if index > self.trunk:
                self.build()
                self.start_epoch = 0
            for epoch in range(self.start_epoch, branches[-1].start + 1):
                for branch in branches:  # the budgets whose cooldown starts from this state
                    if branch.start == epoch and branch.budget not in self.finished:
                        self.anneal(branch, horizon, advance)
                        self.save_checkpoint(index, epoch)
                if epoch == branches[-1].start:
                    break
                advance(self.record_epoch(epoch, None, horizon))
                if (epoch + 1) % self.options["checkpoint_every"] == 0:
                    self.save_checkpoint(index, epoch + 1)
        if bar is not None:
            bar.close()

    # -- an epoch --------------------------------------------------------------------------------
    def learning_rate(self, step: int, branch: Branch | None, horizon: int) -> float:
        """The rate at a step of a trunk (``branch`` None) or of a budget's cooldown; ``horizon``: the epochs
        of the trunk's longest budget (cosine decays over it)."""
        lr = self.options["lr"]
        if self.options["lr_schedule"] == "cosine":
            return lr * warmup_cosine(step, self.steps_per_epoch * horizon, self.warmup_steps)
        if branch is None:
            return lr * warmup_stable_decay(step, self.warmup_steps, None, 1)
        start = branch.start * self.steps_per_epoch
        return lr * warmup_stable_decay(
            step, self.warmup_steps, start, (branch.budget - branch.start) * self.steps_per_epoch
        )

    def set_learning_rate(self, epoch: int, step: int, branch: Branch | None, horizon: int) -> float:
        lr = self.learning_rate(epoch * self.steps_per_epoch + step, branch, horizon)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step_batch(self, draws: list, step: int) -> Batch:
        """The ``step``-th batch of an epoch whose draws are every member's ``draws``."""
        batch_size = self.options["batch_size"]
        return self.join_batches([d.batch(m.train_data, step, batch_size) for m, d in zip(self.members, draws)])

    def train_epoch(self, epoch: int, branch: Branch | None = None, horizon: int | None = None) -> list[dict]:
        """One epoch of a trunk (``branch`` None) or of a budget's cooldown; ``horizon``: the epochs the loss
        weights' schedule and a cosine rate run over (default: the run's). Returns every seed's epoch-log row."""
        horizon = horizon or self.options["epochs"]
        draws = [member.epoch_draws(epoch) for member in self.members]
        sums: list[dict[str, float]] = [{} for _ in self.members]
        self.model.train()
        started = time.perf_counter()
        for step in range(self.steps_per_epoch):
            lr = self.set_learning_rate(epoch, step, branch, horizon)
            totals, terms = self.train_step(self.step_batch(draws, step), epoch, step, horizon)
            table = torch.stack([totals, *terms.values()], -1).reshape(-1, 1 + len(terms)).tolist()  # one read
            for seed_sums, (total, *values) in zip(sums, table):  # a row a seed: its total and terms
                add_step_losses(seed_sums, total, dict(zip(terms, values)))
        seconds = time.perf_counter() - started
        self.sync_members()
        return [m.epoch_row(epoch, branch, horizon, s, lr, seconds) for m, s in zip(self.members, sums)]

    def record_epoch(self, epoch: int, branch: Branch | None, horizon: int) -> list[dict]:
        rows = self.train_epoch(epoch, branch, horizon)
        for member, row in zip(self.members, rows):
            member.log_rows.append(row)
        return rows

    # -- a step ------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, epoch: int, step: int, horizon: int) -> tuple[Tensor, dict[str, Tensor]]:
        """One optimiser step on ``batch``, the ``step``-th of an epoch; returns the loss and its unweighted
        terms, a value per seed (detached)."""
        position = epoch + step / self.steps_per_epoch  # the schedule moves every step, as released
        totals, terms = self.step_losses(batch, position, horizon)
        self.check_finite(totals, terms, epoch, step)
        self.optimizer.zero_grad(set_to_none=True)
        totals.sum().backward()  # each seed's loss depends on its own weights only: the sum's gradient is theirs
        if self.options["grad_clip"]:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options["grad_clip"])
        self.optimizer.step()
        self.loss.temperature.clamp_()
        return totals.detach(), {name: value.detach() for name, value in terms.items()}

    def check_finite(self, totals: Tensor, terms: Mapping[str, Tensor], epoch: int, step: int) -> None:
        """Stop at a non-finite loss, naming the first seed whose loss it is and the config keys to look at."""
        finite = torch.isfinite(totals).reshape(-1)
        if bool(finite.all()):
            return
        index = int((~finite).nonzero()[0])
        values = ", ".join(f"{k}={float(v.detach().reshape(-1)[index]):.4g}" for k, v in terms.items())
        raise NonFiniteLossError(
            f"seed {self.members[index].seed}: non-finite loss at epoch {epoch + 1}, step {step + 1} ({values}); "
            f"{self._likely_cause(epoch, step)}"
        )

    def _likely_cause(self, epoch: int, step: int) -> str:
        """Which config keys to look at for a non-finite loss: before the first update it cannot be the
        learning rate, so the method's temperature and weights; later the run has diverged."""
        method = f"methods.{self.run['method_name']}"
        if epoch == 0 and step == 0:
            return f"it is the first step, before any update: check {method}.temperature, {method}.loss weights and the inputs"
        return f"the run diverged: lower train.lr or set train.grad_clip (or check {method}.temperature)"
