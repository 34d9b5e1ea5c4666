"""The regime calibration's rule on hand-made grids: convergence of the baseline's own metrics, the regime
thresholds, and the choice of the strongest tower with a learnable temperature."""

from __future__ import annotations

import pandas as pd
import pytest

from modgap.verdict.calibration import (
    calibration_markdown,
    calibration_table,
    cell_convergence,
    choose,
    make,
    regime_for,
)
from modgap.verdict.paper import baseline_gap

RULE = {"gap_rule": "at_least", "min_gap": 0.5, "ceilings": {"2": {"v_measure": 85, "knn_acc": 90}, "3": {"v_measure": 85, "knn_acc": 92}},
        "r1_over_chance": 3.0, "gap_margin": 0.05}  # fmt: skip
MARGINS = {"gap": 0.05, "v_measure": 0.45, "knn_acc": 0.6, "r1_mean": 5.0}
SPREAD = [0.2, -0.1, 0.0, -0.2, 0.1]


def cell(experiment, setting, budget, gap, v, knn, r1=80.0, collapsed=(), drift=0.0):
    """Five seeds of one calibration cell at one budget; ``drift`` moves every seed differently."""
    return [{"experiment": f"{experiment}@{budget}", "method": setting, "seed": s, "gap": gap + 0.01 * SPREAD[s],
             "v_measure": v + SPREAD[s] + drift * SPREAD[s] * budget, "knn_acc": knn + SPREAD[s], "r1_mean": r1,
             "r1_chance": 10.0, "temperature": 0.012, "collapsed": s in collapsed} for s in range(5)]  # fmt: skip


def grid(cells):
    return pd.DataFrame([row for c in cells for row in c])


LADDERS = {e: [(b, f"{e}@{b}") for b in (10, 20, 40)] for e in ("p28", "p7")}
KNOBS, COUNTS = {"p28": 28, "p7": 7}, {"p28": 2, "p7": 2}


def table_of(runs):
    return calibration_table(runs, LADDERS, ["lt07", "lt01", "ft01"], KNOBS, COUNTS, dict.fromkeys(LADDERS, MARGINS),
                             RULE, 0.05)  # fmt: skip


def test_the_strongest_tower_with_a_learnable_temperature_in_the_regime_is_chosen():
    cells = []
    for budget in (10, 20, 40):
        cells += [cell("p28", "lt07", budget, 0.25, 92, 98),  # strong tower, CLIP's temperature: no gap
                  cell("p28", "lt01", budget, 0.55, 62, 98.3),  # low temperature: a gap, but kNN at its ceiling
                  cell("p28", "ft01", budget, 0.6, 60, 85),  # fixed: in the regime, never chosen
                  cell("p7", "lt07", budget, 0.3, 64, 78),
                  cell("p7", "lt01", budget, 0.76, 51.6, 77.3)]  # fmt: skip
    table = table_of(grid(cells))
    chosen = choose(table, learnable=["lt07", "lt01"], gap_rule="at_least")
    assert (chosen["2 modalities"]["patch"], chosen["2 modalities"]["setting"]) == (7, "lt01")
    why = table.set_index(["patch", "setting"])["why_not"]
    assert why[(28, "lt01")] == "kNN 98.3 ≥ 90" and why[(28, "lt07")].startswith("gap 0.25 < 0.5")
    assert why[(28, "ft01")] == ""  # in the regime, but a fixed temperature
    markdown = calibration_markdown(table, chosen, {"lt01": "learnable τ from 0.01"})
    assert "| 2 | 7 | learnable τ from 0.01 | 10 epochs | 0.76 ± 0.00 | 51.6 ± 0.2 |" in markdown
    assert "**yes: chosen**" in markdown and "- 2 modalities: patch 7, learnable τ from 0.01 (gap 0.76)" in markdown


def test_a_cell_must_hold_the_regime_over_a_doubling_and_keep_every_seed():
    """Converged or not, a cell qualifies when the regime holds at the last budget and at the one half as long;
    a cell whose gap only opens late, or one with a collapsed seed, does not."""
    cells = []
    for budget in (10, 20, 40):
        cells += [
            cell("p28", "lt01", budget, 0.4 if budget < 40 else 0.6, 60, 80),  # in the regime at 40 alone
            cell("p7", "lt01", budget, 0.7, 60, 80, collapsed=(3,) if budget == 40 else ()),
            cell("p7", "lt07", budget, 0.7, 60 + budget / 2, 80),
        ]  # V-Measure climbs: moving, yet in the regime
    table = table_of(grid(cells)).set_index(["patch", "setting"])
    assert table.loc[(28, "lt01"), "why_not"] == "at 20 epochs: gap 0.40 < 0.5"
    assert table.loc[(7, "lt01"), "why_not"] == "1 collapsed seed"
    moving = table.loc[(7, "lt07")]
    assert moving["in_regime"] and pd.isna(moving["converged_since"])
    assert "V-Measure moved +10.00 from 20 to 40" in moving["convergence"]
    assert (
        choose(table.reset_index(), learnable=["lt01", "lt07"], gap_rule="at_least")["2 modalities"]["setting"]
        == "lt07"
    )


def test_convergence_needs_a_budget_at_least_twice_as_long():
    runs = grid([cell("p7", "lt01", 10, 0.7, 60, 80), cell("p7", "lt01", 15, 0.7, 60, 80)])
    ladder = [(b, runs[runs["experiment"] == f"p7@{b}"].set_index("seed")) for b in (10, 15)]
    assert cell_convergence(ladder, MARGINS, 0.05) == (None, "not converged: no budget of the ladder has a later one "
                                                              "at least twice as long")  # fmt: skip


def test_the_paper_rule_aims_at_each_reference_datasets_own_baseline_gap():
    """Under gap_rule 'paper' a CIFAR-10-like experiment takes the learnable setting whose gap lies nearest
    CIFAR-10's 0.86 and an AV-MNIST-like one the setting nearest AV-MNIST's 0.20, each at its strongest
    qualifying tower, with no gap floor; ties go to the grid's order; a cell outside the ceilings never wins."""
    ladders = {e: [(b, f"{e}@{b}") for b in (10, 20, 40)] for e in ("two", "three", "three_p28")}
    knobs, counts = {"two": 7, "three": 7, "three_p28": 28}, {"two": 2, "three": 3, "three_p28": 3}
    references = {"two": "cifar10", "three": "avmnist", "three_p28": "avmnist"}
    gaps = {"lt07": (0.46, 0.31), "lt03": (0.73, 0.67), "lt01": (0.95, 0.93)}
    cells = []
    for budget in (10, 20, 40):
        for setting, (two, three) in gaps.items():
            cells += [cell("two", setting, budget, two, 60, 80), cell("three", setting, budget, three, 60, 80),
                      cell("three_p28", setting, budget, 0.2, 60, 95)]  # fmt: skip
    rule = RULE | {"gap_rule": "paper"}
    table = calibration_table(grid(cells), ladders, list(gaps), knobs, counts, dict.fromkeys(ladders, MARGINS), rule,
                              0.05, references)  # fmt: skip
    chosen = choose(table, learnable=list(gaps), gap_rule="paper")
    assert chosen["2 modalities (cifar10)"]["setting"] == "lt01"  # |0.95 - 0.86| < |0.73 - 0.86|
    assert chosen["3 modalities (avmnist)"]["setting"] == "lt07"  # 0.31 is nearest 0.20, below the old floor
    assert chosen["3 modalities (avmnist)"]["patch"] == 7  # patch 28 hits AV-MNIST's gap but kNN 95 ≥ 92
    markdown = calibration_markdown(table, chosen, {})
    assert "- 3 modalities (avmnist): patch 7, lt07 (gap 0.31; the paper's CLIP (LT): 0.20)" in markdown
    # the same grid under the old rule: a floor of 0.5 and the first qualifying setting
    old = calibration_table(grid(cells), ladders, list(gaps), knobs, counts, dict.fromkeys(ladders, MARGINS), RULE,
                            0.05, references)  # fmt: skip
    old_choice = choose(old, learnable=list(gaps), gap_rule="at_least")
    assert [old_choice[g]["setting"] for g in ("2 modalities (cifar10)", "3 modalities (avmnist)")] == ["lt03", "lt03"]
    # equidistant settings: the grid's order decides
    tied = table.assign(gap=table["paper_gap"] + 0.1)
    assert choose(tied, learnable=list(gaps))["2 modalities (cifar10)"]["setting"] == "lt07"


def test_a_grid_without_runs_is_reported_and_an_unknown_rule_or_reference_is_named(tmp_path):
    """No cell with runs: the Markdown says so (choose used to fail on the empty table first). A gap rule
    other than the schema's two, or a reference the paper has no row for, is refused rather than read as
    the other rule or failing as an index error."""
    runs = tmp_path / "runs.csv"
    runs.write_text("experiment,method,seed,gap,v_measure,knn_acc,r1_mean,r1_chance,temperature,collapsed\n")
    csv, md = tmp_path / "calibration.csv", tmp_path / "calibration.md"
    rule = RULE | {"gap_rule": "paper"}
    make(runs, LADDERS, ["lt07"], ["lt07"], KNOBS, COUNTS, {}, dict.fromkeys(LADDERS, MARGINS), rule, 0.05, {}, csv, md)
    assert md.read_text() == "No calibration cell has runs: nothing to choose from.\n"
    assert choose(pd.DataFrame(), learnable=["lt07"]) == {}
    table = table_of(grid(cell("p7", "lt01", budget, 0.7, 60, 80) for budget in (10, 20, 40)))
    with pytest.raises(ValueError, match="gap_rule must be one of paper, at_least, got 'nearest'"):
        choose(table, learnable=["lt01"], gap_rule="nearest")
    with pytest.raises(ValueError, match="gap_rule must be one of paper, at_least, got 'Paper'"):
        regime_for(2, RULE | {"gap_rule": "Paper"})
    with pytest.raises(ValueError, match="no CLIP \\(LT\\) gap on 'imagenet' \\(paper_reference: one of cifar10"):
        baseline_gap("imagenet")
    assert baseline_gap("avmnist") == 0.20 and baseline_gap(None) is None
