"""Data sets: download, preparation into the common format (modgap.data.format), loading.

``modgap.data.sources`` lists the original files of each source; each source
module provides ``prepare_<source>(config, inputs, output_dir)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path

# The modalities each data-set source provides; experiments pick a subset.
SOURCE_MODALITIES: dict[str, tuple[str, ...]] = {
    "embedded": ("image", "audio", "text"),
    "cifar10": ("image", "text"),
    "mscoco": ("image", "text"),
    "avmnist": ("image", "audio", "text"),
}


def _module(source: str):
    if source not in SOURCE_MODALITIES:
        raise ValueError(f"unknown data-set source '{source}' (known: {', '.join(SOURCE_MODALITIES)})")
    return importlib.import_module(f"modgap.data.{source}")


def prepare_dataset(name: str, config: Mapping, output_dir: str | Path, inputs: Sequence[str | Path] = ()) -> dict:
    """Prepare the data set ``name`` from its (validated) config section and downloaded ``inputs``."""
    source = config["source"]
    module = _module(source)
    if source == "embedded":
        return module.prepare_embedded(config, output_dir, name=name)
    return getattr(module, f"prepare_{source}")(config, list(inputs), output_dir, name=name)
