"""The package files a workflow script runs: its rule's code dependencies.

A rule's outputs depend on the package modules its script imports, on the modules those import, and so
on. Listing them by hand goes stale (a figure kept its old gap after the gap metric changed), so the
workflow derives each rule's list here, from every import statement of every module reached, the ones
inside functions included. A module counts with the ``__init__.py`` of every package above it, which
Python runs first. Imports that name their module at run time (``importlib.import_module``) are not
seen: the preparation rule adds its source's module (modgap.data.preparation_module) itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # modgap/, above this stage


def imported_modules(path: str | Path, module: str) -> Iterator[str]:
    """Dotted names every import statement of a file may load; ``module``: the file's own dotted name, which
    resolves relative imports. ``from a import b`` gives ``a`` and ``a.b``, since ``b`` may be a submodule."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parts, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def module_file(name: str, root: Path) -> Path | None:
    """The file of the dotted module ``name`` in the package at ``root`` (None: not one of its modules)."""
    head, *rest = name.split(".")
    if head != root.name:
        return None
    stem = root.joinpath(*rest)
    return next((f for f in (stem / "__init__.py", stem.with_suffix(".py")) if f.is_file()), None)


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a file of the package at ``root``."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(*paths: str | Path, root: str | Path = PACKAGE_DIR) -> list[str]:
    """Every file of the package at ``root`` that running ``paths`` (scripts, or modules of the package,
    which count themselves) loads, transitively, as paths relative to ``root`` (``data/format.py``), sorted."""
    root = Path(root).resolve()
    found: set[Path] = set()
    pending: list[tuple[Path, str]] = []

    def load(name: str) -> None:
        """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            dotted = ".".join(parts[:end])
            module = module_file(dotted, root)
            if module is not None and module not in found:
                found.add(module)
                pending.append((module, dotted))

    for path in (Path(p).resolve() for p in paths):
        if path.is_relative_to(root):
            load(module_name(path, root))
        else:
            pending.append((path, "__main__"))
    while pending:
        path, name = pending.pop()
        for imported in imported_modules(path, name):
            load(imported)
    return sorted(str(path.relative_to(root)) for path in found)
