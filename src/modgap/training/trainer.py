"""Training of one (experiment, method, seed) run, with per-epoch logs, checkpoints, resume, and the
test-split embedding dump (the training loop itself: modgap.training.loop).

Randomness is derived from (seed, epoch) at every epoch start (batch order,
caption choice, dropout), so a run resumed from an epoch-boundary checkpoint
continues exactly as the uninterrupted run would have on the CPU. The batch
order and caption choice depend on the seed only, and the encoder's components
are seeded by name (modgap.training.models): methods trained with one seed see the same
batches from the same initial weights, which the claims check pairs them by.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import logging
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
from modgap.metrics import measures
from modgap.runtime import select_device
from modgap.training.encode import embed_split, embedding_dump
from modgap.training.inputs import Batch, SplitInputs
from modgap.training.loop import BudgetLadder
from modgap.training.losses import MethodLoss
from modgap.training.model_files import load_weights_only, save_trained
from modgap.training.models import build_encoder
from modgap.training.schedules import annealing_plan

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


def validation_metrics(embeddings: Mapping[str, np.ndarray], labels: np.ndarray, level: str) -> dict[str, float]:
    gaps = measures.gap_metrics(embeddings)
    recalls = measures.retrieval_metrics(embeddings, labels, level, ks=(1,))
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


class Trainer(BudgetLadder):
    """Everything one run holds: data, model, objective, optimiser, its annealing plan, and its files (the
    training loop: ``modgap.training.loop.BudgetLadder``)."""

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
        self.reset_progress()
        self.build()

    def reset_progress(self) -> None:
        """At the start of the plan: no epoch logged, no budget kept."""
        self.log_rows: list[dict] = []
        self.finished: list[int] = []  # budgets whose annealed state is kept
        self.temperatures: dict[int, float] = {}  # budget -> temperature of its annealed state
        self.trunk, self.start_epoch = 0, 0

    @property
    def members(self) -> list[Trainer]:
        """The seeds this trainer trains: its own."""
        return [self]

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

    def join_batches(self, batches: list[Batch]) -> Batch:
        return batches[0]

    def step_losses(self, batch: Batch, position: float, horizon: int) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss on ``batch`` at the schedule's ``position`` (fractional epoch), and its unweighted terms."""
        with self.autocast():
            embeddings = self.forward(batch.inputs)
        return self.loss(embeddings, position, horizon, batch.sentences, batch.labels)

    def sync_members(self) -> None:
        """Nothing to do: the trainer's model is its own."""

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
    return fit_and_save(trainer, [(model_path, log_path, embeddings_path)], keep_checkpoint)[0]


def fit_and_save(
    trainer: BudgetLadder, paths: Sequence[tuple[str | Path, str | Path, str | Path | None]], keep_checkpoint: bool
) -> list[list[dict]]:
    """Train every seed of ``trainer`` to the end of its plan and write each seed's files, ``paths``: one
    (model, epoch log, embeddings or None) per seed, as ``Trainer.save`` takes them; the resume state goes
    unless ``keep_checkpoint``. Returns every seed's epoch log."""
    run, lead, seeds = trainer.run, trainer.members[0], [member.seed for member in trainer.members]
    log.info(
        "training %s / %s, %s on %s (CPU kernels: %s): %d parameters, %d steps per epoch",
        run["experiment"],
        run["method_name"],
        f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds} stacked",
        lead.device,
        torch.backends.cpu.get_cpu_capability(),
        sum(p.numel() for p in lead.model.parameters()),
        trainer.steps_per_epoch,
    )
    trainer.fit(progress=show_progress(run["train"]["progress"]))
    trainer.sync_members()
    for member, (model_path, log_path, embeddings_path) in zip(trainer.members, paths):
        member.save(model_path, log_path, embeddings_path)
    if not keep_checkpoint:
        for member in trainer.members:
            remove_resume_state(member.output_dir)
    return [member.log_rows for member in trainer.members]
