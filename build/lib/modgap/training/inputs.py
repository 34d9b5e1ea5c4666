"""Model inputs from a prepared split, batched without per-sample Python work.

Small splits are moved to the training device once; large ones (e.g. MSCOCO
images at 224 px) stay memory-mapped on the host and are gathered per batch into
pinned memory, so the data path never dominates a GPU step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from modgap.data.format import load_split

# Above this many bytes a split is gathered per batch instead of living on the device.
DEVICE_RESIDENT_LIMIT = 2 * 1024**3


@dataclass
class Batch:
    """Model inputs of some items, with what the losses may need besides them."""

    inputs: dict[str, Tensor]  # modality -> model input
    labels: Tensor  # (B,) class index, -1 = none
    sentences: Tensor | None = None  # (B, 384) sentence embeddings of the chosen captions, if loaded


def without_padding_columns(tokens: Tensor) -> Tensor:
    """Word-piece ids (B, L) without the trailing columns that are padding (0) in every caption, keeping at
    least one: the token stem's work grows with L, and most captions are far shorter than the longest."""
    length = max(1, int((tokens != 0).sum(dim=1).max()))
    return tokens[:, :length]


def stack_batches(batches: Sequence[Batch]) -> Batch:
    """Batches of equal size, one per seed, as one batch with a leading seed axis; word-piece ids are padded
    to the longest batch's columns (padding is masked, so it leaves every seed's embeddings as they were)."""
    inputs = {}
    for modality in batches[0].inputs:
        parts = [batch.inputs[modality] for batch in batches]
        if modality == "text":
            columns = max(part.shape[1] for part in parts)
            parts = [F.pad(part, (0, columns - part.shape[1])) for part in parts]
        inputs[modality] = torch.stack(parts)
    sentences = None if batches[0].sentences is None else torch.stack([batch.sentences for batch in batches])
    return Batch(inputs, torch.stack([batch.labels for batch in batches]), sentences)


class SplitInputs:
    """The arrays of one split that the encoders and losses need."""

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        modalities: Sequence[str],
        device: torch.device,
        with_text_embedding: bool = False,
    ):
        arrays = load_split(data_dir, split, modalities, mmap=True)
        self.modalities = list(modalities)
        self.device = device
        self.labels = np.asarray(arrays["labels"])
        self.ids = np.asarray(arrays["ids"])
        self.size = len(self.labels)
        self.device_labels = torch.from_numpy(self.labels.astype(np.int64)).to(device)
        names = [m for m in modalities if m != "text"]
        if "text" in modalities:
            names += ["text_tokens", "text_count"] + (["text_embedding"] if with_text_embedding else [])
        total = sum(arrays[n].nbytes for n in names)
        self.resident = device.type == "cpu" or total <= DEVICE_RESIDENT_LIMIT
        self.max_captions = int(arrays["text_tokens"].shape[1]) if "text" in modalities else 1
        self.arrays: dict[str, Tensor | np.ndarray] = {}
        for name in names:
            array = arrays[name]
            if name in ("text_tokens", "text_embedding"):  # one row per caption: a batch's captions in one gather
                array = array.reshape(self.size * self.max_captions, *array.shape[2:])
            if self.resident:
                self.arrays[name] = torch.from_numpy(np.array(array)).to(device)  # copy off the memory map
            else:
                self.arrays[name] = array

    def _take(self, name: str, index: Tensor) -> Tensor:
        array = self.arrays[name]
        if self.resident:
            return array.index_select(0, index.to(self.device))  # rows gathered faster than by array[index]
        rows = np.asarray(array[np.sort(index.numpy())])  # sorted reads are far faster on a memory map
        order = np.argsort(np.argsort(index.numpy()))
        tensor = torch.from_numpy(rows[order])
        return tensor.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else tensor

    def _on_host(self, name: str) -> np.ndarray:
        array = self.arrays[name]
        return array.cpu().numpy() if torch.is_tensor(array) else np.asarray(array)

    def text_vocabulary(self) -> list[int]:
        """The distinct word-piece ids of the split's captions."""
        return np.unique(self._on_host("text_tokens")).tolist()

    def caption_counts(self) -> Tensor:
        """Captions of each item, as a CPU tensor."""
        return torch.from_numpy(self._on_host("text_count").astype(np.int64))

    def caption_choice(self, generator: torch.Generator) -> Tensor:
        """One caption index per item, uniform among the item's captions (re-drawn every epoch)."""
        counts = self.caption_counts()
        return (torch.rand(self.size, generator=generator) * counts).long().clamp_max(counts - 1)

    def partner_choice(self, generator: torch.Generator) -> dict[str, Tensor]:
        """For class-paired data: a new partner for every item in each modality after the first
        (text excepted, which draws captions), uniform among the split's items of its class; unlabelled
        items keep their own. Returns modality -> (N,) item index (a CPU tensor)."""
        labels = torch.from_numpy(self.labels.astype(np.int64))
        partners = {}
        for modality in [m for m in self.modalities[1:] if m != "text"]:
            chosen = torch.arange(self.size)
            for label in labels.unique():
                if label < 0:
                    continue
                members = torch.nonzero(labels == label).flatten()
                chosen[members] = members[torch.randperm(len(members), generator=generator)]
            partners[modality] = chosen
        return partners

    def batch(self, index: Tensor, captions: Tensor | None = None, partners: dict[str, Tensor] | None = None) -> Batch:
        """The items ``index`` (CPU tensor): inputs per modality, labels and, if loaded, caption embeddings.

        ``captions`` picks a caption per item (default: each item's first); ``partners``
        (from ``partner_choice``) replaces an item's input in some modalities by another item's.
        """
        partners = partners or {}
        inputs = {
            m: self._take(m, partners[m][index] if m in partners else index) for m in self.modalities if m != "text"
        }
        if "text" in self.modalities:
            tokens = self._take("text_tokens", self._caption_rows(index, captions))
            inputs["text"] = without_padding_columns(tokens.long())
        return Batch(inputs, *self.loss_targets(index, captions))

    def _caption_rows(self, index: Tensor, captions: Tensor | None) -> Tensor:
        """Rows of the arrays with one row per caption: each item's chosen caption (default: its first)."""
        chosen = captions[index] if captions is not None else torch.zeros(len(index), dtype=torch.long)
        return index * self.max_captions + chosen

    def loss_targets(self, index: Tensor, captions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """What a loss reads of the items ``index`` besides their embeddings: labels and, if loaded, the
        embeddings of their chosen captions (as in ``batch``)."""
        sentences = None
        if "text_embedding" in self.arrays:
            sentences = self._take("text_embedding", self._caption_rows(index, captions)).float()
        return self.device_labels[index.to(self.device)], sentences

    def batches(self, batch_size: int) -> list[Tensor]:
        """Consecutive index blocks covering the split in order (for evaluation)."""
        return list(torch.arange(self.size).split(batch_size))
