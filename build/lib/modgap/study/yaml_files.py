"""YAML configuration files read strictly: a key given twice in one mapping is refused.

PyYAML, and Snakemake's own reading of ``--configfile``, keep the last of two equal keys without a word, so
``seeds: [0, 1]`` followed further down by ``seeds: [5, 6, 7]`` would silently plan seeds 5-7.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ExplainedError


class DuplicateKeyError(ExplainedError, ValueError):
    """A YAML mapping names one key twice; the message gives the file and both lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that names a key twice (a merge key ``<<`` is YAML's own way of
    repeating keys, and stays allowed)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
                seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: the base loader says so
                continue
            if first is not None:
                raise DuplicateKeyError(
                    f"{node.start_mark.name}, line {key_node.start_mark.line + 1}: key '{key}' is given twice in "
                    f"one mapping (first on line {first + 1}); YAML would keep only the last, so say it once"
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """The YAML document of ``path``, a key given twice in one mapping refused (DuplicateKeyError), a file
    that is not UTF-8 text too (ExplainedError). OSError and yaml.YAMLError pass through for the caller to
    name."""
    with open(path, encoding="utf-8") as handle:
        try:
            return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 (a subclass of the safe loader)
        except UnicodeDecodeError as error:
            raise ExplainedError(f"{path}: not YAML (not UTF-8 text: byte {error.start} cannot be read)") from None
