"""Data sets: download, preparation into the common format (modgap.data.format), loading."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

# The modalities each data-set source provides; experiments pick a subset.
SOURCE_MODALITIES: dict[str, tuple[str, ...]] = {
    "embedded": ("image", "audio", "text"),
}


def prepare_dataset(name: str, config: Mapping, output_dir: str | Path) -> dict:
    """Prepare the data set ``name`` described by its (validated) config section; returns the manifest."""
    source = config["source"]
    if source == "embedded":
        from modgap.data.embedded import prepare_embedded

        return prepare_embedded(config, output_dir, name=name)
    raise ValueError(f"datasets.{name}.source: unknown source '{source}'")
