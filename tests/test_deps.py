"""Code dependencies: the package files a workflow script runs (modgap.study.code_deps), and the rules that use them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modgap.study.code_deps import imported_modules, module_file, module_name, package_modules

FAKE_PACKAGE = {
    "__init__.py": "",
    "a.py": "import os\nfrom fakepkg import b\n",
    "b.py": "def later():\n    from fakepkg.sub import c  # inside a function: still a dependency\n",
    "sub/__init__.py": "",
    "sub/c.py": "from . import d\n",
    "sub/d.py": "from ..e import thing\n",
    "e.py": "thing = 1\n",
    "unused.py": "import fakepkg.a\n",
}


@pytest.fixture
def fake_package(tmp_path) -> Path:
    root = tmp_path / "fakepkg"
    for name, text in FAKE_PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "script.py").write_text("import sys\nimport fakepkg.a\n")
    return root


def test_a_script_depends_on_every_module_it_runs_transitively(fake_package):
    # script -> fakepkg (its __init__) and fakepkg.a -> fakepkg.b -> (in a function) fakepkg.sub and fakepkg.sub.c
    # -> (relative) fakepkg.sub.d -> (relative, two levels) fakepkg.e; nothing imports unused.py
    assert package_modules(fake_package.parent / "script.py", root=fake_package) == [
        "__init__.py",
        "a.py",
        "b.py",
        "e.py",
        "sub/__init__.py",
        "sub/c.py",
        "sub/d.py",
    ]


def test_a_module_of_the_package_counts_itself_and_the_packages_above_it(fake_package):
    assert package_modules(fake_package / "sub" / "d.py", root=fake_package) == [
        "__init__.py",
        "e.py",
        "sub/__init__.py",
        "sub/d.py",
    ]


def test_imports_resolve_to_the_packages_own_files_only(fake_package):
    assert module_file("fakepkg.sub", fake_package) == fake_package / "sub" / "__init__.py"
    assert module_file("fakepkg.sub.c", fake_package) == fake_package / "sub" / "c.py"
    assert module_file("fakepkg.missing", fake_package) is None
    assert module_file("os", fake_package) is None
    assert set(imported_modules(fake_package / "sub" / "d.py", "fakepkg.sub.d")) == {"fakepkg.e", "fakepkg.e.thing"}


def test_the_latent_figure_depends_on_the_gap_metric_it_prints(repo):
    modules = package_modules(repo / "workflow" / "scripts" / "figure_latent.py", root=repo / "src" / "modgap")
    assert {
        "figures/latent.py", "figures/style.py", "embeddings/dumps.py", "metrics/measures.py", "metrics/similarity.py"
    } <= set(modules)  # fmt: skip
    assert "training/trainer.py" not in modules and "verdict/tables.py" not in modules


def test_every_rule_derives_its_code_from_its_own_script(repo):
    """A rule's code(...) names the script the rule runs, so the derived list is that script's."""
    rules = 0
    for smk in (repo / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            code = re.search(r'code\("([\w.]+)"', block)
            if code or script:
                rules += 1
                names = (code and code[1], script and script[1])
                # a download's file is what its remote holds, whatever the code: no code dependency
                assert names[0] == names[1] or block.startswith("rule download"), (smk.name, names)
    assert rules >= 15


def test_every_source_of_the_schema_has_an_entry_and_a_preparation(repo):
    """The data-source table and the schema's sources agree; each source but dumps and models has its preparation."""
    import importlib

    import yaml

    from modgap.data import preparation_module
    from modgap.data.sources import SOURCES

    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["definitions"]["dataset"]["properties"]["source"]["enum"] == list(SOURCES)
    for source in set(SOURCES) - {"dumps", "models"}:
        assert callable(getattr(importlib.import_module(preparation_module(source)), f"prepare_{source}")), source


def test_the_package_imports_run_one_way(repo):
    """No cycle among the package's parts (each stage subpackage as one part, and each top-level module):
    every import runs down, none back up (figures once imported the regime map, which imported figures)."""
    root = repo / "src" / "modgap"

    def part(name: str) -> str:
        return name.split(".")[1] if name.count(".") else name

    edges: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        own = module_name(path, root)
        for imported in imported_modules(path, own):
            target = module_file(imported, root)
            if target is not None and part(module_name(target, root)) not in (part(own), "modgap"):
                edges.setdefault(part(own), set()).add(part(module_name(target, root)))
    assert {"figures", "verdict", "study", "embeddings", "training", "metrics", "cli"} <= set(edges)

    def cycle_from(start: str, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
        if start in path:
            return (*path, start)
        return next((c for t in sorted(edges.get(start, ())) if (c := cycle_from(t, (*path, start)))), None)

    assert [c for p in edges if (c := cycle_from(p))] == []
