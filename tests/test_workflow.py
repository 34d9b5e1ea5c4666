"""The Snakemake workflow end to end on a tiny configuration, in a temporary directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modgap.data.format import read_manifest, verify_checksums

TINY = {
    "seeds": [0],
    "datasets": {"embedded": {"source": "embedded", "n_samples": 120}},
    "experiments": [
        {"name": "pair", "dataset": "embedded", "modalities": ["image", "text"],
         "methods": ["clip_lt", "ours", "alignclip"]},
        {"name": "triple", "dataset": "embedded", "modalities": ["image", "audio", "text"],
         "methods": ["clip_lt", "ours"], "paper_reference": "avmnist"},
    ],
    "model": {"width": 16, "depth": 1, "heads": 2, "embed_dim": 8},
    "train": {"epochs": 2, "batch_size": 32, "progress": "never"},
    "evaluate": {"sweep_strengths": [0.0, 1.0], "kmeans_n_init": 2},
}  # fmt: skip
FIGURES = {
    "pair": ["latent_2d", "cosine_histograms", "training_curves", "gap_sweep"],
    "triple": ["latent_2d", "latent_3d", "cosine_histograms", "training_curves", "gap_sweep"],
}


def snakemake(snakefile: Path, workdir: Path, config: dict, *args: str, check: bool = True):
    configfile = workdir / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned_jobs(result) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    lines = (result.stdout + result.stderr).splitlines()
    if not any(line.startswith("Job stats:") for line in lines):
        return {}
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def checkout(repo, tmp_path_factory) -> Path:
    """A copy of the workflow and package sources, so tests may edit code without touching the repository."""
    copy = tmp_path_factory.mktemp("checkout")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, copy / name)
    for name in ("workflow", "src", "envs"):
        shutil.copytree(repo / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def study(checkout, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("study")
    snakemake(checkout / "Snakefile", workdir, TINY)
    return workdir


@pytest.mark.slow
def test_study_prepares_trains_evaluates_and_plots(study):
    data = study / "results" / "data" / "embedded"
    assert sum(s["size"] for s in read_manifest(data)["splits"].values()) == 120
    assert verify_checksums(data) == []
    table = pd.read_csv(study / "results" / "tables" / "main.csv")
    assert list(zip(table["experiment"], table["method"])) == [
        ("pair", "clip_lt"), ("pair", "ours"), ("pair", "alignclip"), ("pair", "posthoc"),
        ("triple", "clip_lt"), ("triple", "ours"), ("triple", "posthoc"),
    ]  # fmt: skip
    assert (table["n_seeds"] == 1).all()
    for column in ("gap", "gap_std", "tv_r1", "v_measure", "knn_acc", "r1_text_audio"):
        assert column in table, column
    gaps = table.set_index(["experiment", "method"])["gap"]
    for experiment in ("pair", "triple"):  # lambda = 1 shifts the gap away (up to re-normalisation)
        assert gaps[(experiment, "posthoc")] < 0.6 * gaps[(experiment, "clip_lt")]
    comparison = pd.read_csv(study / "results" / "tables" / "paper_comparison.csv")
    assert set(comparison["method"]) == {"clip_lt", "ours"} and set(comparison["paper_dataset"]) == {"avmnist"}
    assert "\\toprule" in (study / "results" / "tables" / "main.tex").read_text()
    claims = (study / "results" / "claims.txt").read_text()
    assert claims.count("[HOLDS]") + claims.count("[FAILS]") == 6
    for experiment, names in FIGURES.items():
        for name in names:
            for suffix in ("pdf", "png"):
                path = study / "results" / "figures" / experiment / f"{name}.{suffix}"
                assert path.stat().st_size > 1000, path
    for stage in ("prepare", "train", "embed", "metrics"):
        assert any((study / "results" / "logs" / stage).rglob("*.log")), stage
        assert stage == "prepare" or any((study / "results" / "benchmarks" / stage).rglob("*.tsv")), stage


@pytest.mark.slow
def test_finished_study_has_nothing_to_do(checkout, study):
    result = snakemake(checkout / "Snakefile", study, TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_editing_a_figure_reruns_only_that_figure(checkout, study):
    module = checkout / "src" / "modgap" / "figures" / "cosine.py"
    original = module.read_text()
    module.write_text(original + "\n# a change\n")
    try:
        assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {"figure_cosine": 2, "all": 1}
    finally:
        module.write_text(original)


@pytest.mark.slow
def test_editing_the_tables_reruns_tables_and_claims_only(checkout, study):
    module = checkout / "src" / "modgap" / "tables.py"
    original = module.read_text()
    module.write_text(original + "\n# a change\n")
    try:
        assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {"tables": 1, "claims": 1, "all": 1}
    finally:
        module.write_text(original)


@pytest.mark.slow
def test_one_figure_target_rebuilds_just_that_figure(checkout, study):
    target = "results/figures/triple/latent_3d.pdf"
    (study / target).unlink()
    result = snakemake(checkout / "Snakefile", study, TINY, target)
    assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {}
    assert "figure_latent" in result.stdout + result.stderr and "rule train" not in result.stdout + result.stderr
    assert (study / target).is_file()


@pytest.mark.slow
def test_report_gathers_tables_and_figures(checkout, study):
    snakemake(checkout / "Snakefile", study, TINY, "--report", str(study / "report.zip"))
    import zipfile

    with zipfile.ZipFile(study / "report.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("main.csv") for n in names) and any(n.endswith("gap_sweep.png") for n in names)


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
    result = snakemake(repo / "Snakefile", tmp_path, {**TINY, **broken}, check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
