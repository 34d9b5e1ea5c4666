"""Several seeds of one (experiment, method) trained in one process, as one model with a leading seed axis.

Every parameter, buffer and optimiser state of the seeds' encoders and objectives is stacked along a first
axis of length S, and each step runs all seeds' models and losses at once under ``torch.func.vmap``: one
batched matrix product where S sequential runs have S small ones, so the per-operation cost of a step is
paid once for all seeds. Each seed keeps what makes it its run: its initial weights (modgap.training.models seeds
every component by name), its batch order, captions and partners (``Trainer.epoch_draws``), its
temperature, its epoch log and its files. The seeds go through the run's annealing plan in lockstep
(``BudgetLadder``) and each writes exactly the files its sequential run writes (model, epoch log,
embeddings, checkpoints in the same format), equal to them within float tolerance: a batched product adds
in another order than a single one.

What ``training_benchmark.py --seeds S`` and the GPU check time against one seed's steps, outside the package:
on the CPU it does not pay against the workflow's one job per seed (docs/workflow.md, "Where the time goes"),
and no rule or command uses it. It may pay where a step's time is per-operation overhead rather than
arithmetic, as on a GPU with the small towers of the embedded study (docs/scale.md, "Batched seeds"). Import it
with ``benchmarks/`` on ``sys.path`` (the benchmarks run as scripts from there).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from modgap.runtime import select_device
from modgap.training.inputs import Batch, stack_batches
from modgap.training.loop import BudgetLadder
from modgap.training.trainer import RunInputs, Trainer, fit_and_save, make_optimizer, remove_resume_state

log = logging.getLogger(__name__)


def batching_obstacles(run: Mapping) -> list[str]:
    """What keeps a run's seeds from training as one stacked model with the sequential runs' results."""
    obstacles = []
    if run["model"].get("dropout", 0.0) > 0:
        obstacles.append("model.dropout > 0 (each seed would draw other dropout masks than its sequential run)")
    if run["train"]["grad_clip"]:
        obstacles.append("train.grad_clip (the gradient norm is per seed)")
    if run["train"]["compile"]:
        obstacles.append("train.compile (it compiles one seed's model)")
    return obstacles


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """A copy of ``modules[0]`` whose every parameter and buffer is the stack of the modules' own, along a
    new first axis."""
    stacked = copy.deepcopy(modules[0])
    for name, parameter in list(stacked.named_parameters()):
        owner, attribute = _owner(stacked, name)
        values = torch.stack([module.get_parameter(name).detach() for module in modules])
        setattr(owner, attribute, nn.Parameter(values, requires_grad=parameter.requires_grad))
    for name, _ in list(stacked.named_buffers()):
        owner, attribute = _owner(stacked, name)
        setattr(owner, attribute, torch.stack([module.get_buffer(name) for module in modules]))
    return stacked


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attribute = name.rpartition(".")
    return module.get_submodule(path), attribute


def stack_optimizer_states(states: Sequence[Mapping]) -> dict:
    """One optimiser state dict over stacked parameters from the seeds' own (same parameter order; the step
    count, a scalar, is every seed's)."""
    stacked = {}
    for index, state in states[0]["state"].items():
        stacked[index] = {
            key: value if key == "step" else torch.stack([s["state"][index][key] for s in states])
            for key, value in state.items()
        }
    return {"state": stacked, "param_groups": copy.deepcopy(states[0]["param_groups"])}


def seed_optimizer_state(stacked: Mapping, seed_index: int) -> dict:
    """The optimiser state dict of one seed, out of one over stacked parameters."""
    state = {
        index: {key: value.clone() if key == "step" else value[seed_index].clone() for key, value in entry.items()}
        for index, entry in stacked["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(stacked["param_groups"])}


def _beyond_the_temperature(run: Mapping) -> dict:
    """A run without the starting value of its temperature (a temperature control's differs by seed)."""
    method = {key: value for key, value in run["method"].items() if key != "matched_temperature"}
    method["temperature"] = {key: value for key, value in method["temperature"].items() if key != "init"}
    return {**run, "method": method}


class SeedsTrainer(BudgetLadder):
    """The seeds of one run as one stacked model: ``members`` are the seeds' own ``Trainer``s (their data,
    weights between steps, logs and files), ``model``, ``loss`` and ``optimizer`` the stacked ones that
    train. ``runs``: the run of every seed, or one for all; they may differ in the temperature's starting
    value alone, as a temperature control's do (modgap.training.trainer.match_temperature)."""

    def __init__(
        self,
        runs: Mapping | Sequence[Mapping],
        data_dir: str | Path,
        output_dirs: Sequence[str | Path],
        seeds: Sequence[int],
    ):
        runs = [runs] * len(seeds) if isinstance(runs, Mapping) else list(runs)
        if not len(seeds) == len(output_dirs) == len(runs) or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {list(seeds)} need one run and one output folder each, and no seed twice")
        run = runs[0]
        if any(_beyond_the_temperature(other) != _beyond_the_temperature(run) for other in runs[1:]):
            raise ValueError(f"{run['method_name']}: the seeds' runs may differ in their starting temperature alone")
        obstacles = batching_obstacles(run)
        if obstacles:
            raise ValueError(f"{run['method_name']}: seeds cannot be batched with " + "; ".join(obstacles))
        self.run, self.options = run, run["train"]
        inputs = RunInputs(run, data_dir, select_device(self.options["device"]))
        self.members = [Trainer(r, data_dir, folder, seed, inputs) for r, seed, folder in zip(runs, seeds, output_dirs)]
        tracking = [
            type(m).__name__ for m in self.members[0].model.modules() if getattr(m, "running_mean", None) is not None
        ]
        if tracking:  # vmap cannot update a running mean in place for every seed
            raise ValueError(
                f"{run['method_name']}: seeds cannot be batched with {tracking[0]} layers (running statistics)"
            )
        lead = self.members[0]
        self.trunks, self.steps_per_epoch, self.warmup_steps = lead.trunks, lead.steps_per_epoch, lead.warmup_steps
        self.trunk, self.start_epoch = 0, 0
        self.stack()

    @property
    def finished(self) -> list[int]:
        return self.members[0].finished

    # -- the stacked model and the members ------------------------------------------------------
    def stack(self) -> None:
        """The stacked model, objective and optimiser from the members' current weights and optimiser
        states."""
        self.model = stack_modules([member.model for member in self.members])
        self.loss = stack_modules([member.loss for member in self.members])
        self.optimizer = make_optimizer([self.model, self.loss], self.options)
        self.optimizer.load_state_dict(stack_optimizer_states([m.optimizer.state_dict() for m in self.members]))
        # the stacked weights as vmap takes them (updated in place from here on), and every seed's losses
        self.states = tuple({**dict(m.named_parameters()), **dict(m.named_buffers())} for m in (self.model, self.loss))
        self.seeds_losses = {
            sentences: vmap(self.one_seed_losses, in_dims=(0, 0, 0, 0 if sentences else None, 0, None, None))
            for sentences in (False, True)
        }

    def sync_members(self, optimizer: bool = False) -> None:
        """Copy every seed's slice of the stacked weights (and of the optimiser state) into its member."""
        model, loss = self.model.state_dict(), self.loss.state_dict()
        state = self.optimizer.state_dict() if optimizer else None
        for index, member in enumerate(self.members):
            member.model.load_state_dict({name: value[index] for name, value in model.items()})
            member.loss.load_state_dict({name: value[index] for name, value in loss.items()})
            if state is not None:
                member.optimizer.load_state_dict(seed_optimizer_state(state, index))

    def build(self) -> None:
        for member in self.members:
            member.build()
        self.stack()

    def resume(self) -> None:
        """Continue from the members' checkpoints where all stand at the same point of the plan; otherwise
        train every seed from its start."""
        resumed = [member.try_resume() for member in self.members]
        points = {(m.trunk, m.start_epoch, tuple(m.finished)) for m in self.members}
        if all(resumed) and len(points) == 1:
            self.trunk, self.start_epoch = self.members[0].trunk, self.members[0].start_epoch
            self.stack()
            return
        for member in self.members:
            remove_resume_state(member.output_dir)
        if not any(resumed):
            return  # every member stands at its start, as built and stacked
        log.warning("the seeds' checkpoints stand at different points of the plan: training every seed anew")
        for member in self.members:
            member.reset_progress()
        self.trunk, self.start_epoch = 0, 0
        self.build()

    def save_checkpoint(self, trunk: int = 0, epoch: int = 0) -> None:
        """Every seed's own checkpoint, as its sequential run writes it."""
        self.sync_members(optimizer=True)
        for member in self.members:
            member.save_checkpoint(trunk, epoch)

    def keep_budget(self, budget: int, snapshot: bool) -> None:
        self.sync_members()
        for member in self.members:
            member.keep_budget(budget, snapshot)

    # -- training -----------------------------------------------------------------------------
    def join_batches(self, batches: list[Batch]) -> Batch:
        return stack_batches(batches)

    def one_seed_losses(self, model_state, loss_state, inputs, sentences, labels, position: float, horizon: int):
        """One seed's loss and terms, from its slice of the stacked weights (``vmap`` maps it over the seeds)."""
        with self.members[0].autocast():
            embeddings = functional_call(self.model, model_state, (inputs,))
        return functional_call(self.loss, loss_state, (embeddings, position, horizon, sentences, labels))

    def step_losses(self, batch: Batch, position: float, horizon: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Every seed's total loss (S,) and unweighted terms (S,) on its own batch of the stacked ``batch``."""
        seeds_losses = self.seeds_losses[batch.sentences is not None]
        return seeds_losses(*self.states, batch.inputs, batch.sentences, batch.labels, position, horizon)


def train_seeds(
    runs: Mapping | Sequence[Mapping],
    data_dir: str | Path,
    seeds: Sequence[int],
    paths: Sequence[tuple[str | Path, str | Path, str | Path | None]],
    keep_checkpoint: bool = False,
) -> list[list[dict]]:
    """Train the ``seeds`` of one run as one stacked model and write each seed's files, ``paths``: one
    (model, epoch log, embeddings or None) per seed, as ``modgap.training.trainer.train_run`` writes them; returns
    every seed's epoch log. ``runs``: one for all seeds, or one per seed (see ``SeedsTrainer``). Each seed's
    checkpoint lies beside its model, as its sequential run's."""
    trainer = SeedsTrainer(runs, data_dir, [Path(model).parent for model, _, _ in paths], seeds)
    return fit_and_save(trainer, paths, keep_checkpoint)
