"""The real AV-MNIST path end to end: download from a mirror, prepare, train, evaluate, claims.

Runs the same code users run, pointed at the unmodified public files in ../shared/data:
MNIST's test split through the download rule (directory mirror), the FSDD recordings as an
extracted copy. Every split is carved from the 10,000 MNIST test digits (the mirror has no
training split).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import SHARED
from test_workflow import snakemake

MIRROR_STUDY = {
    "seeds": [0, 1],
    "datasets": {
        "avmnist": {
            "source": "avmnist",
            "mnist": {"mirror": str(SHARED / "data" / "mnist" / "raw")},
            "fsdd": {"extracted": str(SHARED / "data" / "fsdd")},
            "use_mnist_train": False,
            "n_samples": {"train": 1600, "val": 200, "test": 400},
        }
    },
    "experiments": [
        {"name": "avmnist", "dataset": "avmnist", "modalities": ["image", "audio", "text"],
         "methods": ["clip_lt", "clip_ft", "ours"], "paper_reference": "avmnist"},
    ],
    "model": {"width": 32, "depth": 1, "heads": 2, "embed_dim": 32},
    "train": {"epochs": 4, "batch_size": 64, "progress": "never"},
    "dose_response": {"experiment": None},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "data" / "fsdd").is_dir(), reason="needs ../shared/data beside the repository")
def test_avmnist_from_mirrors_to_claims(repo, tmp_path):
    snakemake(repo / "Snakefile", tmp_path, MIRROR_STUDY)
    downloads = sorted(p.name for p in (tmp_path / "results" / "downloads" / "avmnist").iterdir())
    assert downloads == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    manifest = json.loads((tmp_path / "results" / "data" / "avmnist" / "manifest.json").read_text())
    assert {s: manifest["splits"][s]["size"] for s in ("train", "val", "test")} == {"train": 1600, "val": 200, "test": 400}
    assert manifest["source"]["fsdd_recordings"] == 3000
    table = pd.read_csv(tmp_path / "results" / "tables" / "main.csv")
    assert set(table["method"]) == {"clip_lt", "clip_ft", "ours", "posthoc"} and (table["n_seeds"] == 2).all()
    comparison = pd.read_csv(tmp_path / "results" / "tables" / "paper_comparison.csv")
    assert set(comparison["method"]) == {"clip_lt", "clip_ft", "ours"}
    claims = (tmp_path / "results" / "claims.txt").read_text()
    assert "avmnist" in claims and "3 modalities" in claims
    # the table users see: keep it in the test log
    print((tmp_path / "results" / "tables" / "paper_comparison.md").read_text())
    print(claims)
