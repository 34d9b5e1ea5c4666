"""MSCOCO 2017 from fixtures in the original format: zips of JPEGs and annotation JSON."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from modgap.data import prepare_dataset
from modgap.data.format import load_split, read_manifest
from modgap.data.mscoco import CocoFormatError, load_image
from modgap.study.config import load_config

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]


def jpeg(seed: int, size=(40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def coco_fixture(root, n_train=6, n_val=8, missing_image: str | None = None):
    """Zips laid out like the official ones; returns the annotations."""
    files = {"train2017": {}, "val2017": {}}
    annotations = {}
    for split, count, first in (("train2017", n_train, 1000), ("val2017", n_val, 2000)):
        images, captions = [], []
        for k in range(count):
            image_id = first + k
            name = f"{image_id:012d}.jpg"
            images.append({"id": image_id, "file_name": name, "width": 40, "height": 30})
            if name != missing_image:
                files[split][name] = jpeg(image_id)
            for c in range(1 + k % 3):  # one to three captions per image
                captions.append(
                    {"id": image_id * 10 + c, "image_id": image_id, "caption": f"photo {image_id} take {c} "}
                )
        annotations[f"captions_{split}.json"] = {"images": images, "annotations": captions}
    val_ids = [image["id"] for image in annotations["captions_val2017.json"]["images"]]
    # categories per val image: 0 -> none, 1 -> one (twice annotated), 2 -> two distinct, ...
    instances = []
    for k, image_id in enumerate(val_ids):
        kinds = [[], [1, 1], [3, 18], [18]][k % 4]
        instances += [{"id": len(instances) + 1, "image_id": image_id, "category_id": c} for c in kinds]
    annotations["instances_val2017.json"] = {"images": [], "annotations": instances, "categories": CATEGORIES}
    for split, members in files.items():
        with zipfile.ZipFile(root / f"{split}.zip", "w") as archive:
            for name, data in members.items():
                archive.writestr(f"{split}/{name}", data)
    with zipfile.ZipFile(root / "annotations_trainval2017.zip", "w") as archive:
        for name, content in annotations.items():
            archive.writestr(f"annotations/{name}", json.dumps(content))
    return annotations


@pytest.fixture(scope="module")
def coco_config(repo):
    config = load_config(
        {
            **load_config(repo / "config.yaml"),
            "datasets": {"coco": {"source": "mscoco", "image_size": 16, "test_images": 4, "val_images": 2}},
            "dose_response": {"experiment": None},
            "experiments": [{"name": "c", "dataset": "coco", "modalities": ["image", "text"], "retrieval": "instance"}],
        }
    )
    return config["datasets"]["coco"]


def inputs(root):
    return [root / "train2017.zip", root / "val2017.zip", root / "annotations_trainval2017.zip"]


def test_prepare_follows_the_released_protocol(tmp_path, coco_config):
    annotations = coco_fixture(tmp_path)
    prepare_dataset("coco", coco_config, tmp_path / "out", inputs(tmp_path))
    manifest = read_manifest(tmp_path / "out")
    assert manifest["class_names"] == ["person", "car", "dog"]
    assert {s: manifest["splits"][s]["size"] for s in ("train", "val", "test")} == {"train": 6, "val": 2, "test": 4}

    test = load_split(tmp_path / "out", "test", with_captions=True)
    val_images = annotations["captions_val2017.json"]["images"]
    assert test["ids"].tolist() == [str(image["id"]) for image in val_images[:4]]  # the first N, in file order
    assert test["labels"].tolist() == [-1, 0, -1, 2]  # none, one (twice), two distinct, one
    assert all(len(c) == 1 for c in test["captions"]) and (test["text_count"] == 1).all()
    assert test["image"].shape == (4, 3, 16, 16) and test["image"].dtype == np.uint8

    train = load_split(tmp_path / "out", "train", with_captions=True)
    assert train["text_count"].tolist() == [1, 2, 3, 1, 2, 3]  # every caption kept for training
    assert train["text_tokens"].shape[1] == 3 and (train["text_tokens"][0, 1:] == 0).all()
    assert train["captions"][2] == ["photo 1002 take 0", "photo 1002 take 1", "photo 1002 take 2"]
    assert (train["labels"] == -1).all()


def test_prepare_from_an_extracted_copy_gives_the_same_data(tmp_path, coco_config):
    coco_fixture(tmp_path)
    extracted = tmp_path / "coco"
    for archive in inputs(tmp_path):
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(extracted)
    prepare_dataset("coco", coco_config, tmp_path / "zipped", inputs(tmp_path))
    prepare_dataset("coco", {**coco_config, "extracted": str(extracted)}, tmp_path / "unzipped", [])
    for split in ("train", "test"):
        a, b = load_split(tmp_path / "zipped", split), load_split(tmp_path / "unzipped", split)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_annotation_of_a_missing_image_is_an_error(tmp_path, coco_config):
    coco_fixture(tmp_path, missing_image="000000001003.jpg")
    with pytest.raises(
        CocoFormatError, match="train2017/000000001003.jpg is referenced by the annotations but missing"
    ):
        prepare_dataset("coco", coco_config, tmp_path / "out", inputs(tmp_path))
    assert not (tmp_path / "out").exists()


def test_too_few_val_images_is_an_error(tmp_path, coco_config):
    coco_fixture(tmp_path, n_val=3)
    with pytest.raises(CocoFormatError, match="val2017 has 3 captioned images"):
        prepare_dataset("coco", coco_config, tmp_path / "out", inputs(tmp_path))


def test_truncated_zip_is_an_error(tmp_path, coco_config):
    coco_fixture(tmp_path)
    data = (tmp_path / "val2017.zip").read_bytes()
    (tmp_path / "val2017.zip").write_bytes(data[: len(data) // 3])
    with pytest.raises(CocoFormatError, match="truncated or corrupt zip"):
        prepare_dataset("coco", coco_config, tmp_path / "out", inputs(tmp_path))


def test_load_image_resizes_the_shorter_side_and_crops_the_centre():
    image = np.zeros((20, 60, 3), dtype=np.uint8)
    image[:, 25:35] = 255  # a bright band in the middle sixth
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue(), 10)
    assert loaded.shape == (3, 10, 10)
    assert loaded[:, :, 4:6].mean() > 200 and loaded[:, :, 0].mean() < 30 and loaded[:, :, 9].mean() < 30
