"""Batches: the items, captions and partners a step trains on, gathered from a prepared split."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch

from modgap.training.inputs import Batch, SplitInputs, stack_batches, without_padding_columns


def test_batches_drop_the_columns_that_are_padding_in_every_caption():
    tokens = torch.tensor([[101, 7, 102, 0, 0], [101, 102, 0, 0, 0]])
    assert without_padding_columns(tokens).tolist() == [[101, 7, 102], [101, 102, 0]]
    assert without_padding_columns(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 1)


def with_three_captions(tiny_data, folder):
    """tiny_data with three distinct captions (and caption embeddings) per train item."""
    shutil.copytree(tiny_data, folder)
    train = folder / "train"
    tokens, sentences = np.load(train / "text_tokens.npy"), np.load(train / "text_embedding.npy")
    variants = [tokens.copy() for _ in range(3)]
    for number, variant in enumerate(variants):
        variant[:, 0, 2] = 2000 + number  # another word piece in each caption
    np.save(train / "text_tokens.npy", np.concatenate(variants, axis=1))
    np.save(train / "text_embedding.npy", np.concatenate([sentences, sentences + 1, sentences + 2], axis=1))
    np.save(train / "text_count.npy", np.full(len(tokens), 3, dtype=np.int16))
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in ("text_tokens", "text_embedding"):
        manifest["splits"]["train"]["files"][f"{name}.npy"]["shape"] = list(np.load(train / f"{name}.npy").shape)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_batch_holds_each_items_chosen_caption_and_its_embedding(tiny_data, tmp_path):
    data = SplitInputs(with_three_captions(tiny_data, tmp_path / "data"), "train", ["image", "text"],
                       torch.device("cpu"), with_text_embedding=True)  # fmt: skip
    tokens = np.load(tmp_path / "data" / "train" / "text_tokens.npy")
    sentences = np.load(tmp_path / "data" / "train" / "text_embedding.npy")
    index = torch.tensor([5, 0, 17, 3])
    captions = data.caption_choice(torch.Generator().manual_seed(0))
    batch = data.batch(index, captions)
    chosen = captions[index].numpy()
    assert len(set(chosen.tolist())) > 1  # the draw picks other captions than the first
    expected = tokens[index.numpy(), chosen]
    columns = batch.inputs["text"].shape[1]
    assert (expected[:, columns:] == 0).all() and np.array_equal(batch.inputs["text"].numpy(), expected[:, :columns])
    np.testing.assert_array_equal(batch.sentences.numpy(), sentences[index.numpy(), chosen])
    assert batch.labels.tolist() == data.labels[index.numpy()].tolist()
    first = data.batch(index)  # no draw: every item's first caption
    assert np.array_equal(first.inputs["text"].numpy(), tokens[index.numpy(), 0][:, : first.inputs["text"].shape[1]])
    labels, sentences_only = data.loss_targets(index, captions)
    assert torch.equal(labels, batch.labels) and torch.equal(sentences_only, batch.sentences)


def test_stacked_batches_pad_captions_to_the_longest():
    short = Batch({"text": torch.tensor([[101, 102]]), "image": torch.zeros(1, 2)}, torch.tensor([3]))
    long = Batch({"text": torch.tensor([[101, 7, 102]]), "image": torch.ones(1, 2)}, torch.tensor([4]))
    stacked = stack_batches([short, long])
    assert stacked.inputs["text"].tolist() == [[[101, 102, 0]], [[101, 7, 102]]]
    assert stacked.inputs["image"].shape == (2, 1, 2) and stacked.labels.tolist() == [[3], [4]]
    assert stacked.sentences is None
