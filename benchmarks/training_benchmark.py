"""Benchmark: training throughput of the default study's runs against the machine's matmul peak.

    python benchmarks/training_benchmark.py [--data results/data/embedded] [--steps 60] [--threads 1]

Needs the prepared embedded data set (``snakemake --cores all results/data/embedded``).
For each experiment of config.yaml and a few methods it times training steps
(forward, loss, backward, optimiser) on real batches, counts their floating-point
operations with torch's FlopCounterMode, and prints samples/s and achieved GFLOP/s
beside the fp32 matrix-multiply throughput measured on the same threads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from modgap.config import load_config
from modgap.plan import resolve_run
from modgap.train import Trainer

REPO = Path(__file__).resolve().parents[1]


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """fp32 GFLOP/s of a large square matrix product on the current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def step_function(trainer: Trainer):
    """One optimiser step on the trainer's next batch, as train_epoch takes it."""
    data, options = trainer.train_data, trainer.options
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(data.size, generator=generator)
    captions = data.caption_choice(generator) if "text" in data.modalities else None
    partners = data.partner_choice(generator) if options["resample_pairs"] else None
    batch_size, steps = options["batch_size"], trainer.steps_per_epoch
    position = [0]

    def step():
        start = (position[0] % steps) * batch_size
        position[0] += 1
        batch = data.batch(order[start : start + batch_size], captions, partners)
        embeddings = trainer.model(batch.inputs)
        total, _ = trainer.loss(embeddings, 0, options["epochs"], batch.sentences, batch.labels)
        trainer.optimizer.zero_grad(set_to_none=True)
        total.backward()
        trainer.optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "results" / "data" / "embedded")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="as a training job gets from Snakemake")
    parser.add_argument("--methods", nargs="+", help="of those each experiment trains (default: all of them)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    config = load_config(REPO / "config.yaml")
    peak = matmul_peak()
    print(f"fp32 matmul (1024 x 1024) on {arguments.threads} thread(s): {peak:.0f} GFLOP/s")
    for experiment in config["experiments"]:
        for method in [m for m in experiment["methods"] if arguments.methods is None or m in arguments.methods]:
            run = resolve_run(config, experiment["name"], method)
            trainer = Trainer(run, arguments.data, Path("/nonexistent"), seed=0)
            step = step_function(trainer)
            with FlopCounterMode(display=False) as counter:
                step()
            flops = counter.get_total_flops()
            for _ in range(5):  # warm-up
                step()
            started = time.perf_counter()
            for _ in range(arguments.steps):
                step()
            seconds = (time.perf_counter() - started) / arguments.steps
            batch = run["train"]["batch_size"]
            achieved = flops / seconds / 1e9
            epoch = seconds * trainer.steps_per_epoch
            print(
                f"{experiment['name']:<28} {method:<10} {1000 * seconds:6.2f} ms/step  {batch / seconds:7.0f} samples/s  "
                f"{flops / 1e9:5.2f} GFLOP/step  {achieved:5.1f} GFLOP/s ({100 * achieved / peak:4.1f} % of matmul)  "
                f"{epoch:5.2f} s/epoch"
            )


if __name__ == "__main__":
    main()
