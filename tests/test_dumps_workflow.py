"""The workflow on embeddings made elsewhere (a dumps data set, presets/your_dumps.yaml): no training, the
files go through metrics, tables, figures and the claims check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import planned_jobs, snakemake


def write_dumps(root, seeds=(0, 1, 2)):
    """Two models' per-seed embeddings of one test set: every file holds the same items' labels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=200)
    for model, offset in (("baseline", 1.0), ("candidate", 0.2)):
        (root / model).mkdir(parents=True)
        for seed in seeds:
            shared = 2.0 * rng.normal(size=(4, 12))[labels] + rng.normal(size=(200, 12))
            np.savez(root / model / f"seed{seed}.npz", labels=labels,
                     image=shared + rng.normal(size=(200, 12)) + offset, text=shared + rng.normal(size=(200, 12)) - offset)  # fmt: skip


@pytest.mark.slow
def test_a_folder_of_dumps_runs_end_to_end_without_training(repo, tmp_path):
    write_dumps(tmp_path / "my_dumps")
    config = yaml.safe_load((repo / "presets" / "your_dumps.yaml").read_text())
    config["evaluate"] |= {"kmeans_n_init": 2, "kmeans_states": 2, "sweep_strengths": [0.0, 1.0]}
    planned = planned_jobs(snakemake(repo / "Snakefile", tmp_path, config, "-n"))
    assert planned["import_dumps"] == 6 and "train" not in planned and "prepare_dataset" not in planned
    snakemake(repo / "Snakefile", tmp_path, config)
    results = tmp_path / "results"
    claims = (results / "claims.txt").read_text()
    assert "my_models: candidate vs baseline, at its one budget, " in claims and "(convergence not tested" in claims
    assert "3. smaller gap" in claims
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert sorted(set(runs["method"])) == ["baseline", "candidate", "posthoc"] and len(runs) == 9
    assert {"true_pair_distance", "rmg", "uniformity_image"} <= set(runs.columns)
    assert runs["epochs"].isna().all()  # trained elsewhere: its budget is not known
    for figure in ("latent_2d", "cosine_histograms", "gap_sweep"):
        assert (results / "figures" / "my_models" / f"{figure}.png").is_file()
    assert not (results / "figures" / "my_models" / "training_curves.png").exists()
    assert not (results / "models").exists()
    assert (results / "tables" / "ablation.md").read_text().startswith("No experiment runs the ablation's methods")


def test_a_missing_dump_is_a_config_error_naming_the_file(repo, tmp_path):
    write_dumps(tmp_path / "my_dumps", seeds=(0, 1))
    config = yaml.safe_load((repo / "presets" / "your_dumps.yaml").read_text())
    result = snakemake(repo / "Snakefile", tmp_path, config, "-n", check=False)
    assert result.returncode != 0
    assert "config key 'datasets.my_dumps.path': no file my_dumps/baseline/seed2.npz" in result.stdout + result.stderr
