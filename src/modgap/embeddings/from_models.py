"""A prepared data set's split embedded by a pretrained model (modgap.embeddings.pretrained), as this project's embedding
dump: ``modgap embed`` and the workflow's ``models`` data sets (docs/your_embeddings.md).

Every modality the model and the data set share is embedded, in batches read from memory-mapped arrays (the
memory a run takes is set by the batch, not by the data set). Text is each item's first caption, or, where a
data set's captions are only class names (CIFAR-10), a prompt made of the class name (``prompt``, CLIP's
``"a photo of a {}."`` by default), each class prompt embedded once.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from modgap.data.format import load_split, read_manifest
from modgap.embeddings.dumps import CAPTION_ITEM, CAPTIONS, CLASS_NAMES, IDS, LABELS, MODALITY_ORDER
from modgap.embeddings.pretrained import PretrainedModel
from modgap.errors import ExplainedError
from modgap.io import save_npz
from modgap.study.model_specs import DEFAULT_PROMPT, ModelError, prompt_problem

TEXT_MODES = ("auto", "captions", "prompts")


def only_class_names(captions: Sequence[Sequence[str]], labels: np.ndarray, class_names: Sequence[str]) -> bool:
    """Whether every item's text is just its class name (a data set that names classes, not items)."""
    return bool(len(captions)) and all(
        label >= 0 and list(item) == [class_names[label]] for item, label in zip(captions, labels.tolist())
    )


def chosen_text(mode: str, captions, labels: np.ndarray, class_names: Sequence[str]) -> str:
    """'captions' or 'prompts' for a text ``mode`` (auto: prompts where the captions are only class names)."""
    if mode not in TEXT_MODES:
        raise ExplainedError(f"text mode {mode!r}: expected one of {', '.join(TEXT_MODES)}")
    if mode == "auto":
        return "prompts" if only_class_names(captions, labels, class_names) else "captions"
    return mode


def class_prompts(template: str, class_names: Sequence[str]) -> list[str]:
    """The prompt of every class; a template that is not one '{}' in text is refused (modgap.study.model_specs)."""
    problem = prompt_problem(template)
    if problem:
        raise ExplainedError(f"prompt {template!r}: {problem}")
    return [template.format(name) for name in class_names]


def shared_modalities(model: PretrainedModel, manifest: Mapping, data_dir: str | Path) -> list[str]:
    """The modalities both the model and the data set have (at least two, or ModelError)."""
    shared = [m for m in MODALITY_ORDER if m in model.modalities and m in manifest["modalities"]]
    if len(shared) < 2:
        raise ModelError(
            f"model {model.spec} embeds {' + '.join(model.modalities)}, data set {data_dir} holds "
            f"{' + '.join(manifest['modalities'])}: fewer than two modalities in common"
        )
    return shared


def _sample_rate(manifest: Mapping, data_dir: str | Path) -> int:
    rate = manifest.get("config", {}).get("audio", {}).get("sample_rate")
    if not rate:
        raise ExplainedError(f"{data_dir}/manifest.json: records no audio sample rate (config.audio.sample_rate)")
    return int(rate)


class _Batches:
    """Rows [start, stop) of a split's arrays, batch by batch, with one progress bar over every item embedded."""

    def __init__(self, total: int, batch_size: int, progress: bool, label: str):
        from tqdm import tqdm

        self.batch_size = batch_size
        self.bar = tqdm(total=total, desc=label, unit="item", file=sys.stderr, disable=not progress, leave=False)

    def ranges(self, size: int):
        for start in range(0, size, self.batch_size):
            stop = min(size, start + self.batch_size)
            yield start, stop
            self.bar.update(stop - start)


@torch.inference_mode()
def _embed_rows(encode, rows, size: int, batches: _Batches) -> np.ndarray:
    """``encode`` applied to every batch of ``rows`` (an array, a memory map or a list), stacked."""
    parts = [encode(rows[start:stop]).cpu().numpy() for start, stop in batches.ranges(size)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def embed_prepared(
    model: PretrainedModel,
    data_dir: str | Path,
    split: str = "test",
    *,
    text: str = "auto",
    prompt: str = DEFAULT_PROMPT,
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict]:
    """The dump (one unit-norm float32 array per shared modality, ``labels``, ``ids``, ``class_names`` and,
    with several captions per item, ``text_captions`` / ``text_caption_item``) of a prepared split, and what
    was done (``modalities``, ``text``: captions or prompts)."""
    manifest = read_manifest(data_dir)
    modalities = shared_modalities(model, manifest, data_dir)
    arrays = load_split(data_dir, split, modalities, mmap=True, with_captions="text" in modalities)
    labels, class_names = np.asarray(arrays["labels"]), list(manifest["class_names"])
    size = len(labels)
    dump: dict[str, np.ndarray] = {}
    done = {"modalities": modalities, "items": size}
    texts: list[str] = []
    if "text" in modalities:
        done["text"] = chosen_text(text, arrays["captions"], labels, class_names)
        if done["text"] == "prompts":
            if (labels < 0).any():
                raise ExplainedError(f"{data_dir}: split '{split}' has unlabelled items, which no class prompt names")
            texts = class_prompts(prompt, class_names)
        else:
            texts = [item[0] for item in arrays["captions"]]
    several = "text" in modalities and done["text"] == "captions" and max(map(len, arrays["captions"])) > 1
    all_captions = [c for item in arrays["captions"] for c in item] if several else []
    total = size * (len(modalities) - ("text" in modalities)) + len(texts) + len(all_captions)
    batches = _Batches(total, batch_size, progress, str(model.spec))
    device = model.device
    for modality in modalities:
        if modality == "image":
            images = arrays["image"]
            dump["image"] = _embed_rows(
                lambda rows: model.encode("image", torch.from_numpy(np.array(rows)).to(device)),
                images,
                size,
                batches,
            )
        elif modality == "audio":
            if "audio_waveform" not in arrays:
                raise ExplainedError(
                    f"{data_dir}: split '{split}' stores no audio_waveform, which {model.spec} embeds; prepare the "
                    "data set with audio.keep_waveform: true"
                )
            rate = _sample_rate(manifest, data_dir)
            dump["audio"] = _embed_rows(
                lambda rows: model.encode("audio", torch.from_numpy(rows.astype(np.float32) / 32768.0), rate),
                arrays["audio_waveform"],
                size,
                batches,
            )
        else:
            embedded = _embed_rows(lambda rows: model.encode("text", rows), texts, len(texts), batches)
            dump["text"] = embedded[labels] if done["text"] == "prompts" else embedded
    if several:
        dump[CAPTIONS] = _embed_rows(lambda rows: model.encode("text", rows), all_captions, len(all_captions), batches)
        dump[CAPTION_ITEM] = np.repeat(np.arange(size), [len(item) for item in arrays["captions"]])
    batches.bar.close()
    dump[LABELS] = labels.astype(np.int64)
    dump[IDS] = np.asarray(arrays["ids"])
    dump[CLASS_NAMES] = np.array(class_names, dtype=str)
    return dump, done


def write_model_dump(
    spec, data_dir: str | Path, output: str | Path, device: str = "auto", device_key: str = "--device", **options
) -> tuple[dict[str, np.ndarray], dict]:
    """Load the model ``spec`` names, embed the prepared split (``embed_prepared``'s options) and write the dump
    to ``output`` (.npz, atomically); ``device_key``: the option or config key that chose ``device``."""
    from modgap.embeddings.pretrained import load_model
    from modgap.runtime import select_device

    model = load_model(spec, select_device(device, device_key))
    dump, done = embed_prepared(model, data_dir, **options)
    save_npz(output, **dump)
    return dump, {**done, "embed_dim": int(dump[done["modalities"][0]].shape[1])}
