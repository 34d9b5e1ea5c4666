"""Embedding dumps: the test-split embeddings of a trained model, one .npz per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modgap.batches import SplitInputs
from modgap.io import save_npz
from modgap.train import embed_split, load_trained, select_device


@torch.no_grad()
def caption_embeddings(model, data: SplitInputs, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every caption of every item, and the item each caption belongs to."""
    counts = data.caption_counts()
    embeddings, owners = [], []
    for slot in range(int(counts.max())):
        items = torch.nonzero(counts > slot).flatten()
        chosen = torch.full((data.size,), slot, dtype=torch.long)
        for index in items.split(batch_size):
            inputs, _ = data.batch(index, chosen)
            embeddings.append(model.encode("text", inputs["text"]).float().cpu().numpy())
            owners.append(index.numpy())
    order = np.argsort(np.concatenate(owners), kind="stable")  # group captions by item
    return np.concatenate(embeddings)[order], np.concatenate(owners)[order]


def dump_embeddings(
    model_path: str | Path, data_dir: str | Path, output_path: str | Path, split: str = "test", device: str = "auto"
) -> dict[str, np.ndarray]:
    """Write ``output_path`` (.npz): one float32 (N, d) unit-norm array per modality, ``labels``, ``ids``.

    Where items have several captions, ``text`` holds each item's first caption and
    ``text_captions`` / ``text_caption_item`` every caption with its item index.
    """
    target = select_device(device)
    model, payload = load_trained(model_path, target)
    modalities = payload["run"]["modalities"]
    data = SplitInputs(data_dir, split, modalities, target)
    arrays = embed_split(model, data)
    arrays["labels"] = data.labels
    arrays["ids"] = data.ids
    if "text" in modalities and data.max_captions > 1:
        arrays["text_captions"], arrays["text_caption_item"] = caption_embeddings(model, data)
    save_npz(output_path, **arrays)
    return arrays
