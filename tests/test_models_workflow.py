"""The workflow on pretrained models (a models data set, presets/your_models.yaml): tiny random open_clip and
Hugging Face models embed a prepared data set, then metrics, tables, figures and the claims check run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import planned_jobs, snakemake

pytest.importorskip("open_clip")

import tiny_models  # noqa: E402


def tiny_study(repo, tmp_path) -> dict:
    config = yaml.safe_load((repo / "presets" / "your_models.yaml").read_text())
    default = yaml.safe_load((repo / "config.yaml").read_text())["datasets"]["embedded"]
    config["datasets"] = {
        "embedded": {**default, "n_samples": 200, "captions_per_item": 1},
        "clip_models": {**config["datasets"]["clip_models"], "data": "embedded", "models": {
            "openai_b32": f"hf:{tiny_models.hf_clip_folder(tmp_path / 'hf_clip')}",
            "openclip_b32": f"open_clip:{tiny_models.open_clip_folder(tmp_path / 'open_clip')}",
        }},
    }  # fmt: skip
    config["evaluate"] = {**config["evaluate"], "kmeans_n_init": 2, "kmeans_states": 2, "sweep_strengths": [0.0, 1.0]}
    return config


@pytest.mark.slow
def test_pretrained_models_run_end_to_end_without_training(repo, tmp_path):
    config = tiny_study(repo, tmp_path)
    planned = planned_jobs(snakemake(repo / "Snakefile", tmp_path, config, "-n"))
    assert planned["embed_with_model"] == 2 and planned["prepare_dataset"] == 1 and "train" not in planned
    snakemake(repo / "Snakefile", tmp_path, config)
    results = tmp_path / "results"
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert sorted(set(runs["method"])) == ["openai_b32", "openclip_b32", "posthoc"] and len(runs) == 3
    dump = np.load(results / "embeddings" / "clip_models" / "openclip_b32" / "seed0.npz")
    labels = np.load(results / "data" / "embedded" / "test" / "labels.npy")
    np.testing.assert_array_equal(dump["labels"], labels)
    assert dump["image"].shape == (len(labels), tiny_models.EMBED_DIM)
    assert "clip_models: openclip_b32 vs openai_b32" in (results / "claims.txt").read_text()
    for figure in ("latent_2d", "cosine_histograms", "gap_sweep"):
        assert (results / "figures" / "clip_models" / f"{figure}.png").is_file()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(seeds=[0, 1]), "config key 'seeds': experiment 'clip_models' embeds data set"),
        (lambda c: c["datasets"]["clip_models"]["models"].update(openai_b32="hf:/nowhere"),
         "config key 'datasets.clip_models.models.openai_b32': model hf:/nowhere: /nowhere/config.json not found"),
        (lambda c: c["experiments"][0].update(modalities=["audio", "text"]),
         "embeds image + text, not audio, which experiment 'clip_models' needs"),
        (lambda c: c["datasets"]["clip_models"].update(data="clip_models"),
         "config key 'datasets.clip_models.data': 'clip_models' is not a prepared data set"),
    ],
)  # fmt: skip
def test_what_cannot_be_embedded_is_refused_before_any_job(repo, tmp_path, edit, message):
    config = tiny_study(repo, tmp_path)
    edit(config)
    result = snakemake(repo / "Snakefile", tmp_path, config, "-n", check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stderr[-2000:]
