"""`modgap embed` speed: a tiny random open_clip model (tests/tiny_models.py) embeds 10,000 prepared items
(32-px RGB images, one caption each), batched from memory-mapped arrays; numpy's fp32 2048 x 2048 matmul
throughput is measured in the same run, since machines differ.

    python benchmarks/embed_benchmark.py [--items 10000] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests"))  # the tiny models the tests build

import tiny_models  # noqa: E402

from modgap.data.format import write_prepared  # noqa: E402
from modgap.embeddings.from_models import embed_prepared  # noqa: E402
from modgap.embeddings.pretrained import load_model  # noqa: E402

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = (np.random.default_rng(i).standard_normal((size, size), dtype=np.float32) for i in (0, 1))
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def prepared_set(root: Path, items: int) -> Path:
    """A prepared data set whose test split holds ``items`` images and captions (the other splits one item)."""
    rng = np.random.default_rng(0)

    def split(size: int) -> dict:
        labels = rng.integers(10, size=size)
        return {
            "labels": labels,
            "ids": np.array([f"item{i}" for i in range(size)]),
            "image": rng.integers(0, 256, size=(size, 3, 32, 32), dtype=np.uint8),
            "text_tokens": np.zeros((size, 1, 4), dtype=np.int32),
            "text_embedding": np.zeros((size, 1, 4), dtype=np.float32),
            "text_count": np.ones(size, dtype=np.int16),
            "captions": [[f"a photo of the number {WORDS[label]} number {i % 97}"] for i, label in enumerate(labels)],
        }

    path = root / "bench"
    write_prepared(path, {"train": split(1), "val": split(1), "test": split(items)}, name="bench",
                   modalities=["image", "text"], class_names=WORDS, source={}, config={})  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    arguments = parser.parse_args()
    import torch

    print(f"fp32 matmul throughput: {matmul_gflops():.0f} GFLOP/s (numpy, 2048 x 2048, {torch.get_num_threads()} "
          "torch threads)")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        data = prepared_set(Path(folder), arguments.items)
        model = load_model(f"open_clip:{tiny_models.open_clip_folder(Path(folder) / 'model')}")
        for text in ("captions", "prompts"):
            started = time.perf_counter()
            dump, _ = embed_prepared(model, data, text=text, batch_size=arguments.batch_size)
            seconds = time.perf_counter() - started
            print(f"{arguments.items} items, image + text ({text}): {seconds:.1f} s "
                  f"({arguments.items / seconds:.0f} items/s), batch {arguments.batch_size}")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory of the process: {peak:.0f} MiB (the test split's images: {arguments.items * 3 * 32 * 32 / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
