"""The regime calibration's rule on hand-made grids: convergence of the baseline's own metrics, the regime
thresholds, and the choice of the strongest tower with a learnable temperature."""

from __future__ import annotations

import pandas as pd

from modgap.verdict.calibration import calibration_markdown, calibration_table, cell_convergence, choose

RULE = {"min_gap": 0.5, "ceilings": {"2": {"v_measure": 85, "knn_acc": 90}, "3": {"v_measure": 85, "knn_acc": 92}},
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
    chosen = choose(table, learnable=["lt07", "lt01"])
    assert (chosen[2]["patch"], chosen[2]["setting"]) == (7, "lt01")
    why = table.set_index(["patch", "setting"])["why_not"]
    assert why[(28, "lt01")] == "kNN 98.3 ≥ 90" and why[(28, "lt07")].startswith("gap 0.25 < 0.5")
    assert why[(28, "ft01")] == ""  # in the regime, but a fixed temperature
    markdown = calibration_markdown(table, chosen, {"lt01": "learnable τ from 0.01"})
    assert "| 2 | 7 | learnable τ from 0.01 | 10 epochs | 0.76 ± 0.00 | 51.6 ± 0.2 |" in markdown
    assert "**yes: chosen**" in markdown and "- 2 modalities: patch 7, learnable τ from 0.01" in markdown


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
    assert choose(table.reset_index(), learnable=["lt01", "lt07"])[2]["setting"] == "lt07"


def test_convergence_needs_a_budget_at_least_twice_as_long():
    runs = grid([cell("p7", "lt01", 10, 0.7, 60, 80), cell("p7", "lt01", 15, 0.7, 60, 80)])
    ladder = [(b, runs[runs["experiment"] == f"p7@{b}"].set_index("seed")) for b in (10, 15)]
    assert cell_convergence(ladder, MARGINS, 0.05) == (None, "not converged: no budget of the ladder has a later one "
                                                              "at least twice as long")  # fmt: skip
