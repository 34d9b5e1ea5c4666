"""MSCOCO 2017 (2 modalities), with the released code's evaluation protocol.

- train: train2017 images with all their captions (training samples one per image per epoch);
- test: the first ``test_images`` (512) images of val2017, in the order of
  captions_val2017.json, with ``test_captions_per_image`` (1) captions each;
- val: the next ``val_images`` images of val2017, likewise;
- labels: the single category of val images whose instance annotations hold
  exactly one distinct category_id; every other image is labelled -1 and used
  for retrieval only (train images are not labelled).

Images are decoded in chunks by a thread pool, resized (shorter side) and
centre-cropped to ``image_size``, and written straight into a memory-mapped
array, so the 118k training JPEGs are never all in memory. The originals are
read from the official zip files or from an extracted copy
(``extracted``: a directory with train2017/, val2017/, annotations/).
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
import zipfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from modgap.data.format import write_prepared
from modgap.data.sources import MSCOCO_ARCHIVES as ARCHIVES
from modgap.data.text import encode_captions
from modgap.errors import ExplainedError

log = logging.getLogger(__name__)

MODALITIES = ("image", "text")
_CHUNK = 256


class CocoFormatError(ExplainedError, ValueError):
    pass


class CocoFiles:
    """Annotations and JPEGs of COCO 2017, from the official zips or an extracted directory."""

    def __init__(self, config: Mapping, inputs: Sequence[str | Path]):
        self.extracted = Path(config["extracted"]) if config.get("extracted") else None
        self.archives = {} if self.extracted else {key: Path(p) for key, p in zip(ARCHIVES, inputs)}
        self._local = threading.local()
        if self.extracted and not self.extracted.is_dir():
            raise CocoFormatError(f"datasets.*.extracted: {self.extracted} is not a directory")

    def _zip(self, key: str) -> zipfile.ZipFile:
        """One open ZipFile per thread and archive (ZipFile objects are not thread-safe)."""
        opened = self._local.__dict__.setdefault("zips", {})
        if key not in opened:
            try:
                opened[key] = zipfile.ZipFile(self.archives[key])
            except (zipfile.BadZipFile, OSError) as error:
                raise CocoFormatError(f"{self.archives[key]}: truncated or corrupt zip ({error})") from error
        return opened[key]

    def annotation(self, name: str) -> dict:
        member = f"annotations/{name}"
        try:
            if self.extracted:
                with open(self.extracted / member) as handle:
                    return json.load(handle)
            with self._zip("annotations").open(member) as handle:
                return json.load(handle)
        except (FileNotFoundError, KeyError) as error:
            where = self.extracted or self.archives["annotations"]
            raise CocoFormatError(f"{where}: no {member}") from error

    def image_bytes(self, split: str, file_name: str) -> bytes:
        member = f"{split}/{file_name}"
        try:
            if self.extracted:
                return (self.extracted / member).read_bytes()
            return self._zip(split).read(member)
        except (FileNotFoundError, KeyError) as error:
            where = self.extracted or self.archives[split]
            raise CocoFormatError(f"{where}: image {member} is referenced by the annotations but missing") from error


def load_image(data: bytes, size: int) -> np.ndarray:
    """JPEG bytes -> uint8 (3, size, size): shorter side resized to ``size``, then centre-cropped."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        scale = size / min(image.size)
        resized = image.resize(
            (max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.Resampling.BICUBIC
        )
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size))).transpose(2, 0, 1)


def images_into(files: CocoFiles, split: str, names: Sequence[str], size: int, target: np.ndarray, workers: int):
    """Decode ``names`` into the (memory-mapped) array ``target`` chunk by chunk."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            decoded = pool.map(lambda n: load_image(files.image_bytes(split, n), size), chunk)
            target[start : start + len(chunk)] = np.stack(list(decoded))
            if start // _CHUNK % 20 == 0:
                log.info("%s: %d / %d images", split, start + len(chunk), len(names))


def captions_by_image(annotation: dict) -> tuple[list[dict], dict[int, list[str]]]:
    """Images in file order and their captions in annotation order; images without a caption are dropped."""
    captions: dict[int, list[str]] = defaultdict(list)
    known = {image["id"] for image in annotation["images"]}
    for entry in annotation["annotations"]:
        if entry["image_id"] not in known:
            raise CocoFormatError(f"caption {entry.get('id')} refers to image {entry['image_id']}, which is not listed")
        captions[entry["image_id"]].append(entry["caption"].strip())
    return [image for image in annotation["images"] if captions[image["id"]]], captions


def single_category_labels(instances: dict, image_ids: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Label = the category of images annotated with exactly one distinct category_id, else -1."""
    categories = sorted(instances["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    present: dict[int, set[int]] = defaultdict(set)
    for entry in instances["annotations"]:
        present[entry["image_id"]].add(entry["category_id"])
    labels = [index[next(iter(present[i]))] if len(present[i]) == 1 else -1 for i in image_ids]
    return np.array(labels, dtype=np.int64), [c["name"] for c in categories]


def prepare_mscoco(config: Mapping, inputs: Sequence[str | Path], output_dir: str | Path, name: str = "mscoco") -> dict:
    files = CocoFiles(config, inputs)
    size, workers, max_length = config["image_size"], config["workers"], config["text"]["max_length"]
    train_images, train_captions = captions_by_image(files.annotation("captions_train2017.json"))
    if config["max_train_images"]:
        train_images = train_images[: config["max_train_images"]]
    val_images, val_captions = captions_by_image(files.annotation("captions_val2017.json"))
    n_test, n_val = config["test_images"], config["val_images"]
    if n_test + n_val > len(val_images):
        raise CocoFormatError(
            f"val2017 has {len(val_images)} captioned images; test_images + val_images = {n_test + n_val}"
        )
    instances = files.annotation("instances_val2017.json")
    _, class_names = single_category_labels(instances, [])

    selections = {
        "train": ("train2017", train_images, train_captions, None),
        "test": ("val2017", val_images[:n_test], val_captions, config["test_captions_per_image"]),
        "val": ("val2017", val_images[n_test : n_test + n_val], val_captions, config["test_captions_per_image"]),
    }
    splits = {}
    with tempfile.TemporaryDirectory(dir=Path(output_dir).parent, prefix=".coco-images-") as scratch:
        for split, (folder, images, captions, per_image) in selections.items():
            ids = [image["id"] for image in images]
            keep = per_image or config["max_captions"]
            texts = [captions[i][:keep] for i in ids]
            array = np.lib.format.open_memmap(
                Path(scratch) / f"{split}.npy", mode="w+", dtype=np.uint8, shape=(len(ids), 3, size, size)
            )
            images_into(files, folder, [image["file_name"] for image in images], size, array, workers)
            if split == "train":
                labels = np.full(len(ids), -1, dtype=np.int64)
            else:
                labels, _ = single_category_labels(instances, ids)
            log.info("%s: encoding %d captions", split, sum(map(len, texts)))
            splits[split] = {
                "image": array,
                "labels": labels,
                "ids": np.array([str(i) for i in ids]),
                **encode_captions(texts, max_length),
                "captions": texts,
            }
        return write_prepared(
            output_dir,
            splits,
            name=name,
            modalities=MODALITIES,
            class_names=class_names,
            source={"kind": "mscoco", "location": str(files.extracted or [str(p) for p in files.archives.values()])},
            config=config,
        )
