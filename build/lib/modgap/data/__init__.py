"""Data sets: download, preparation into the common format (modgap.data.format), loading.

``modgap.data.sources.SOURCES`` lists the sources: each one's modalities, original files and the
resources of its preparation. The source ``<source>`` is prepared by the module ``modgap.data.<source>``,
with ``prepare_<source>(config, inputs, output_dir, name)`` (docs/data.md, "Add a data set"). This
package's own code reads no table of sources: jobs that prepare or load one data set run no code of the
others, so adding a source re-runs none of their jobs.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from modgap.data.format import PreparedDataError, read_manifest


def preparation_module(source: str) -> str:
    """The module that prepares the data sets of ``source``."""
    return f"{__name__}.{source}"


def prepare_dataset(name: str, config: Mapping, output_dir: str | Path, inputs: Sequence[str | Path] = ()) -> dict:
    """Prepare the data set ``name`` from its (validated) config section and downloaded ``inputs``; returns
    its manifest."""
    source = config["source"]
    prepare = getattr(importlib.import_module(preparation_module(source)), f"prepare_{source}")
    return prepare(config, list(inputs), output_dir, name=name)


def check_batch_size(prepared_dir: str | Path, batch_size: tuple[int, str], name: str) -> None:
    """Refuse a training batch larger than the prepared training split. ``batch_size``: (the largest
    training batch of the experiments on the data set, its config key)."""
    train_items = read_manifest(prepared_dir)["splits"]["train"]["size"]
    if batch_size[0] > train_items:
        raise PreparedDataError(
            f"config key '{batch_size[1]}': {batch_size[0]} exceeds the {train_items} training items "
            f"data set '{name}' prepared"
        )
