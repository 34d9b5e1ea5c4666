"""The Snakemake workflow end to end on a tiny configuration, in a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modgap.data.format import read_manifest, verify_checksums

TINY = {
    "seeds": [0],
    "datasets": {"embedded": {"source": "embedded", "n_samples": 60}},
}


def snakemake(repo: Path, workdir: Path, config: dict, *args: str, check: bool = True):
    configfile = workdir / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def tiny_run(repo, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    snakemake(repo, workdir, TINY)
    return workdir


@pytest.mark.slow
def test_default_target_prepares_the_data(tiny_run):
    data = tiny_run / "results" / "data" / "embedded"
    manifest = read_manifest(data)
    assert sum(s["size"] for s in manifest["splits"].values()) == 60
    assert verify_checksums(data) == []
    assert (tiny_run / "results" / "logs" / "prepare" / "embedded.log").stat().st_size > 0
    assert (tiny_run / "results" / "benchmarks" / "prepare" / "embedded.tsv").is_file()


@pytest.mark.slow
def test_second_run_has_nothing_to_do(repo, tiny_run):
    result = snakemake(repo, tiny_run, TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"seeds": []}, "config key 'seeds': [] should be non-empty"),
        ({"train": {"epochs": "many"}}, "config key 'train.epochs': 'many' is not of type 'integer'"),
        ({"experiments": [{"name": "x", "dataset": "embedded", "modalities": ["image", "odour"]}]}, "odour"),
        (
            {"experiments": [{"name": "x", "dataset": "embedded", "modalities": ["image", "text"], "methods": ["sam"]}]},
            "unknown method 'sam'",
        ),
        ({"datasets": {"embedded": {"source": "embedded", "n_sample": 5}}}, "('n_sample' was unexpected)"),
    ],
)
def test_broken_config_fails_before_any_job(repo, tmp_path, broken, message):
    result = snakemake(repo, tmp_path, {**TINY, **broken}, check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
