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
