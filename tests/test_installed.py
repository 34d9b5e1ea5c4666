"""The package installed from its wheel (not editable), used from a folder outside the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest

from modgap.study.config import DEFAULT_CONFIG

pytestmark = pytest.mark.slow  # builds a wheel (its build environment comes from PyPI) and a fresh environment


def embeddings(rng: np.random.Generator, offset: float, items: int = 60) -> dict[str, np.ndarray]:
    """Two modalities of ``items`` rows in five classes, ``text`` shifted by ``offset`` from ``image``."""
    labels = np.arange(items) % 5
    centres = rng.standard_normal((5, 16))
    image = centres[labels] + 0.3 * rng.standard_normal((items, 16))
    return {"image": image, "text": image + offset + 0.1 * rng.standard_normal((items, 16)), "labels": labels}


@pytest.fixture(scope="module")
def installed(repo, tmp_path_factory) -> Path:
    """A fresh environment holding modgap's wheel alone; its dependencies are read from this one's
    site-packages, where no modgap is (the development install is a path that only a .pth file adds)."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout (setuptools builds in place)
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "config.yaml"):
        shutil.copy(repo / name, source / name)
    shutil.copytree(repo / "workflow" / "schemas", source / "workflow" / "schemas")
    shutil.copytree(
        repo / "src", source / "src", symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(source)], check=True
    )
    (wheel,) = (root / "dist").glob("modgap-*.whl")
    venv.create(root / "env", with_pip=True)
    python = root / "env" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    return python


def run(python: Path, workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {"PYTHONPATH": sysconfig.get_paths()["purelib"], "PATH": str(python.parent)}
    return subprocess.run(
        [str(python.parent / "modgap"), *arguments], cwd=workdir, env=environment, capture_output=True, text=True
    )


def test_the_installed_package_is_not_the_checkout(installed, repo, tmp_path):
    code = "import modgap.study.config as c; print(c.__file__); print(c.DEFAULT_CONFIG); print(c.SCHEMA_PATH)"
    environment = {"PYTHONPATH": sysconfig.get_paths()["purelib"]}
    found = subprocess.run(
        [installed, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, check=True
    )
    module, default_config, schema = found.stdout.split()
    assert not Path(module).is_relative_to(repo) and Path(module).is_relative_to(installed.parents[1])
    assert Path(default_config).read_text() == DEFAULT_CONFIG.read_text()  # the package's own copy of config.yaml
    assert Path(schema).read_text() == (repo / "workflow" / "schemas" / "config.schema.yaml").read_text()


def test_modgap_evaluate_and_compare_run_installed_from_another_folder(installed, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", **embeddings(rng, 1.0))
    result = run(installed, tmp_path, "evaluate", "mine.npz", "--out", "out", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Gap" in result.stdout and json.loads((tmp_path / "out" / "mine.json").read_text())["gap"] > 0.5
    for name, offset in (("wide", 1.0), ("narrow", 0.1)):
        (tmp_path / name).mkdir()
        for seed in range(4):
            np.savez(tmp_path / name / f"seed{seed}.npz", **embeddings(np.random.default_rng(seed), offset))
    result = run(installed, tmp_path, "compare", "--baseline", "wide", "--method", "narrow", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "external: narrow vs wide" in result.stdout
