"""The real AV-MNIST study end to end on real files: download, prepare, train, evaluate, the verdict.

Runs a smaller presets/avmnist_real.yaml with no local copies: MNIST's test split and the FSDD recordings of
../shared/data are served over HTTP as mirrors of the official files (the FSDD archive packed as GitHub packs
the pinned commit), so the preset's own download path fetches them. Every split is carved from the 10,000
MNIST test digits (the mirror has no training split); the noise is the offline substitute.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import tarfile
import threading

import pandas as pd
import pytest
import yaml
from conftest import SHARED
from test_workflow import snakemake

from modgap.data.sources import FSDD_ARCHIVE, FSDD_COMMIT

pytestmark = pytest.mark.skipif(
    not (SHARED / "data" / "fsdd").is_dir(), reason="needs ../shared/data beside the repository"
)


@pytest.fixture()
def mirror(tmp_path_factory):
    """An HTTP server holding MNIST's test files and the FSDD archive of the pinned commit."""
    folder = tmp_path_factory.mktemp("mirror")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED / "data" / "mnist" / "raw" / name, folder / name)
    with tarfile.open(folder / FSDD_ARCHIVE.name, "w:gz") as archive:
        archive.add(SHARED / "data" / "fsdd" / "recordings", f"free-spoken-digit-dataset-{FSDD_COMMIT}/recordings")
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def small_study(repo, mirror_url: str) -> dict:
    """presets/avmnist_real.yaml, smaller (both temperature starts, a two-rung ladder), fetching from the mirror."""
    preset = yaml.safe_load((repo / "presets" / "avmnist_real.yaml").read_text())
    dataset = preset["datasets"]["avmnist"]
    dataset["mnist"] = {"mirror": mirror_url}
    dataset["fsdd"] = {"mirror": mirror_url}
    dataset["use_mnist_train"] = False  # the mirror holds MNIST's test split only
    dataset["noise"] = {"source": "pink"}
    dataset["n_samples"] = {"train": 1600, "val": 200, "test": 400}
    for experiment in preset["experiments"]:
        experiment["train"].update(epochs=4, budgets=[2, 4], batch_size=64)
    return {**preset, "seeds": [0, 1]}


@pytest.mark.slow
def test_avmnist_real_from_downloads_to_the_verdict(repo, tmp_path, mirror):
    snakemake(repo / "Snakefile", tmp_path, small_study(repo, mirror))
    downloads = sorted(p.name for p in (tmp_path / "results" / "downloads" / "avmnist").iterdir())
    assert downloads == sorted([FSDD_ARCHIVE.name, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    manifest = json.loads((tmp_path / "results" / "data" / "avmnist" / "manifest.json").read_text())
    assert {s: manifest["splits"][s]["size"] for s in ("train", "val", "test")} == {
        "train": 1600,
        "val": 200,
        "test": 400,
    }
    source = manifest["source"]
    assert source["fsdd_recordings"] == 3000 and source["mnist_train_split"] is False
    assert source["image_degradation"]["variance_retained"] >= 0.25
    assert source["noise"] == {"source": "pink", "snr_db": [0, 20], "babble_voices": 4, "substitute": True}
    probes = source["unimodal_probe_accuracy"]
    assert 10 < probes["image"] < 90 and 10 < probes["audio"] < 90  # degraded, noisy: far from saturated
    runs = pd.read_csv(tmp_path / "results" / "tables" / "runs.csv")
    assert {"avmnist_real@4", "avmnist_real_init0.03@4"} <= set(runs["experiment"])  # the ladder's last rung
    assert runs[["gap_cost_v_measure", "pair_alignment"]].notna().all().all()
    claims = (tmp_path / "results" / "claims.txt").read_text()
    # both temperature starts judged, each with its audio retrieval, and the data named
    assert "avmnist_real: ours" in claims and "avmnist_real_init0.03: ours" in claims and "ΔTA R@1" in claims
    assert "every split carved from MNIST's 10,000 test digits" in claims
    assert "pink noise at 0-20 dB, this project's offline substitute for ESC-50" in claims
    # the table users see: keep it in the test log
    print((tmp_path / "results" / "tables" / "paper_comparison.md").read_text())
    print(claims)
