"""Shared fixtures: the repository root and a tiny, fast study configuration."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def default_config_dict() -> dict:
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


@pytest.fixture()
def config_dict(default_config_dict) -> dict:
    """A fresh, mutable copy of config.yaml as written (defaults not filled in)."""
    return copy.deepcopy(default_config_dict)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A 120-sample embedded data set (90 train / 10 val / 20 test), one caption per item."""
    from modgap.data import prepare_dataset
    from modgap.study.config import load_config

    config = load_config(REPO / "config.yaml")["datasets"]["embedded"]
    config["n_samples"] = 120
    config["captions_per_item"] = 1
    path = tmp_path_factory.mktemp("tiny") / "embedded"
    prepare_dataset("embedded", config, path)
    return path


@pytest.fixture()
def tiny_run(default_config_dict):
    """A function giving the resolved run of a method on a small model, quick to train on tiny_data."""
    from modgap.study.config import load_config
    from modgap.study.plan import resolve_run

    def make(method: str = "ours", experiment: str = "embedded_image_audio_text", model=None, **train) -> dict:
        config = copy.deepcopy(default_config_dict)
        for entry in config["experiments"]:  # the top-level sections below apply, to every method
            entry.pop("model", None), entry.pop("train", None), entry.pop("methods", None)
        config["model"] = {"width": 16, "depth": 1, "heads": 2, "embed_dim": 8, **(model or {})}
        config["train"] = {"epochs": 3, "batch_size": 32, "checkpoint_every": 1, "progress": "never", **train}
        return resolve_run(load_config(config), experiment, method)

    return make
