"""benchmarks/gpu_check.sh in its CPU mode, so that the GPU check cannot rot while no GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_the_cpu(repo, tmp_path):
    """Every step runs (the GPU tests skip themselves), the step benchmarks write their figures, and the
    tiny study run twice on the CPU agrees exactly with itself."""
    environment = {**os.environ, "PYTHONPATH": str(repo / "src")}
    result = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu_check.sh"), "--cpu", "--python", sys.executable, "--out", str(tmp_path)],
        capture_output=True, text=True, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    steps = dict(line.split("\t")[:2] for line in (tmp_path / "steps.tsv").read_text().splitlines())
    assert steps.pop("install").startswith("skipped")
    assert steps == dict.fromkeys(
        ["gpu_tests", "data", "default_towers", "paper_towers", "study_reference", "study_device", "study_agreement"],
        "ok",
    )
    assert "skipped" in (tmp_path / "gpu_tests.log").read_text()  # no CUDA here: every GPU test skips itself
    default = json.loads((tmp_path / "default_towers.json").read_text())
    paper = json.loads((tmp_path / "paper_towers.json").read_text())
    assert [r["experiment"] for r in default] == ["embedded_image_text", "embedded_image_audio_text"]
    assert [r["experiment"] for r in paper] == ["cifar10", "cifar10_rn50"] and all(r["amp"] for r in paper)
    assert all(r["steps_per_s"] > 0 and r["gflop_per_step"] > 0 for r in default + paper)
    assert all(r["seeds"] == 2 and r["batched_seeds_speedup"] > 0 for r in default)
    agreement = json.loads((tmp_path / "study_agreement.agreement.json").read_text())
    assert agreement["agree"] and agreement["runs"] > 0 and agreement["tolerance"] == {"fraction": 0.0, "percent": 0.0}
    summary = result.stdout
    assert "cifar10_rn50 / ours" in summary and "steps/s" in summary and "largest percent difference" in summary
