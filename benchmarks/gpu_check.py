"""The Python steps of benchmarks/gpu_check.sh: data, the tiny study's configuration, the comparison of the
study run on two devices, and the summary table.

    python benchmarks/gpu_check.py prepare DIR --samples N
    python benchmarks/gpu_check.py study-config FILE --device cuda|cpu
    python benchmarks/gpu_check.py compare CPU_WORKDIR OTHER_WORKDIR --json FILE [--exact]
    python benchmarks/gpu_check.py summary OUT_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import yaml

# The tiny study: both experiments' kinds of towers (an MLP trunk over patch, frame and token stems), two
# methods whose losses differ, two seeds, two epochs; small enough for a CI machine's CPU.
TINY_STUDY = {
    "seeds": [0, 1],
    "datasets": {"embedded": {"source": "embedded", "n_samples": 200, "captions_per_item": 2}},
    "experiments": [
        {"name": "triple", "dataset": "embedded", "modalities": ["image", "audio", "text"], "retrieval": "class",
         "methods": ["clip_lt", "ours"]},
    ],
    "model": {"trunk": "mlp", "width": 32, "depth": 1, "embed_dim": 16,
              "towers": {"image": {"kind": "patch", "patch_size": 7},
                         "audio": {"kind": "frames", "frames_per_token": 24, "pool_frames": 4},
                         "text": {"kind": "tokens"}}},
    "train": {"epochs": 2, "batch_size": 32, "progress": "never"},
    "evaluate": {"sweep_strengths": [0.0, 1.0], "kmeans_n_init": 2},
    "dose_response": {"experiment": None},
}  # fmt: skip
# How far the study's metrics may lie apart between a GPU and the CPU: the devices add in other orders, and
# two epochs carry those differences into the embeddings (about 1e-5) and from there into the metrics; a
# retrieval hit or a k-means assignment that flips moves a percentage by one item of the 40-item test split.
TOLERANCE = {"fraction": 0.01, "percent": 5.0}
PERCENT_METRICS = ("r1_", "r5_", "r10_", "tv_r", "ta_r", "v_measure", "homogeneity", "completeness", "nmi", "ari",
                   "knn_acc", "linear_probe")  # fmt: skip
KEYS = ("experiment", "method", "seed")


def prepare(arguments: argparse.Namespace) -> None:
    from modgap.data import prepare_dataset
    from modgap.study.config import load_config

    dataset = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["datasets"]["embedded"]
    prepare_dataset("embedded", {**dataset, "n_samples": arguments.samples}, arguments.directory)


def study_config(arguments: argparse.Namespace) -> None:
    config = {**TINY_STUDY, "train": {**TINY_STUDY["train"], "device": arguments.device}}
    arguments.file.write_text(yaml.safe_dump(config, sort_keys=False))


def _runs(workdir: Path) -> dict[tuple, dict]:
    with open(workdir / "results" / "tables" / "runs.csv") as handle:
        return {tuple(row[k] for k in KEYS): row for row in csv.DictReader(handle)}


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def compare(arguments: argparse.Namespace) -> int:
    """Every metric of every run of the study on the CPU against the other device's; exit status 1 where one
    lies beyond the tolerance (``--exact``: two runs on the same device must agree exactly)."""
    reference, other = _runs(arguments.cpu_workdir), _runs(arguments.other_workdir)
    if reference.keys() != other.keys():
        raise SystemExit(f"the two studies hold other runs: {sorted(reference)} vs {sorted(other)}")
    worst = {kind: (0.0, "none differs") for kind in TOLERANCE}
    for key, row in reference.items():
        for column, value in row.items():
            a, b = _number(value), _number(other[key][column])
            if column in KEYS or a is None or b is None or (math.isnan(a) and math.isnan(b)):
                continue
            kind = "percent" if column.startswith(PERCENT_METRICS) else "fraction"
            difference = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
            if difference > worst[kind][0]:
                worst[kind] = (difference, f"{column} of {'/'.join(key)}")
    tolerance = {kind: 0.0 for kind in TOLERANCE} if arguments.exact else TOLERANCE
    agree = all(worst[kind][0] <= tolerance[kind] for kind in worst)
    for kind, (difference, where) in worst.items():
        print(f"largest difference of a {kind} metric: {difference:.4g} ({where}; tolerance {tolerance[kind]})")
    result = {"runs": len(reference), "agree": agree, "tolerance": tolerance,
              "largest": {kind: {"difference": d, "where": w} for kind, (d, w) in worst.items()}}  # fmt: skip
    arguments.json.write_text(json.dumps(result, indent=1))
    return 0 if agree else 1


def summary(arguments: argparse.Namespace) -> None:
    """One table of every step the shell script ran (``steps.tsv``: step, status, seconds) with the figures
    its JSON files hold."""
    out = arguments.out
    rows = [("step", "status", "seconds", "figures")]
    with open(out / "steps.tsv") as handle:
        steps = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
    for step, status, seconds in steps:
        rows.append((step, status, seconds, ""))
        for record in _records(out / f"{step}.json"):
            figures = f"{record['steps_per_s']:.1f} steps/s, {record['samples_per_s']:.0f} samples/s"
            if "batched_seeds_speedup" in record:
                figures += f"; {record['seeds']} batched seeds {record['batched_seeds_speedup']:.2f}x sequential"
            amp = ", AMP" if record["amp"] else ""
            rows.append((f"  {record['experiment']} / {record['method']}", "", "",
                         f"batch {record['batch']} on {record['device']}{amp}: {figures}"))  # fmt: skip
        agreement = out / f"{step}.agreement.json"
        if agreement.is_file():
            result = json.loads(agreement.read_text())
            for kind, largest in result["largest"].items():
                rows.append((f"  largest {kind} difference", "", "",
                             f"{largest['difference']:.3g} ({largest['where']}; tolerance {result['tolerance'][kind]})"))  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("prepare", help="the embedded data set for the step benchmarks")
    command.add_argument("directory", type=Path)
    command.add_argument("--samples", type=int, default=1000)
    command.set_defaults(run=prepare)
    command = commands.add_parser("study-config", help="the tiny study's configuration file for a device")
    command.add_argument("file", type=Path)
    command.add_argument("--device", required=True, choices=["cpu", "cuda"])
    command.set_defaults(run=study_config)
    command = commands.add_parser("compare", help="the tiny study's metrics on the CPU against another device's")
    command.add_argument("cpu_workdir", type=Path)
    command.add_argument("other_workdir", type=Path)
    command.add_argument("--json", type=Path, required=True)
    command.add_argument("--exact", action="store_true", help="both ran on one device: no difference allowed")
    command.set_defaults(run=compare)
    command = commands.add_parser("summary", help="the one table at the end")
    command.add_argument("out", type=Path)
    command.set_defaults(run=summary)
    arguments = parser.parse_args()
    return arguments.run(arguments) or 0


if __name__ == "__main__":
    raise SystemExit(main())
