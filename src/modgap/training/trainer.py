"""Training of one (experiment, method, seed) run, with per-epoch logs, checkpoints, resume, and the
test-split embedding dump.

Randomness is derived from (seed, epoch) at every epoch start (batch order,
caption choice, dropout), so a run resumed from an epoch-boundary checkpoint
continues exactly as the uninterrupted run would have on the CPU. The batch
order and caption choice depend on the seed only, and the encoder's components
are seeded by name (modgap.training.models): methods trained with one seed see the same
batches from the same initial weights, which the claims check pairs them by.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import hashlib
import io
import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modgap.data.format import read_manifest
from modgap.embeddings.dumps import BUDGET_ARRAYS
from modgap.errors import ExplainedError
from modgap.io import save_npz, save_torch, write_text
from modgap.metrics import measures as metrics
from modgap.runtime import select_device
from modgap.training.encode import embed_split, embedding_dump
from modgap.training.inputs import Batch, SplitInputs
from modgap.training.losses import MethodLoss
from modgap.training.models import build_encoder, load_weights_only, save_trained

log = logging.getLogger(__name__)


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where a run writes its resumable checkpoint (beside its model)."""
    return Path(run_dir) / "checkpoint.pt"


def remove_resume_state(run_dir: str | Path) -> None:
    """The checkpoint and ladder snapshots of a finished run (its outputs hold what they held)."""
    run_dir = Path(run_dir)
    checkpoint_path(run_dir).unlink(missing_ok=True)
    for snapshot in run_dir.glob("snapshot_e*.npz"):
        snapshot.unlink()


class NonFiniteLossError(ExplainedError, FloatingPointError):
    pass


def input_shapes(manifest: Mapping, modalities) -> dict[str, list[int]]:
    """Per-sample array shape of each modality (text: tokens of one caption)."""
    files = manifest["splits"]["train"]["files"]
    shapes = {m: files[f"{m}.npy"]["shape"][1:] for m in modalities if m != "text"}
    if "text" in modalities:
        shapes["text"] = files["text_tokens.npy"]["shape"][2:]
    return shapes


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(seed) * 1_000_003 + int(epoch)


def run_fingerprint(run: Mapping, seed: int, manifest: Mapping) -> str:
    """Identifies what a checkpoint belongs to: run configuration, seed and exact training data."""
    data = {s: {f: m["sha256"] for f, m in info["files"].items()} for s, info in manifest["splits"].items()}
    payload = json.dumps({"run": run, "seed": seed, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


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


def validation_metrics(embeddings: Mapping[str, np.ndarray], labels: np.ndarray, level: str) -> dict[str, float]:
    gaps = metrics.gap_metrics(embeddings)
    recalls = metrics.retrieval_metrics(embeddings, labels, level, ks=(1,))
    return {
        "val_gap": gaps["gap"],
        "val_cos_true_pairs": gaps["cos_true_pairs"],
        "val_r1": float(np.mean(list(recalls.values()))) if recalls else float("nan"),
    }


class RunInputs:
    """The splits a run reads on its device, loaded once and shared by every seed trained in the process
    (the test split when first needed)."""

    def __init__(self, run: Mapping, data_dir: str | Path, device: torch.device):
        self.run, self.data_dir, self.device = run, Path(data_dir), device
        self.manifest = read_manifest(data_dir)
        modalities, method = run["modalities"], run["method"]
        sentences = MethodLoss(method["loss"], method["temperature"]).needs_sentences
        self.train = SplitInputs(data_dir, "train", modalities, device, with_text_embedding=sentences)
        self.val = SplitInputs(data_dir, "val", modalities, device, with_text_embedding=sentences)

    @functools.cached_property
    def test(self) -> SplitInputs:
        return SplitInputs(self.data_dir, "test", self.run["modalities"], self.device)


@dataclass(frozen=True)
class EpochDraws:
    """The random choices of one epoch of one seed: the batch order, each item's caption and partners."""

    order: Tensor
    captions: Tensor | None
    partners: dict[str, Tensor] | None

    def batch(self, data: SplitInputs, step: int, batch_size: int) -> Batch:
        return data.batch(self.order[step * batch_size : (step + 1) * batch_size], self.captions, self.partners)


def make_optimizer(modules: Sequence[nn.Module], options: Mapping) -> torch.optim.Optimizer:
    """The run's optimiser over the trainable parameters of ``modules``, in their order."""
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[options["optimizer"]]
    # fused: one kernel for every parameter instead of a dozen per parameter (4x faster on small CPU models)
    return optimizer(parameters, lr=options["lr"], weight_decay=options["weight_decay"], fused=True)


class BudgetLadder:
    """Training along a run's annealing plan: the order of trunk epochs, cooldown branches, budget snapshots
    and checkpoints (docs/workflow.md, "Training"), shared by one seed's ``Trainer`` and the stacked seeds of
    ``modgap.training.stacked_seeds``. A subclass holds ``model``, ``loss`` and ``optimizer``, trains and records an epoch
    (``record_epoch``), keeps a budget's annealed state (``keep_budget``), resumes (``resume``), builds fresh
    weights (``build``) and saves checkpoints, and sets ``run``, ``options``, ``trunks``, ``trunk``,
    ``start_epoch``, ``finished`` (the budgets kept so far) and ``epochs_done``."""

    run: Mapping
    options: Mapping
    trunks: list[list[Branch]]
    trunk: int
    start_epoch: int
    finished: list[int]
    epochs_done: int
    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer

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


class Trainer(BudgetLadder):
    """Everything one run holds: data, model, objective, optimiser, its annealing plan, and its files."""

    def __init__(
        self, run: Mapping, data_dir: str | Path, output_dir: str | Path, seed: int, inputs: RunInputs | None = None
    ):
        self.run = run
        self.seed = int(seed)
        self.options = run["train"]
        self.output_dir = Path(output_dir)
        self.checkpoint_path = checkpoint_path(self.output_dir)
        self.device = select_device(self.options["device"]) if inputs is None else inputs.device
        self.inputs = inputs or RunInputs(run, data_dir, self.device)
        manifest = self.inputs.manifest
        self.fingerprint = run_fingerprint(run, self.seed, manifest)
        modalities = run["modalities"]
        method = run["method"]
        self.train_data, self.val_data = self.inputs.train, self.inputs.val
        self.input_shapes = input_shapes(manifest, modalities)
        self.text_vocabulary = self.train_data.text_vocabulary() if "text" in modalities else []
        self.steps_per_epoch = self.train_data.size // self.options["batch_size"]
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"train.batch_size {self.options['batch_size']} exceeds the {self.train_data.size} training items"
            )
        self.trunks = annealing_plan(self.options, method["schedule"] != "constant")
        # warm-up over part of the first budget (wsd), or of the whole run (cosine)
        first = (self.options["budgets"] or [self.options["epochs"]])[0]
        warmup_epochs = first if self.options["lr_schedule"] == "wsd" else self.options["epochs"]
        self.warmup_steps = max(1, int(self.options["warmup_fraction"] * self.steps_per_epoch * warmup_epochs))
        self.log_rows: list[dict] = []
        self.finished: list[int] = []  # budgets whose annealed state is kept
        self.temperatures: dict[int, float] = {}  # budget -> temperature of its annealed state
        self.trunk, self.start_epoch = 0, 0
        self.build()

    def build(self) -> None:
        """A fresh model, objective and optimiser, as at the start of a trunk (seeded: every trunk of a run
        starts from the same weights)."""
        method = self.run["method"]
        self.loss = MethodLoss(method["loss"], method["temperature"], method["schedule"]).to(self.device)
        self.model = build_encoder(
            self.run["modalities"],
            self.input_shapes,
            self.run["model"],
            method["encoder"] == "shared",
            self.text_vocabulary,
            seed=self.seed,
        ).to(self.device)
        self.forward = torch.compile(self.model) if self.options["compile"] else self.model
        self.optimizer = make_optimizer([self.model, self.loss], self.options)

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

    def autocast(self):
        """bfloat16 autocast where ``train.amp`` asks for it (on the CPU too, for tests of the GPU path)."""
        if self.options["amp"]:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, trunk: int = 0, epoch: int = 0) -> None:
        """The trunk's state after ``epoch`` epochs, with every budget finished so far (their snapshots lie
        beside it)."""
        save_torch(
            self.checkpoint_path,
            {
                "fingerprint": self.fingerprint,
                **self._weights(),
                "trunk": trunk,
                "epoch": epoch,
                "log_rows": self.log_rows,
                "finished": self.finished,
                "temperatures": self.temperatures,
            },
        )

    def try_resume(self) -> bool:
        """Continue from this run's checkpoint, if one exists for the same configuration and data."""
        if not self.checkpoint_path.is_file():
            return False
        advice = "delete it and re-run snakemake to train the run from its start"
        state = load_weights_only(self.checkpoint_path, "checkpoint", self.device, advice)
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            log.warning("ignoring %s: it belongs to another configuration or data", self.checkpoint_path)
            return False
        self._load_weights(state)
        self.log_rows, self.finished = state["log_rows"], state["finished"]
        self.temperatures = {int(b): t for b, t in state["temperatures"].items()}
        self.trunk, self.start_epoch = state["trunk"], state["epoch"]
        log.info("resumed from %s: trunk %d at epoch %d", self.checkpoint_path, self.trunk + 1, self.start_epoch)
        return True

    def _likely_cause(self, epoch: int, step: int) -> str:
        """Which config keys to look at for a non-finite loss: before the first update it cannot be the
        learning rate, so the method's temperature and weights; later the run has diverged."""
        method = f"methods.{self.run['method_name']}"
        if epoch == 0 and step == 0:
            return f"it is the first step, before any update: check {method}.temperature, {method}.loss weights and the inputs"
        return f"the run diverged: lower train.lr or set train.grad_clip (or check {method}.temperature)"

    # -- training ------------------------------------------------------------------------------
    def epoch_draws(self, epoch: int) -> EpochDraws:
        """This seed's batch order, captions and partners of an epoch; also seeds torch's global generator
        (dropout)."""
        torch.manual_seed(_epoch_seed(self.seed, epoch))
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        order = torch.randperm(self.train_data.size, generator=generator)
        captions = self.train_data.caption_choice(generator) if "text" in self.run["modalities"] else None
        partners = self.train_data.partner_choice(generator) if self.options["resample_pairs"] else None
        return EpochDraws(order, captions, partners)

    def set_learning_rate(self, optimizer: torch.optim.Optimizer, epoch: int, step: int, branch, horizon) -> float:
        lr = self.learning_rate(epoch * self.steps_per_epoch + step, branch, horizon)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def check_finite(self, total: Tensor, terms: Mapping[str, Tensor], epoch: int, step: int) -> None:
        if not torch.isfinite(total):
            values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise NonFiniteLossError(
                f"seed {self.seed}: non-finite loss at epoch {epoch + 1}, step {step + 1} ({values}); "
                f"{self._likely_cause(epoch, step)}"
            )

    def train_epoch(self, epoch: int, branch: Branch | None = None, horizon: int | None = None) -> dict[str, float]:
        """One epoch of a trunk (``branch`` None) or of a budget's cooldown; ``horizon``: the epochs the loss
        weights' schedule and a cosine rate run over (default: the run's)."""
        horizon = horizon or self.options["epochs"]
        draws = self.epoch_draws(epoch)
        batch_size = self.options["batch_size"]
        sums: dict[str, float] = {}
        self.model.train()
        started = time.perf_counter()
        for step in range(self.steps_per_epoch):
            lr = self.set_learning_rate(self.optimizer, epoch, step, branch, horizon)
            total, terms = self.train_step(draws.batch(self.train_data, step, batch_size), epoch, step, horizon)
            total_value, *values = torch.stack([total, *terms.values()]).tolist()  # one read from the device
            add_step_losses(sums, total_value, dict(zip(terms, values)))
        return self.epoch_row(epoch, branch, horizon, sums, lr, time.perf_counter() - started)

    def train_step(self, batch: Batch, epoch: int, step: int, horizon: int) -> tuple[Tensor, dict[str, Tensor]]:
        """One optimiser step on ``batch``, the ``step``-th of an epoch; returns the loss and its unweighted
        terms (detached)."""
        with self.autocast():
            embeddings = self.forward(batch.inputs)
        position = epoch + step / self.steps_per_epoch  # the schedule moves every step, as released
        total, terms = self.loss(embeddings, position, horizon, batch.sentences, batch.labels)
        self.check_finite(total, terms, epoch, step)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.options["grad_clip"]:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options["grad_clip"])
        self.optimizer.step()
        self.loss.temperature.clamp_()
        return total.detach(), {name: value.detach() for name, value in terms.items()}

    def epoch_row(self, epoch: int, branch, horizon: int, sums: Mapping[str, float], lr: float, seconds: float) -> dict:
        """The epoch log's row for an epoch whose step losses summed to ``sums``: mean losses, weights, rate,
        temperature and the validation split's loss and metrics (the model as it stands)."""
        trunk_budget = horizon if len(self.trunks) > 1 else None  # a budget's own trunk leads to that budget alone
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * self.steps_per_epoch,
            "budget": branch.budget if branch is not None else trunk_budget,
        }
        row.update({k: v / self.steps_per_epoch for k, v in sums.items()})
        row.update({f"weight_{k}": w for k, w in self.loss.term_weights(epoch, horizon).items()})
        row["lr"] = lr
        row["temperature"] = self.loss.temperature.tau
        validation_started = time.perf_counter()
        val = embed_split(self.model, self.val_data, autocast=self.autocast)
        row["val_loss"] = self.validation_loss(val, epoch, horizon)
        row.update(validation_metrics(val, self.val_data.labels, self.run["retrieval"]))
        phase = f"cooldown to {branch.budget}" if branch is not None else "trunk"
        log.info(
            "seed %d epoch %d/%d (%s) loss %.4f val loss %.4f gap %.3f R@1 %.1f (%.2f s training, %.0f samples/s, %.2f s validation)",
            self.seed,
            epoch + 1,
            horizon,
            phase,
            row["loss"],
            row["val_loss"],
            row["val_gap"],
            row["val_r1"],
            seconds,
            self.steps_per_epoch * self.options["batch_size"] / seconds,
            time.perf_counter() - validation_started,
        )
        return row

    def record_epoch(self, epoch: int, branch: Branch | None, horizon: int) -> list[dict]:
        self.log_rows.append(self.train_epoch(epoch, branch, horizon))
        return self.log_rows[-1:]

    @property
    def epochs_done(self) -> int:
        return len(self.log_rows)

    @torch.no_grad()
    def validation_loss(self, embeddings: Mapping[str, np.ndarray], epoch: int, horizon: int) -> float:
        """The method's loss on the validation split's ``embeddings`` (from embed_split, so the encoder
        runs once), in consecutive full batches of the training size."""
        batch_size = min(self.options["batch_size"], self.val_data.size)
        losses = []
        for start in range(0, self.val_data.size - batch_size + 1, batch_size):
            labels, sentences = self.val_data.loss_targets(torch.arange(start, start + batch_size))
            chunk = {m: torch.from_numpy(z[start : start + batch_size]).to(self.device) for m, z in embeddings.items()}
            losses.append(float(self.loss(chunk, epoch, horizon, sentences, labels)[0]))
        return float(np.mean(losses))

    def snapshot_path(self, budget: int) -> Path:
        """Where the test embeddings at an earlier budget of the ladder wait for the run's final dump
        (beside the checkpoint, so a resumed run still has them)."""
        return self.output_dir / f"snapshot_e{budget}.npz"

    @property
    def test_data(self) -> SplitInputs:
        """The test split, read once for the ladder's snapshots and the final dump."""
        return self.inputs.test

    def keep_budget(self, budget: int, snapshot: bool) -> None:
        """Record a budget's annealed state: its temperature and, for an earlier budget of the ladder, a
        snapshot of its test embeddings."""
        self.temperatures[budget] = self.loss.temperature.tau
        if snapshot:
            dump = embedding_dump(self.model, self.test_data, autocast=self.autocast)
            save_npz(self.snapshot_path(budget), **dump, temperature=np.float32(self.temperatures[budget]))
        self.finished.append(budget)

    def resume(self) -> None:
        if not self.try_resume():
            remove_resume_state(self.output_dir)  # snapshots of an earlier configuration

    def save(self, model_path: str | Path, log_path: str | Path, embeddings_path: str | Path | None = None) -> None:
        """Write the trained model, the epoch log and the test-split embeddings atomically."""
        if embeddings_path is not None:
            arrays = embedding_dump(self.model, self.test_data, autocast=self.autocast)
            arrays["temperature"] = np.float32(self.temperatures[self.final_budget])
            for budget in self.finished[:-1]:  # the ladder's earlier budgets, as '<array>@<epochs>'
                with np.load(self.snapshot_path(budget)) as snapshot:
                    arrays |= {f"{k}@{budget}": snapshot[k] for k in BUDGET_ARRAYS if k in snapshot.files}
            save_npz(embeddings_path, **arrays)
        save_trained(
            model_path,
            {
                "run": dict(self.run),
                "seed": self.seed,
                "input_shapes": self.input_shapes,
                "text_vocabulary": self.text_vocabulary,
                "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "loss": {k: v.cpu() for k, v in self.loss.state_dict().items()},
            },
        )
        write_text(log_path, rows_to_csv(self.log_rows))


def add_step_losses(sums: dict[str, float], total: float, terms: Mapping[str, float]) -> None:
    """Add one step's total loss and unweighted terms to an epoch's running sums."""
    sums["loss"] = sums.get("loss", 0.0) + total
    for name, value in terms.items():
        sums[f"loss_{name}"] = sums.get(f"loss_{name}", 0.0) + value


def rows_to_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def show_progress(setting: str) -> bool:
    return setting == "always" or (setting == "auto" and sys.stderr.isatty())


def match_temperature(run: Mapping, matched_dump: str | Path) -> dict:
    """A temperature control's run with its temperature fixed at the end-of-training temperature recorded in
    ``matched_dump``, the matched method's run with the same experiment and seed."""
    with np.load(matched_dump) as dump:
        if "temperature" not in dump.files:
            raise ExplainedError(f"{matched_dump}: no 'temperature' array to match; re-run its training")
        tau = float(dump["temperature"])
    temperature = {**run["method"]["temperature"], "learnable": False, "init": tau, "match": None}
    return {
        **run,
        "method": {
            **run["method"],
            "temperature": temperature,
            "matched_temperature": {"method": run["method"]["temperature"]["match"], "tau": tau},
        },
    }


def train_run(
    run: Mapping,
    data_dir: str | Path,
    model_path: str | Path,
    log_path: str | Path,
    seed: int,
    embeddings_path: str | Path | None = None,
    keep_checkpoint: bool = False,
) -> list[dict]:
    """Train one run and write ``model_path``, ``log_path`` and (if given) the test-split
    ``embeddings_path`` (modgap.training.encode.embedding_dump); returns the epoch log.

    A checkpoint beside ``model_path`` (every ``train.checkpoint_every`` epochs and after
    the last) lets a killed run resume; it is removed once the run has finished unless
    ``keep_checkpoint``.
    """
    trainer = Trainer(run, data_dir, Path(model_path).parent, seed)
    log.info(
        "training %s / %s, seed %d on %s (CPU kernels: %s): %d parameters, %d steps per epoch",
        run["experiment"],
        run["method_name"],
        seed,
        trainer.device,
        torch.backends.cpu.get_cpu_capability(),
        sum(p.numel() for p in trainer.model.parameters()),
        trainer.steps_per_epoch,
    )
    trainer.fit(progress=show_progress(run["train"]["progress"]))
    trainer.save(model_path, log_path, embeddings_path)
    if not keep_checkpoint:
        remove_resume_state(Path(model_path).parent)
    return trainer.log_rows
