"""The real AV-MNIST path end to end: download from a mirror, prepare, train, evaluate, claims.

Runs a smaller presets/avmnist_offline.yaml, pointed at the unmodified public files in
../shared/data: MNIST's test split through the download rule (directory mirror), the FSDD
recordings as an extracted copy. Every split is carved from the 10,000 MNIST test digits.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import SHARED
from test_workflow import snakemake


def mirror_study(repo) -> dict:
    """presets/avmnist_offline.yaml, smaller, pointed at the mirrored files."""
    preset = yaml.safe_load((repo / "presets" / "avmnist_offline.yaml").read_text())
    dataset = preset["datasets"]["avmnist"]
    dataset["mnist"] = {"mirror": str(SHARED / "data" / "mnist" / "raw")}  # through the download rule
    dataset["fsdd"] = {"extracted": str(SHARED / "data" / "fsdd")}
    dataset["n_samples"] = {"train": 1600, "val": 200, "test": 400}
    experiment = preset["experiments"][0]
    experiment["methods"] = ["clip_lt", "ours", "alignclip"]
    experiment["train"].update(epochs=4, batch_size=64)
    return {**preset, "seeds": [0, 1]}


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "data" / "fsdd").is_dir(), reason="needs ../shared/data beside the repository")
def test_avmnist_from_mirrors_to_claims(repo, tmp_path):
    snakemake(repo / "Snakefile", tmp_path, mirror_study(repo))
    downloads = sorted(p.name for p in (tmp_path / "results" / "downloads" / "avmnist").iterdir())
    assert downloads == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    manifest = json.loads((tmp_path / "results" / "data" / "avmnist" / "manifest.json").read_text())
    assert {s: manifest["splits"][s]["size"] for s in ("train", "val", "test")} == {
        "train": 1600,
        "val": 200,
        "test": 400,
    }
    assert manifest["source"]["fsdd_recordings"] == 3000
    assert manifest["source"]["image_degradation"]["variance_retained"] >= 0.25
    assert manifest["source"]["noise"] == {"source": "pink", "snr_db": [0, 20], "babble_voices": 4, "substitute": True}
    probes = manifest["source"]["unimodal_probe_accuracy"]
    assert 10 < probes["image"] < 90 and 10 < probes["audio"] < 90  # degraded, noisy: far from saturated
    table = pd.read_csv(tmp_path / "results" / "tables" / "main.csv")
    assert set(table["method"]) == {"clip_lt", "ours", "alignclip", "posthoc"} and (table["n_seeds"] == 2).all()
    comparison = pd.read_csv(tmp_path / "results" / "tables" / "paper_comparison.csv")
    assert set(comparison["method"]) == {"clip_lt", "ours"}
    claims = (tmp_path / "results" / "claims.txt").read_text()
    # the three-modality check, with its audio retrieval
    assert "avmnist_offline: ours" in claims and "ΔTA R@1" in claims
    # the table users see: keep it in the test log
    print((tmp_path / "results" / "tables" / "paper_comparison.md").read_text())
    print(claims)
