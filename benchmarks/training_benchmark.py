"""Benchmark: training throughput of a study's towers against the machine's matmul peak.

    python benchmarks/training_benchmark.py [--data results/data/embedded] [--steps 60] [--repeats 3] [--threads 1]
        [--configfile PRESET] [--experiments NAME ...] [--methods NAME ...] [--device cpu|cuda] [--amp]
        [--batch-size N] [--batch-sizes 32 64 128 256] [--seeds 5] [--no-start-cost] [--json FILE]

Needs a prepared data set (``snakemake --cores all results/data/embedded``). It prints, on the threads a
training job gets:

- the start cost of a job: a fresh interpreter importing ``modgap.training.trainer`` and building an optimiser (wall
  seconds, best of three, beside a bare interpreter's), and the import time ``python -X importtime`` puts on
  torch, on torch._dynamo (which torch.optim imports on first use) and on modgap.training.trainer;
- the matmul peak: a 2048 x 2048 fp32 product in torch and in numpy, and in bf16 where the device has it;
- per experiment and method (the experiments of config.yaml, or of ``--configfile`` merged over it): the time
  of a training step (forward, loss, backward, optimiser, on real batches), steps/s, samples/s, the step's
  floating-point operations counted from the model by torch's FlopCounterMode (forward and backward), the
  achieved GFLOP/s and its share of the fp32 peak, and the validation an epoch ends with;
- the step time fitted over ``--batch-sizes`` as a fixed cost per step plus a cost per sample, the share of
  the step the fixed cost takes at the run's batch size, and the speed-up that removing it entirely would
  bring (the bound on what fewer Python operations or batched seeds can give);
- with ``--seeds S``: S seeds as one stacked model (stacked_seeds.py, beside this script) against S
  sequential steps.

``--json FILE`` also writes the step figures, one record per experiment and method (benchmarks/gpu_check.sh
reads them).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from modgap.study.config import DEFAULT_CONFIG, load_config_files
from modgap.study.plan import resolve_run
from modgap.training.loop import BudgetLadder
from modgap.training.trainer import Trainer

from stacked_seeds import SeedsTrainer

REPO = Path(__file__).resolve().parents[1]
MATMUL_SIZE = 2048


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(function, repeats: int = 5) -> float:
    """The shortest of ``repeats`` wall times of ``function()``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def torch_matmul_peak(device: torch.device, dtype: torch.dtype, size: int = MATMUL_SIZE, repeats: int = 10) -> float:
    """GFLOP/s of a square ``dtype`` matrix product on ``device`` (the current threads on the CPU)."""
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))

    def products():
        for _ in range(repeats):
            a @ b
        synchronize(device)

    products()  # warm-up: thread pools, kernels chosen
    return 2 * size**3 * repeats / best_of(products, 3) / 1e9


def numpy_matmul_peak(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """GFLOP/s of numpy's fp32 square matrix product (the figure the docs quote beside timings)."""
    generator = np.random.default_rng(0)
    a, b = (generator.standard_normal((size, size), dtype=np.float32) for _ in range(2))

    def products():
        for _ in range(repeats):
            a @ b

    products()
    return 2 * size**3 * repeats / best_of(products, 3) / 1e9


FIRST_OPTIMISER = "import modgap.training.trainer, torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)])"


def start_cost() -> dict[str, float]:
    """Seconds a training job spends before its first step: a bare interpreter, one importing modgap.training.trainer,
    one also building an optimiser (best of three each: torch.optim imports torch._dynamo on first use),
    and the import times ``-X importtime`` puts on torch, torch._dynamo and modgap.training.trainer with what it imports."""
    bare = min(_wall([sys.executable, "-c", "pass"]) for _ in range(3))
    importing = min(_wall([sys.executable, "-c", "import modgap.training.trainer"]) for _ in range(3))
    optimiser = min(_wall([sys.executable, "-c", FIRST_OPTIMISER]) for _ in range(3))
    report = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", FIRST_OPTIMISER], capture_output=True, text=True, check=True
    ).stderr
    cumulative = {}  # module -> microseconds of its import, with everything it imported first
    for total, module in re.findall(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)", report):
        cumulative.setdefault(module, int(total))
    return {"bare": bare, "import": importing, "optimiser": optimiser, "torch": cumulative["torch"] / 1e6,
            "dynamo": cumulative["torch._dynamo"] / 1e6, "modgap": cumulative["modgap.training.trainer"] / 1e6}  # fmt: skip


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def step_timer(trainer: BudgetLadder, steps: int, repeats: int) -> tuple[float, int]:
    """Seconds per optimiser step of ``trainer`` (one seed or stacked seeds) on its first epoch's batches (best
    of ``repeats`` runs of ``steps`` steps: the least disturbed by other work on the machine), and the FLOPs of
    one step (FlopCounterMode: matrix products, forward and backward)."""
    draws = [member.epoch_draws(0) for member in trainer.members]
    per_epoch, horizon = trainer.steps_per_epoch, trainer.options["epochs"]

    def run_steps():
        for step in range(steps):
            trainer.train_step(trainer.step_batch(draws, step % per_epoch), 0, step % per_epoch, horizon)
        synchronize(trainer.members[0].device)

    with FlopCounterMode(display=False) as counter:
        trainer.train_step(trainer.step_batch(draws, 0), 0, 0, horizon)
    run_steps()  # warm-up
    return best_of(run_steps, repeats) / steps, counter.get_total_flops()


def validation_seconds(trainer: Trainer) -> float:
    """Seconds of the validation an epoch ends with (embeddings, loss and metrics of the validation split;
    best of three)."""
    horizon = trainer.options["epochs"]
    trainer.epoch_row(0, None, horizon, {"loss": 0.0}, trainer.options["lr"], 1.0)  # warm-up
    return best_of(lambda: trainer.epoch_row(0, None, horizon, {"loss": 0.0}, trainer.options["lr"], 1.0), 3)


def with_options(run: dict, **train) -> dict:
    """``run`` with ``train`` options changed; a temperature control's temperature, which a job reads from
    its matched run, fixed at its starting value (the step costs the same)."""
    run = copy.deepcopy(run)
    run["train"].update(train)
    temperature = run["method"]["temperature"]
    if temperature.get("match"):
        run["method"]["temperature"] = {**temperature, "learnable": False, "match": None}
    return run


def fit_fixed_and_per_sample(batch_sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """Least-squares fit of step time = fixed + per_sample x batch size; returns (fixed, per_sample)."""
    per_sample, fixed = np.polyfit(np.asarray(batch_sizes, float), np.asarray(seconds), 1)
    return float(fixed), float(per_sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "results" / "data" / "embedded")
    parser.add_argument("--configfile", type=Path, action="append", default=[], help="merged over config.yaml")
    parser.add_argument("--experiments", nargs="+", help="of the study (default: all of them)")
    parser.add_argument("--methods", nargs="+", help="of those each experiment trains (default: all of them)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of which the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="as a training job gets from Snakemake")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (train.amp)")
    parser.add_argument("--batch-size", type=int, help="instead of the run's")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 64, 128, 256],
                        help="for the fit of fixed and per-sample cost (none: no fit)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=0, help="also time this many seeds as one stacked model")
    parser.add_argument("--no-start-cost", action="store_true", help="skip timing fresh interpreters")
    parser.add_argument("--json", type=Path, help="also write the step figures here")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    device = torch.device(arguments.device)

    if not arguments.no_start_cost:
        cost = start_cost()
        print(
            f"start of a job: bare interpreter {cost['bare']:.2f} s, importing modgap.training.trainer {cost['import']:.2f} s, "
            f"and building the first optimiser {cost['optimiser']:.2f} s (-X importtime: torch {cost['torch']:.2f} s, "
            f"modgap.training.trainer with all it imports {cost['modgap']:.2f} s, torch._dynamo {cost['dynamo']:.2f} s)"
        )
    peak = torch_matmul_peak(device, torch.float32)
    bf16 = torch_matmul_peak(device, torch.bfloat16)
    numpy_peak = numpy_matmul_peak() if device.type == "cpu" else float("nan")
    print(
        f"matmul {MATMUL_SIZE} x {MATMUL_SIZE} on {device.type} ({arguments.threads} CPU thread(s)): torch fp32 "
        f"{peak:.0f} GFLOP/s, torch bf16 {bf16:.0f} GFLOP/s, numpy fp32 {numpy_peak:.0f} GFLOP/s"
    )

    study = load_config_files([DEFAULT_CONFIG, *arguments.configfile])
    overrides = {"device": arguments.device, "amp": arguments.amp, "progress": "never"}
    if arguments.batch_size:
        overrides["batch_size"] = arguments.batch_size
    header = (
        f"{'experiment':<28} {'method':<14} {'batch':>5} {'ms/step':>8} {'steps/s':>8} {'samples/s':>9} "
        f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'of fp32 peak':>12}"
    )
    print(header)
    fits, records = [], []
    for experiment in study["experiments"]:
        if arguments.experiments and experiment["name"] not in arguments.experiments:
            continue
        for method in experiment["methods"]:
            if arguments.methods and method not in arguments.methods:
                continue
            run = with_options(resolve_run(study, experiment["name"], method), **overrides)
            batch = run["train"]["batch_size"]
            trainer = Trainer(run, arguments.data, Path("/nonexistent"), seed=0)
            seconds, flops = step_timer(trainer, arguments.steps, arguments.repeats)
            validation = validation_seconds(trainer)
            achieved = flops / seconds / 1e9
            print(
                f"{experiment['name']:<28} {method:<14} {batch:>5} {1000 * seconds:>8.2f} {1 / seconds:>8.1f} "
                f"{batch / seconds:>9.0f} {flops / 1e9:>10.3f} {achieved:>8.1f} {100 * achieved / peak:>11.1f}%  "
                f"validation {1000 * validation:.0f} ms per epoch "
                f"({100 * validation / (seconds * trainer.steps_per_epoch):.0f} % of an epoch's steps)"
            )
            record = {"experiment": experiment["name"], "method": method, "device": arguments.device,
                      "amp": arguments.amp, "batch": batch, "steps_per_s": 1 / seconds, "samples_per_s": batch / seconds,
                      "gflop_per_step": flops / 1e9, "gflop_per_s": achieved, "fp32_peak_gflop_per_s": peak}  # fmt: skip
            records.append(record)
            if arguments.batch_sizes:
                times = []
                for size in arguments.batch_sizes:
                    trainer = Trainer(with_options(run, batch_size=size), arguments.data, Path("/nonexistent"), 0)
                    times.append(step_timer(trainer, arguments.steps, arguments.repeats)[0])
                fixed, per_sample = fit_fixed_and_per_sample(arguments.batch_sizes, times)
                fits.append((experiment["name"], method, batch, times, fixed, per_sample, flops / batch))
            if arguments.seeds > 1:
                stacked = SeedsTrainer(run, arguments.data, [Path("/nonexistent")] * arguments.seeds,
                                       list(range(arguments.seeds)))  # fmt: skip
                batched_seconds = step_timer(stacked, arguments.steps, arguments.repeats)[0]
                record |= {
                    "seeds": arguments.seeds,
                    "batched_seeds_speedup": arguments.seeds * seconds / batched_seconds,
                }
                print(
                    f"{'':<28} {f'{arguments.seeds} seeds':<14} {batch:>5} {1000 * batched_seconds:>8.2f} ms per "
                    f"stacked step vs {1000 * arguments.seeds * seconds:.2f} ms for {arguments.seeds} sequential "
                    f"steps: {arguments.seeds * seconds / batched_seconds:.2f}x"
                )
    if arguments.json:
        arguments.json.write_text(json.dumps(records, indent=1))
    if fits:
        sizes = " ".join(f"{size:>6}" for size in arguments.batch_sizes)
        print(f"\nstep time over batch sizes {sizes} (ms), fitted as fixed + per-sample x batch:")
        for name, method, batch, times, fixed, per_sample, flops_per_sample in fits:
            at_batch = fixed + per_sample * batch
            print(
                f"{name:<28} {method:<14} {' '.join(f'{1000 * t:>6.2f}' for t in times)}  fixed {1000 * fixed:.2f} "
                f"ms + {1e6 * per_sample:.1f} us/sample ({flops_per_sample / per_sample / 1e9:.1f} GFLOP/s); at "
                f"batch {batch} the fixed cost is {100 * fixed / at_batch:.0f} % of a step: without it at most "
                f"{at_batch / (per_sample * batch):.2f}x"
            )


if __name__ == "__main__":
    main()
