"""Embedding dumps: the unit-norm embeddings of one split under a trained encoder, one .npz per run."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from modgap.embeddings.dumps import CAPTION_ITEM, CAPTIONS, IDS, LABELS
from modgap.io import save_npz
from modgap.runtime import select_device
from modgap.training.inputs import SplitInputs
from modgap.training.model_files import load_trained
from modgap.training.models import MultimodalEncoder


@torch.no_grad()
def embed_split(
    model: MultimodalEncoder, data: SplitInputs, batch_size: int = 512, autocast=contextlib.nullcontext
) -> dict[str, np.ndarray]:
    """Unit-norm float32 embeddings of every item of a split (first caption for text)."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {m: [] for m in data.modalities}
    for index in data.batches(batch_size):
        with autocast():
            embedded = model(data.batch(index).inputs)
        for modality, z in embedded.items():
            parts[modality].append(z.float().cpu().numpy())
    model.train(was_training)
    return {m: np.concatenate(p) for m, p in parts.items()}


@torch.no_grad()
def caption_embeddings(model, data: SplitInputs, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every caption of every item, and the item each caption belongs to."""
    counts = data.caption_counts()
    embeddings, owners = [], []
    for slot in range(int(counts.max())):
        items = torch.nonzero(counts > slot).flatten()
        chosen = torch.full((data.size,), slot, dtype=torch.long)
        for index in items.split(batch_size):
            embeddings.append(model.encode("text", data.batch(index, chosen).inputs["text"]).float().cpu().numpy())
            owners.append(index.numpy())
    order = np.argsort(np.concatenate(owners), kind="stable")  # group captions by item
    return np.concatenate(embeddings)[order], np.concatenate(owners)[order]


def embedding_dump(
    model: MultimodalEncoder, data: SplitInputs, autocast=contextlib.nullcontext
) -> dict[str, np.ndarray]:
    """One float32 (N, d) unit-norm array per modality, ``labels``, ``ids``; where items have several
    captions, ``text`` holds each item's first and ``text_captions`` / ``text_caption_item`` all of them."""
    arrays = embed_split(model, data, autocast=autocast)
    arrays[LABELS] = data.labels
    arrays[IDS] = data.ids
    if "text" in data.modalities and data.max_captions > 1:
        arrays[CAPTIONS], arrays[CAPTION_ITEM] = caption_embeddings(model, data)
    return arrays


def dump_embeddings(
    model_path: str | Path, data_dir: str | Path, output_path: str | Path, split: str = "test", device: str = "auto"
) -> dict[str, np.ndarray]:
    """Write ``output_path`` (.npz) with the ``embedding_dump`` of a saved model on one split."""
    target = select_device(device)
    model, payload = load_trained(model_path, target)
    arrays = embedding_dump(model, SplitInputs(data_dir, split, payload["run"]["modalities"], target))
    save_npz(output_path, **arrays)
    return arrays
