"""Conda environments and profiles agree with pyproject.toml and with what Snakemake expects."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")
# Dependencies of the process that runs Snakemake itself, not of the jobs' environments.
WORKFLOW_RUNNER = {"snakemake", "snakemake-executor-plugin-slurm"}
# What the analysis jobs (metrics, tables, figures, claims) import; they never load torch.
ANALYSIS = {
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "pyyaml",
    "jsonschema",
    "threadpoolctl",
    "numba",
}


def normalise(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.fixture(scope="module")
def project_pins(repo) -> dict[str, str]:
    """The base dependencies' pins, with the models extra's (the training environment embeds with them too)."""
    with open(repo / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["models"]
    pins = {}
    for entry in dependencies:
        match = PIN.match(entry)
        assert match, f"pyproject.toml: '{entry}' is not pinned with =="
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def env_pins(path) -> tuple[dict, dict[str, str]]:
    with open(path) as handle:
        env = yaml.safe_load(handle)
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = {}
    for entry in pip:
        match = PIN.match(entry)
        assert match, f"{path.name}: pip entry '{entry}' is not pinned with =="
        pins[normalise(match.group(1))] = match.group(2)
    return env, pins


@pytest.mark.parametrize("name", ["train", "analysis"])
def test_environments_use_conda_forge_only(repo, name):
    env, _ = env_pins(repo / "envs" / f"{name}.yaml")
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    assert "python=3.11" in env["dependencies"]
    assert not (repo / "envs" / f"{name}.post-deploy.sh").exists()  # jobs import this checkout's package


def test_train_environment_matches_pyproject(repo, project_pins):
    _, pins = env_pins(repo / "envs" / "train.yaml")
    assert pins == {k: v for k, v in project_pins.items() if k not in WORKFLOW_RUNNER}


def test_analysis_environment_matches_pyproject(repo, project_pins):
    _, pins = env_pins(repo / "envs" / "analysis.yaml")
    assert set(pins) == ANALYSIS
    assert pins == {k: project_pins[k] for k in ANALYSIS}


def test_every_rule_that_runs_code_names_a_conda_environment(repo):
    for rules in (repo / "workflow" / "rules").glob("*.smk"):
        for block in rules.read_text().split("\nrule ")[1:]:
            if "    script:\n" in block or "    shell:\n" in block:
                assert "    conda:\n" in block, f"{rules.name}: rule {block.split(':')[0]}"


def test_slurm_profile_requests_gpus_for_training(repo):
    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    for rule in ("train",):
        resources = profile["set-resources"][rule]
        assert resources["gpu"] == 1 and resources["cpus_per_gpu"] > 0
        assert "attempt" in str(resources["mem_mb"])  # more memory on a retry
    assert profile["retries"] >= 1
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(profile["default-resources"])


def test_default_profile_caps_gpu_jobs_without_set_resources(repo):
    profile = yaml.safe_load((repo / "profiles" / "default" / "config.yaml").read_text())
    assert profile["resources"] == ["gpu=1"]
    assert "set-resources" not in profile  # it would replace a user profile's set-resources


def test_analysis_jobs_never_import_torch(repo):
    """Every module an analysis job's script imports loads without torch: the analysis environment has none."""
    modules = set()
    for rules in (repo / "workflow" / "rules").glob("*.smk"):
        for block in rules.read_text().split("\nrule ")[1:]:
            script = re.search(r'    script:\n\s+"\.\./scripts/([\w.]+)"', block)
            if script and "ANALYSIS_ENV" in block:
                source = (repo / "workflow" / "scripts" / script.group(1)).read_text()
                modules |= set(re.findall(r"^from (modgap[\w.]*) import", source, flags=re.MULTILINE))
                modules |= set(re.findall(r"^import (modgap[\w.]*)", source, flags=re.MULTILINE))
    assert "modgap.metrics.per_run" in modules  # the metrics job, which runs k-means and the kNN
    imports = "; ".join(f"import {module}" for module in sorted(modules))
    check = f"import sys; {imports}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=repo / "src")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
