"""Seeds planned to decide: spending functions, rounds, and the error rate of the whole design by simulation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modgap.verdict.sequential import Design, open_comparisons, round_levels, run_round, spent

CLAIMS = {"baseline": "clip_lt", "methods": ["ours"], "controls": [], "confidence": 0.95,
          "retrieval_tolerance": 5.0, "margin_fraction": 0.5, "min_seeds": 3}  # fmt: skip
DESIGN = Design.of({"rounds": [5, 10, 20], "spending": "pocock", "first_seed": 0})


@pytest.mark.parametrize("rule", ["obrien_fleming", "pocock"])
def test_spending_reaches_alpha_and_the_rounds_share_it(rule):
    assert spent(rule, 0.0, 0.05) == 0.0 and spent(rule, 1.0, 0.05) == pytest.approx(0.05)
    levels = round_levels([5, 10, 20], 0.05, rule)
    assert sum(levels) == pytest.approx(0.05) and all(level > 0 for level in levels)


def test_obrien_fleming_spends_little_early_and_pocock_evenly():
    # Lan-DeMets O'Brien-Fleming shape at half the information: 2 - 2 Phi(z_0.975 / sqrt 0.5)
    assert spent("obrien_fleming", 0.5, 0.05) == pytest.approx(2 - 2 * stats.norm.cdf(1.959964 / math.sqrt(0.5)))
    assert spent("obrien_fleming", 0.25, 0.05) < 0.001 < spent("pocock", 0.25, 0.05)
    assert spent("pocock", 0.5, 0.05) == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    with pytest.raises(ValueError, match="unknown spending rule 'linear'"):
        spent("linear", 0.5, 0.05)
    with pytest.raises(ValueError, match="rising seed counts"):
        round_levels([10, 5], 0.05, "pocock")


def runs_for(seeds, shift, experiment="e", noise=1.0):
    """Per-seed records of clip_lt and ours, ours' V-Measure and kNN ``shift`` higher (paired differences with
    SD ``noise``), its gap a fifth."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        base = {"experiment": experiment, "seed": seed, "tv_r1": 80.0 + rng.normal(), "collapsed": False}
        clip = {**base, "method": "clip_lt", "v_measure": 50 + rng.normal(), "knn_acc": 70 + rng.normal(),
                "gap": 0.8 + 0.02 * rng.normal()}  # fmt: skip
        ours = {**base, "method": "ours", "v_measure": clip["v_measure"] + shift + noise * rng.normal(),
                "knn_acc": clip["knn_acc"] + shift + noise * rng.normal(), "gap": 0.16 + 0.02 * rng.normal(),
                "tv_r1": base["tv_r1"] + rng.normal()}  # fmt: skip
        rows += [clip, ours]
    return pd.DataFrame(rows)


def test_a_clear_comparison_is_decided_in_the_first_round_and_an_open_one_goes_on():
    comparisons = [("clear", "ours", "clip_lt"), ("unclear", "ours", "clip_lt")]
    runs = pd.concat([runs_for(range(5), 10.0, "clear"), runs_for(range(5), 1.0, "unclear", noise=5.0)])
    first = run_round(0, runs, comparisons, DESIGN, CLAIMS, {})
    clear, unclear = first["comparisons"]
    assert not clear["open"] and all(check["decided_round"] == 0 for check in clear["checks"])
    assert unclear["open"] and not first["finished"]
    assert first["family_parts"] == 2 * 4  # per comparison: one R@1 part, two group-wise parts, the gap ratio
    assert open_comparisons(first, comparisons) == [("unclear", "ours", "clip_lt")]
    # the next round tests the open comparison on ten seeds, and carries the closed one over unchanged
    second = run_round(1, runs_for(range(10), 1.0, "unclear", noise=5.0), comparisons, DESIGN, CLAIMS, {}, first)
    assert second["comparisons"][0] == clear and second["comparisons"][1]["seeds"] == list(range(10))
    assert second["family_parts"] == 8 and second["level"] == pytest.approx(second["round_alpha"] / 8)


def test_the_last_round_closes_every_comparison():
    comparisons = [("unclear", "ours", "clip_lt")]
    record = run_round(2, runs_for(range(20), 0.0, "unclear"), comparisons, DESIGN, CLAIMS, {}, None)
    assert record["finished"] and not record["comparisons"][0]["open"]


def test_the_design_keeps_the_family_wise_error_rate_by_simulation():
    """Least favourable: the true V-Measure gain sits at 0 (the 'holds' null is true), and the design runs
    every round; the share of simulations in which any round rejects it stays below alpha."""
    rng = np.random.default_rng(7)
    rounds, alpha, trials = [5, 10, 20], 0.05, 1500
    levels = round_levels(rounds, alpha, "pocock")
    rejected = 0
    for _ in range(trials):
        values = rng.normal(size=rounds[-1])
        for n, level in zip(rounds, levels):
            sample = values[:n]
            p = stats.t.sf(sample.mean() / (sample.std(ddof=1) / math.sqrt(n)), n - 1)
            if p <= level:
                rejected += 1
                break
    assert rejected / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    # and it is not vacuous: testing every round at alpha itself rejects more often than alpha
    loose = 0
    for _ in range(trials):
        values = rng.normal(size=rounds[-1])
        loose += any(
            stats.t.sf(values[:n].mean() / (values[:n].std(ddof=1) / math.sqrt(n)), n - 1) <= alpha for n in rounds
        )
    assert loose / trials > alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def test_a_round_refuses_damaged_records_naming_the_file(tmp_path, monkeypatch):
    import json

    from modgap.errors import CorruptIntermediateError
    from modgap.verdict.sequential import load_round_runs, read_round

    monkeypatch.chdir(tmp_path)
    record = {"experiment": "e", "method": "ours", "seed": 7, "retrieval": "class", "gap": 0.2, "cos_true_pairs": 0.5,
              "r1_mean": 80.0, "r1_chance": 10.0, "epochs": 2, "v_measure": 60.0, "knn_acc": 70.0,
              "collapsed": False, "notes": []}  # fmt: skip
    path = tmp_path / "results" / "decide" / "metrics" / "e" / "ours" / "seed1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([record]))
    with pytest.raises(CorruptIntermediateError, match=r"seed1\.json.*seeds \[7\], the study has \[1\]"):
        load_round_runs([path])
    garbage = tmp_path / "results" / "decide" / "round0.json"
    for text in ("garbage{", "[]", "{}"):
        garbage.write_text(text)
        with pytest.raises(CorruptIntermediateError, match="round0.json"):
            read_round(garbage)


def test_a_round_refuses_a_comparison_with_other_seeds_than_planned():
    comparisons = [("clear", "ours", "clip_lt")]
    with pytest.raises(ValueError, match=r"round 1: clear: ours vs clip_lt has paired seeds \[0, 1, 2, 3\]"):
        run_round(0, runs_for(range(4), 10.0, "clear"), comparisons, DESIGN, CLAIMS, {})


def test_the_report_says_why_a_part_has_no_value():
    from modgap.verdict.sequential import report_text

    runs = runs_for(range(5), 10.0, "clear")
    runs.loc[runs["method"] == "ours", "knn_acc"] = np.nan
    runs["notes"] = "kNN skipped"
    record = run_round(0, runs, [("clear", "ours", "clip_lt")], DESIGN, CLAIMS, {})
    text = report_text(record, DESIGN, CLAIMS)
    assert "kNN n/a: no finite values: not decided" in text and "nan" not in text
    # more seeds cannot give it a value: every later round reads these seeds again
    assert "round 2 adds seeds 5-9, though a part without a value in these seeds stays undecided" in text


def test_the_report_says_what_the_cap_lacked_for_each_undecided_part():
    from modgap.verdict.sequential import report_text
    from modgap.verdict.stats import seeds_for_power

    record = run_round(2, runs_for(range(20), 2.0, "unclear", noise=8.0), [("unclear", "ours", "clip_lt")], DESIGN,
                       CLAIMS, {})  # fmt: skip
    part = next(p for c in record["comparisons"][0]["checks"] for p in c["parts"] if p["key"] == "2:v_measure")
    assert part["state"] == "inconclusive"
    needed = seeds_for_power(part["distances"], part["sd"], record["level"])
    assert needed > 20
    assert f"about {needed} paired seeds would decide it at the last round's level" in report_text(
        record, DESIGN, CLAIMS
    )


def test_claims_read_the_runs_as_the_first_round_naming_the_round_or_the_next_seeds():
    from modgap.verdict.sequential import first_round_text

    comparisons = [("clear", "ours", "clip_lt"), ("unclear", "ours", "clip_lt")]
    runs = pd.concat([runs_for(range(5), 10.0, "clear@40"), runs_for(range(5), 1.0, "unclear@40", noise=5.0),
                      runs_for(range(5), 0.0, "unclear@10")])  # fmt: skip
    text = first_round_text(runs, {"clear": "clear@40", "unclear": "unclear@40"}, comparisons, DESIGN, CLAIMS, {})
    clear, unclear = text.split("\n\nunclear: ")
    assert "clear: ours vs clip_lt, 5 paired seeds (stopped after round 1 of 3)" in clear
    assert clear.count("decided in round 1 (5 seeds)") == 3
    assert "(open after round 1 of 3)" in unclear and "open after round 1: round 2 adds seeds 5-9" in unclear
    assert "Sequential verdict after round 1 of 3:" in text and "at the cap" not in text
    # the same record as the decide design's first round on those runs
    record = run_round(0, runs_for(range(5), 10.0, "clear"), [comparisons[0]], DESIGN, CLAIMS, {})
    assert [c["state"] for c in record["comparisons"][0]["checks"]] == ["holds"] * 3


def test_claims_say_why_runs_of_other_seeds_are_not_the_first_round():
    from modgap.verdict.sequential import first_round_text

    comparison = [("clear", "ours", "clip_lt")]
    runs = runs_for(range(100, 105), 10.0, "clear@40")
    text = first_round_text(runs, {"clear": "clear@40"}, comparison, DESIGN, CLAIMS, {})
    assert "Not read: clear: ours has seeds 100-104, round 1 of the plan seeds 0-4" in text
    assert "[HOLDS]" not in text
    doubled = pd.concat([runs_for(range(5), 10.0, "clear@40"), runs_for([3], 10.0, "clear@40")])
    assert "ours has seeds 0, 1, 2, 3, 3, 4, round 1" in first_round_text(
        doubled, {"clear": "clear@40"}, comparison, DESIGN, CLAIMS, {}
    )
    absent = first_round_text(
        runs_for(range(5), 10.0, "other@40"), {"clear": "clear@40"}, comparison, DESIGN, CLAIMS, {}
    )
    assert "Not read: clear: ours has seeds none" in absent
    with pytest.raises(ValueError, match="no last-epoch evaluation named for clear"):
        first_round_text(runs, {}, comparison, DESIGN, CLAIMS, {})
    assert first_round_text(runs, {}, [], DESIGN, CLAIMS, {}) == ""


def test_a_round_of_one_more_seed_names_that_seed():
    from modgap.verdict.sequential import first_round_text

    design = Design.of({"rounds": [5, 6], "spending": "pocock", "first_seed": 0})
    runs = runs_for(range(5), 1.0, "unclear@40", noise=5.0)
    text = first_round_text(runs, {"unclear": "unclear@40"}, [("unclear", "ours", "clip_lt")], design, CLAIMS, {})
    assert "round 2 adds seeds 5\n" in text and "5-5" not in text
