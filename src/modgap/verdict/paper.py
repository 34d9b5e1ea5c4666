"""The paper's headline table (``reference/paper_table.csv``) and the margins the claims check derives from it.

The claims are judged against effects of the paper's own size: a claim-2 gain, or a claim-3 reduction of the
gap, "fails" when one of ``fraction`` (one half) of the paper's effect in the mirrored setting is ruled out.
The mirrored setting is the experiment's ``paper_reference`` (CIFAR-10 for two modalities with class-name
captions, AV-MNIST for three); an experiment without one takes the median over the paper's three data sets.
A group-wise metric has no room for a gain when the baseline leaves less headroom below 100 than the paper's
median gain of that metric (docs/verdict.md, "Margins").
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd

# The paper's metrics a margin is derived for: claim-2 gains in points, and the claim-3 reduction of the gap.
GAIN_METRICS = ("v_measure", "knn")
RUNS_COLUMN = {"v_measure": "v_measure", "knn": "knn_acc"}


@functools.cache
def paper_table() -> pd.DataFrame:
    """The paper's table: one row per (method, data set), its reported metrics."""
    with resources.files("modgap").joinpath("reference/paper_table.csv").open() as handle:
        return pd.read_csv(handle)


def paper_effects() -> pd.DataFrame:
    """Per data set, the paper's effect of its method over CLIP (LT): the V-Measure and kNN gains (points) and
    the gap's relative reduction 1 - gap(ours) / gap(CLIP LT)."""
    table = paper_table().set_index(["dataset", "method"])
    rows = {}
    for dataset in dict.fromkeys(paper_table()["dataset"]):
        ours, clip = table.loc[(dataset, "ours")], table.loc[(dataset, "clip_lt")]
        rows[dataset] = {
            **{metric: ours[metric] - clip[metric] for metric in GAIN_METRICS},
            "gap_reduction": 1.0 - ours["gap"] / clip["gap"],
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def margins(reference: str | None, fraction: float) -> dict[str, float]:
    """The margins of one experiment (runs-table columns): ``fraction`` of the paper's effect in the
    ``reference`` data set, or of its median over the data sets without one. ``gap`` is a relative reduction:
    the gap ratio's margin is 1 - margins['gap']."""
    effects = paper_effects()
    effect = effects.loc[reference] if reference is not None else effects.median()
    return {
        **{RUNS_COLUMN[m]: fraction * float(effect[m]) for m in GAIN_METRICS},
        "gap": fraction * float(effect["gap_reduction"]),
    }


def headroom() -> dict[str, float]:
    """The least headroom below 100 points that leaves a group-wise metric room for a gain: the paper's median
    gain of that metric."""
    return {RUNS_COLUMN[m]: float(np.median(paper_effects()[m])) for m in GAIN_METRICS}


def baseline_gap(reference: str | None) -> float | None:
    """The gap the paper reports for its baseline, CLIP with a learnable temperature, on the ``reference``
    data set (None without one): where the paper's claims about that data set are made."""
    if reference is None:
        return None
    rows = paper_table()
    found = rows[(rows["dataset"] == reference) & (rows["method"] == "clip_lt")]["gap"]
    if found.empty:
        known = ", ".join(dict.fromkeys(rows["dataset"]))
        raise ValueError(f"the paper reports no CLIP (LT) gap on {reference!r} (paper_reference: one of {known})")
    return float(found.iloc[0])
