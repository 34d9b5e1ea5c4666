"""Data sets: download, preparation into the common format (modgap.data.format), loading.

``modgap.data.sources.SOURCES`` lists the sources: each one's modalities, original files and preparation
module, which provides ``prepare_<source>(config, inputs, output_dir, name)``.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from modgap.data.format import PreparedDataError
from modgap.data.sources import SOURCES


def _module(source: str):
    module = SOURCES[source].module if source in SOURCES else None
    if module is None:
        prepared = ", ".join(name for name, entry in SOURCES.items() if entry.module)
        raise ValueError(f"data-set source '{source}' is not one to prepare (those are: {prepared})")
    return importlib.import_module(module)


def prepare_dataset(
    name: str,
    config: Mapping,
    output_dir: str | Path,
    inputs: Sequence[str | Path] = (),
    batch_size: tuple[int, str] | None = None,
) -> dict:
    """Prepare the data set ``name`` from its (validated) config section and downloaded ``inputs``.

    ``batch_size``: (largest training batch of the experiments that use the data set, its config
    key); a training split smaller than it is an error here, before any training job starts.
    """
    source = config["source"]
    manifest = getattr(_module(source), f"prepare_{source}")(config, list(inputs), output_dir, name=name)
    train_items = manifest["splits"]["train"]["size"]
    if batch_size is not None and batch_size[0] > train_items:
        shutil.rmtree(output_dir)
        raise PreparedDataError(
            f"config key '{batch_size[1]}': {batch_size[0]} exceeds the {train_items} training items "
            f"data set '{name}' prepared"
        )
    return manifest
