"""The front door stays whole: README and docs/ link only to files the repository has, and name no file
outside it."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)
# Repository paths quoted in prose, e.g. `presets/regime_map.yaml` or `src/modgap/verdict/decision.py`.
QUOTED_PATH = re.compile(r"`((?:presets|docs|workflow|src|benchmarks|profiles|envs|tests)/[\w./-]*\w)`")


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def anchors(page: Path) -> set[str]:
    """The heading anchors a Markdown renderer gives a page: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_resolves_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(REPO), f"{page_id(page)} links outside the repository: {target}"
        assert resolved.exists(), f"{page_id(page)} links to a missing file: {target}"
        if anchor:
            assert anchor in anchors(resolved), f"{page_id(page)} links to a missing heading: {target}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_quoted_repository_paths_exist(page):
    for path in QUOTED_PATH.findall(page.read_text()):
        if "<" in path or "*" in path:
            continue
        assert (REPO / path).exists(), f"{page_id(page)} names {path}, which the repository does not have"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_page_depends_on_files_outside_the_clone_or_holds_a_placeholder(page):
    text = page.read_text()
    assert "../shared" not in text and not re.search(r"\bSPEC\b", text), page_id(page)
    assert not re.search(r"\b(TODO|TBD|XXX|FIXME|[A-Z]+_[A-Z_]+)\b", re.sub(r"`[^`]*`", "", text)), page_id(page)


def test_readme_is_a_front_door():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "https://arxiv.org/abs/2601.18525" in readme and "https://github.com/ispamm/ModGap" in readme  # sources
    assert "snakemake --cores all" in readme and 'pip install -e ".[test]"' in readme  # install and run


def test_layout_names_every_module_of_the_package(repo):
    """docs/layout.md, "The package", names every module under its stage (a line at the margin that names a
    folder opens a stage; names at the margin outside a stage are top-level modules)."""
    section = (repo / "docs" / "layout.md").read_text().partition("## The package")[2].partition("\n## ")[0]
    block = section.partition("```\n")[2].partition("```")[0]
    named, stage = set(), "."
    for line in block.splitlines():
        if line[:1].strip():  # at the margin: a stage folder, or top-level modules
            stage = line.split()[0].rstrip("/") if line.split()[0].endswith("/") else "."
        names = re.findall(r"\b\w+\.py\b", line.split("  ")[0] if line[:1].strip() else line.strip().split("  ")[0])
        named |= {str(Path(stage, name)) for name in names}
    root = repo / "src" / "modgap"
    modules = {str(p.relative_to(root)) for p in root.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert sorted(modules - named) == [] and sorted(named - modules) == []
