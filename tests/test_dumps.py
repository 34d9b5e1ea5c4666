"""The embedding-dump format (modgap.embeddings.dumps): a ladder's budgets, the dump at one of them, the post-hoc shift."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.embeddings.dumps import at_budget, budgets, load_method_dump
from modgap.errors import CorruptIntermediateError


def ladder_dump() -> dict[str, np.ndarray]:
    """Final arrays, and snapshots of image, text and the captions at 10 and 20 epochs (audio: 20 only)."""
    final = {name: np.full((2, 3), 40.0) for name in ("image", "audio", "text", "text_captions")}
    snapshots = {f"{name}@{epochs}": np.full((2, 3), float(epochs)) for name in ("image", "text", "text_captions")
                 for epochs in (10, 20)}  # fmt: skip
    return {**final, "audio@20": np.full((2, 3), 20.0), **snapshots, "labels": np.array([0, 1])}


def test_a_dump_names_its_budgets_in_order():
    assert budgets(ladder_dump()) == [10, 20]
    assert budgets({"image": np.ones(2), "text": np.ones(2), "tag@note": np.ones(1)}) == []  # no epochs after '@'


def test_the_dump_at_a_budget_holds_that_budgets_arrays_in_place_of_the_final_ones():
    at_10 = at_budget(ladder_dump(), 10)
    assert list(at_10) == ["image", "text", "text_captions", "labels"]  # in the dump's order, snapshots left out
    assert all((at_10[name] == 10).all() for name in ("image", "text", "text_captions"))
    # audio has no snapshot at 10: its final array would mix two budgets, so it is left out
    assert "audio" not in at_10 and (at_budget(ladder_dump(), 20)["audio"] == 20).all()
    final = at_budget(ladder_dump(), None)
    assert set(final) == {"image", "audio", "text", "text_captions", "labels"} and (final["image"] == 40).all()


def test_a_missing_budget_says_what_the_dump_holds(tmp_path):
    with pytest.raises(ValueError, match=r"no embeddings of budget 15 \(it holds 10, 20\)"):
        at_budget(ladder_dump(), 15)
    with pytest.raises(ValueError, match=r"no embeddings of budget 15 \(it holds no '<array>@<epochs>' arrays\)"):
        at_budget({"image": np.ones((2, 3)), "text": np.ones((2, 3))}, 15)
    np.savez(tmp_path / "seed0.npz", **ladder_dump())
    with pytest.raises(
        CorruptIntermediateError, match=r"seed0.npz: damaged embedding dump \(no embeddings of budget 15"
    ):
        load_method_dump(tmp_path / "seed0.npz", budget=15)
    assert (load_method_dump(tmp_path / "seed0.npz", budget=20)["audio"] == 20).all()
