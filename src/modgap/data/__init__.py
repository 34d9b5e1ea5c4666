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
    "dumps": ("image", "audio", "text"),  # embeddings made elsewhere (modgap.external): never prepared
}


def _module(source: str):
    if source not in SOURCE_MODALITIES:
        raise ValueError(f"unknown data-set source '{source}' (known: {', '.join(SOURCE_MODALITIES)})")
    return importlib.import_module(f"modgap.data.{source}")


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
    module = _module(source)
    if source == "embedded":
        manifest = module.prepare_embedded(config, output_dir, name=name)
    else:
        manifest = getattr(module, f"prepare_{source}")(config, list(inputs), output_dir, name=name)
    train_items = manifest["splits"]["train"]["size"]
    if batch_size is not None and batch_size[0] > train_items:
        import shutil

        from modgap.data.format import PreparedDataError

        shutil.rmtree(output_dir)
        raise PreparedDataError(
            f"config key '{batch_size[1]}': {batch_size[0]} exceeds the {train_items} training items "
            f"data set '{name}' prepared"
        )
    return manifest
