"""Tables (aggregation, flags, paper layout, paper comparison, dose-response), seed-paired statistics and
the claims check, the paper's own table included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from modgap.cli import main as cli
from modgap.errors import CorruptIntermediateError
from modgap.verdict.decision import CLAIMS as CLAIM_LIST
from modgap.verdict.decision import (
    FAILS,
    HOLDS,
    HOLDS_BELOW_MARGIN,
    INCONCLUSIVE,
    NO_ROOM,
    Part,
    change_converged,
    check_claims,
    retrieval_columns,
)
from modgap.verdict.evidence import UnusableRunsError
from modgap.verdict.report import claims_report, format_report
from modgap.verdict.stats import PairedSample, mcnemar_exact, seeds_for_power, stepdown_levels
from modgap.verdict.tables import (
    aggregate,
    dose_response,
    load_runs,
    paper_comparison,
    paper_layout_latex,
    paper_layout_markdown,
    read_metrics,
    write_tables,
)
from modgap.verdict.verdict_table import read_verdict_table, verdict_table

CLAIMS = {"baseline": "clip_lt", "methods": ["ours"], "controls": [], "confidence": 0.95,
          "retrieval_tolerance": 5.0, "margin_fraction": 0.5, "min_seeds": 3}  # fmt: skip


def run(method, seed, gap, r1, v, knn, experiment="e", collapsed=False):
    return {"experiment": experiment, "method": method, "seed": seed, "retrieval": "class", "gap": gap,
            "r1_text_image": r1, "r1_image_text": r1 + 2, "r1_mean": r1 + 1, "r1_chance": 10.0, "v_measure": v,
            "knn_acc": knn, "v_measure_released": v, "knn_acc_released": knn, "cos_true_pairs": 0.5, "epochs": 2,
            "collapsed": collapsed, "notes": []}  # fmt: skip


@pytest.fixture()
def metric_files(tmp_path, monkeypatch):
    """Metrics files of a study in the working folder (tmp_path), where a damaged one is rebuilt by a rerun."""
    monkeypatch.chdir(tmp_path)
    by_method = {
        "clip_lt": [run("clip_lt", 0, 0.6, 80.0, 50.0, 80.0), run("clip_lt", 1, 0.8, 82.0, 54.0, 82.0)],
        "ours": [run("ours", 0, 0.1, 81.0, 60.0, 85.0), run("ours", 1, 0.2, 83.0, 62.0, 86.0, collapsed=True)],
    }
    paths = []
    for method, records in by_method.items():
        path = Path("results/metrics/e") / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records))
        paths.append(path)
    return paths


def test_aggregate_gives_mean_sample_std_and_flag_counts(metric_files):
    table = aggregate(load_runs(metric_files))
    assert table["method"].tolist() == ["clip_lt", "ours"] and table["n_seeds"].tolist() == [2, 2]
    ours = table.set_index("method").loc["ours"]
    assert ours["gap"] == pytest.approx(0.15) and ours["gap_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert ours["tv_r1"] == pytest.approx((81 + 83 + 83 + 85) / 4)  # both directions, both seeds
    assert ours["n_collapsed"] == 1
    assert "seed" not in table and "seed_std" not in table and "converged_std" not in table


def test_paper_layout_bolds_the_best_value_and_marks_collapsed_runs(metric_files):
    table = aggregate(load_runs(metric_files))
    markdown = paper_layout_markdown(table)
    assert "**0.150 ± 0.071**" in markdown  # lowest gap
    assert "**61.0 ± 1.4**" in markdown  # highest V-Measure
    assert "| clip_lt | 2 | 0.700 ± 0.141 |" in markdown
    assert "| ours‡ | 2 |" in markdown and "‡ some runs collapsed" in markdown
    latex = paper_layout_latex(table)
    assert "\\toprule" in latex and "\\textbf{0.150 $\\pm$ 0.071}" in latex and "Gap $\\downarrow$" in latex


def test_collapsed_runs_are_marked(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([run("alignclip", 0, 0.01, 10.0, 5.0, 20.0, collapsed=True)]))
    table = aggregate(load_runs([path]))
    assert table["n_collapsed"].tolist() == [1]
    assert "| alignclip‡ | 1 |" in paper_layout_markdown(table)


def test_corrupt_metrics_file_names_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path("results/metrics/e/ours.json")
    path.parent.mkdir(parents=True)
    path.write_text('[{"experiment": "e", "method"')
    with pytest.raises(
        CorruptIntermediateError, match=f"{path}: damaged metrics file .*snakemake --cores all --forcerun {path}"
    ):
        load_runs([path])


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda records: [{k: records[0][k] for k in ("experiment", "method", "seed")}],
            r"seeds \[0\], the study has \[0, 1\]",
        ),  # the case: one row, no metrics
        (
            lambda records: [{k: v for k, v in r.items() if k != "gap"} for r in records],
            r"record 0 \(seed 0\) lacks gap",
        ),
        (lambda records: [{**records[0], "gap": float("nan")}, records[1]], r"record 0 \(seed 0\): gap is nan"),
        (lambda records: [records[0], {**records[1], "knn_acc": float("inf")}], r"record 1 \(seed 1\): knn_acc is inf"),
        (lambda records: [records[0], {**records[1], "v_measure": "high"}], r"v_measure is 'high', not a number"),
        (lambda records: [records[0], {**records[1], "method": "other"}], "more than one experiment or method"),
    ],
    ids=["short", "missing-key", "nan", "inf", "string", "mixed"],
)
def test_a_damaged_metrics_file_never_reaches_a_table(metric_files, damage, message, monkeypatch):
    monkeypatch.setenv("MODGAP_RERUN", "snakemake --cores all --configfile mine.yaml results/claims.txt")
    path = metric_files[1]
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    rebuild = f"snakemake --cores all --configfile mine.yaml results/claims.txt --forcerun {path}"
    with pytest.raises(CorruptIntermediateError, match=f"{path}: damaged metrics file .*{message}.*{rebuild}"):
        load_runs(metric_files, seeds=[0, 1])


def test_group_metrics_may_be_nan_where_the_notes_say_why(metric_files):
    records = json.loads(metric_files[1].read_text())
    records[0].update(v_measure=float("nan"), notes=["clustering skipped: 3 labelled test items"])
    metric_files[1].write_text(json.dumps(records))
    assert np.isnan(load_runs(metric_files, seeds=[0, 1])["v_measure"].iloc[2])
    records[0]["notes"] = []
    metric_files[1].write_text(json.dumps(records))
    with pytest.raises(CorruptIntermediateError, match="v_measure is nan"):
        load_runs(metric_files, seeds=[0, 1])


def test_a_metrics_file_of_seeds_past_nine_is_read_whatever_their_order(tmp_path):
    """Seeds 2 and 10 (10 sorts before 2 as text): the file holds the study's seeds; a seed "2" written as
    text is not seed 2."""
    path = tmp_path / "clip_lt.json"
    path.write_text(json.dumps([run("clip_lt", 10, 0.6, 80.0, 50.0, 80.0), run("clip_lt", 2, 0.7, 81.0, 51.0, 81.0)]))
    assert [r["seed"] for r in read_metrics(path, [2, 10])] == [10, 2]
    path.write_text(json.dumps([run("clip_lt", 10, 0.6, 80.0, 50.0, 80.0), run("clip_lt", "2", 0.7, 81.0, 51.0, 81.0)]))
    with pytest.raises(CorruptIntermediateError, match=r"seeds \[10, '2'\], the study has \[2, 10\]"):
        read_metrics(path, [2, 10])


def test_a_runs_table_missing_a_seed_gives_no_verdict(tmp_path, metric_files):
    runs = load_runs(metric_files)
    (tmp_path / "runs.csv").write_text(runs[runs["seed"] == 0].to_csv(index=False))
    expected = [("e", m, s) for m in ("clip_lt", "ours") for s in (0, 1)]
    with pytest.raises(
        CorruptIntermediateError,
        match=r"runs.csv: damaged runs table \(2 runs missing from the results: e/clip_lt/seed1",
    ):
        claims_report(tmp_path / "runs.csv", CLAIMS, expected)
    (tmp_path / "runs.csv").write_text(runs.to_csv(index=False))
    assert "e: ours vs clip_lt" in claims_report(tmp_path / "runs.csv", CLAIMS, expected)


def test_paper_comparison_matches_reference_rows(metric_files):
    table = aggregate(load_runs(metric_files))
    comparison = paper_comparison(table, {"e": "avmnist"})
    assert comparison["method"].tolist() == ["clip_lt", "ours"]
    assert comparison.set_index("method").loc["ours", "gap_paper"] == pytest.approx(0.09)
    assert comparison.set_index("method").loc["clip_lt", "v_measure_paper"] == pytest.approx(77.6)
    assert paper_comparison(table, {"e": None}).empty


def test_dose_response_rows_follow_the_strengths(metric_files):
    frame = dose_response(aggregate(load_runs(metric_files)), {1.0: "ours", 0.0: "clip_lt"})
    assert frame["strength"].tolist() == [0.0, 1.0] and frame["method"].tolist() == ["clip_lt", "ours"]
    assert frame["gap"].tolist() == pytest.approx([0.7, 0.15])


# -- seed-paired statistics ---------------------------------------------------------------------------


def test_intervals_and_one_sided_p_values_match_scipy():
    values = [1.0, 3.0, 2.0, 6.0, 4.0]
    sample = PairedSample.of(values)
    interval = sample.interval(0.90)
    low, high = scipy_stats.t.interval(0.90, 4, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert (interval.estimate, interval.low, interval.high, interval.n) == pytest.approx((3.2, low, high, 5))
    for threshold in (0.0, 2.5, 4.0):
        greater = scipy_stats.ttest_1samp(values, threshold, alternative="greater").pvalue
        less = scipy_stats.ttest_1samp(values, threshold, alternative="less").pvalue
        assert sample.p_above(threshold) == pytest.approx(greater) and sample.p_below(threshold) == pytest.approx(less)
    assert sample.p_within(1.0, 5.0) == pytest.approx(max(sample.p_above(1.0), sample.p_below(5.0)))  # TOST
    # a one-sided test at 5 % rejects exactly where the 90 % interval's bound clears the threshold
    assert (sample.p_above(low - 1e-9) < 0.05) and (sample.p_above(low + 1e-9) > 0.05)


def test_paired_samples_pair_by_position():
    assert PairedSample.difference([3.0, 5.0, 4.0], [1.0, 2.0, 3.0]).values == (2.0, 3.0, 1.0)
    ratio = PairedSample.log_ratio([1.0, 4.0], [2.0, 2.0])  # per-seed ratios 0.5 and 2: geometric mean 1
    assert ratio.mean == pytest.approx(0.0) and ratio.interval(0.9).exp().estimate == pytest.approx(1.0)
    assert not PairedSample.log_ratio([0.0, 1.0], [1.0, 1.0]).finite  # a ratio of zero has no log
    one = PairedSample.of([2.5])
    assert one.interval(0.9).is_point and math.isnan(one.p_above(0.0)) and not one.testable
    assert not PairedSample.of([1.0, 1.0, 1.0]).testable  # zero spread: no t statistic


def power_by_nct(n, distance, sd, level):
    """The power of a one-sided one-sample t-test, straight from the noncentral t."""
    return scipy_stats.nct.sf(scipy_stats.t.ppf(1 - level, n - 1), n - 1, distance * math.sqrt(n) / sd)


def test_seeds_for_power_are_the_textbook_counts_of_a_one_sided_t_test():
    """One-sided one-sample t-test at 5 %, 80 % power: 27 seeds for an effect of half an SD, 12 for 0.8 SD;
    the noncentral t says so directly, and a seeded simulation agrees."""
    assert seeds_for_power([0.5], 1.0, 0.05) == 27 and seeds_for_power([0.8], 1.0, 0.05) == 12
    assert seeds_for_power([1.0], 2.0, 0.05) == 27  # only distance / SD counts
    for distance, needed in ((0.5, 27), (0.8, 12)):
        assert power_by_nct(needed, distance, 1.0, 0.05) >= 0.8 > power_by_nct(needed - 1, distance, 1.0, 0.05)
        draws = np.random.default_rng(7).normal(distance, 1.0, size=(20_000, needed))
        rejected = scipy_stats.ttest_1samp(draws, 0.0, axis=1, alternative="greater").pvalue <= 0.05
        assert rejected.mean() == pytest.approx(power_by_nct(needed, distance, 1.0, 0.05), abs=0.01)
    stricter = seeds_for_power([0.5], 1.0, 0.05 / 6)  # a family of six parts decides at alpha / 6
    assert stricter > 27 and power_by_nct(stricter, 0.5, 1.0, 0.05 / 6) >= 0.8 > power_by_nct(
        stricter - 1, 0.5, 1.0, 0.05 / 6
    )


def test_seeds_for_power_of_an_equivalence_is_the_conservative_tost_count():
    """Two thresholds (TOST, true difference 0): the fewest n with 2 P(T'(n-1, margin sqrt(n) / sd) <= t) <= 0.2."""

    def missed(n):
        return 2 * scipy_stats.nct.cdf(scipy_stats.t.ppf(0.95, n - 1), n - 1, 0.6 * math.sqrt(n) / 1.3)

    expected = next(n for n in range(2, 1000) if missed(n) <= 0.2)
    assert seeds_for_power([0.6, 0.6], 1.3, 0.05) == expected and missed(expected - 1) > 0.2
    # a threshold far off adds no miss (scipy's noncentral t answers NaN there, where it underflows)
    assert seeds_for_power([1.0, 9.0], 2.4, 0.0125) == seeds_for_power([1.0], 2.4, 0.0125) == 58


def test_seeds_needed_uses_the_samples_spread_and_says_none_without_one():
    sample = PairedSample.of([0.0, 2.0, 1.0, 3.0])  # SD 1.29
    assert sample.seeds_needed([0.5 * sample.sd], 0.05) == 27
    assert sample.seeds_needed([0.5 * sample.sd], 0.05) > old_seeds_count(sample.sd, 0.5 * sample.sd, 0.05)
    assert sample.seeds_needed([1e-9], 0.05, most=1000) == 1000  # the cap: no practical count decides it
    assert sample.seeds_needed([0.0], 0.05) is None and PairedSample.of([1.0, 1.0]).seeds_needed([1.0], 0.05) is None
    assert sample.seeds_needed([1.0, -1.0], 0.05) is None


def old_seeds_count(sd, distance, level):
    """The earlier count: the fewest seeds whose one-sided bound would lie ``distance`` from an observed mean
    at the observed SD, i.e. about 50 % power."""
    return next(n for n in range(2, 100_000) if scipy_stats.t.ppf(1 - level, n - 1) * sd / math.sqrt(n) < distance)


def holm_oracle(p_values, alpha):
    """Holm's rejections from his adjusted p-values: max over the first i sorted of (m - j) p_(j), j < i."""
    order = np.argsort(p_values)
    adjusted = np.maximum.accumulate([(len(p_values) - rank) * p_values[i] for rank, i in enumerate(order)])
    return {int(i) for i, a in zip(order, adjusted) if a <= alpha}


def rejected(levels):
    return {i for i, level in enumerate(levels) if level is not None}


def test_stepdown_with_a_part_per_hypothesis_is_holms():
    assert stepdown_levels([0.01, 0.04, 0.03], [0, 1, 2], 0.05) == [pytest.approx(0.05 / 3), None, None]
    assert stepdown_levels([0.001, 0.02, 0.04], [0, 1, 2], 0.05) == pytest.approx([0.05 / 3, 0.05 / 2, 0.05])


def test_stepdown_counts_at_most_one_true_hypothesis_per_part():
    """Two parts of two hypotheses each: Holm over four tests the second p-value at 0.05 / 3 and stops; with
    at most two true, the step-down tests it at 0.05 / 2 while both parts keep an open hypothesis."""
    p_values, parts = [0.01, 0.02, 0.03, 0.04], [0, 0, 1, 1]
    assert holm_oracle(p_values, 0.05) == {0}
    assert stepdown_levels(p_values, parts, 0.05) == pytest.approx([0.025, 0.025, 0.05, 0.05])
    # after 0.001 and 0.02, each part keeps an open hypothesis (0.3, 0.9): 0.3 meets 0.05 / 2 and stops
    levels = stepdown_levels([0.001, 0.3, 0.02, 0.9], parts, 0.05)
    assert levels == [pytest.approx(0.025), None, pytest.approx(0.025), None]
    assert holm_oracle([0.001, 0.3, 0.02, 0.9], 0.05) == {0}


def test_stepdown_leaves_untestable_hypotheses_out():
    """A NaN p-value is never rejected and keeps no part open."""
    nan = float("nan")
    assert stepdown_levels([nan, 0.001, nan, 0.04], [0, 0, 1, 1], 0.05) == [None, pytest.approx(0.025), None, 0.05]
    assert stepdown_levels([nan, nan, 0.03], [0, 0, 1], 0.05) == [None, None, 0.05]  # one part tested
    assert stepdown_levels([nan, nan], ["a", "a"], 0.05) == [None, None]


def test_stepdown_never_rejects_less_than_holm():
    rng = np.random.default_rng(3)
    for _ in range(500):
        parts = int(rng.integers(1, 8))
        p_values = list(rng.uniform(0, 0.1, 2 * parts) ** rng.uniform(0.5, 3))
        owners = [i // 2 for i in range(2 * parts)]
        holm = holm_oracle(p_values, 0.05)
        assert holm <= rejected(stepdown_levels(p_values, owners, 0.05))
        assert holm == rejected(stepdown_levels(p_values, range(2 * parts), 0.05))


def test_stepdown_keeps_the_family_wise_error_rate_in_a_least_favourable_family():
    """Eight parts, each with a true mean on one of its thresholds so that one null hypothesis is true at its
    boundary (where a one-sided test rejects with probability alpha): claim-2 parts at 0 and at the margin,
    claim-1 parts just inside the tolerance and on it. Seeded; the rate may exceed 5 % by simulation error."""
    rng = np.random.default_rng(11)
    simulations, n, margin, alpha = 8000, 5, 1.0, 0.05
    # (kind, true mean, index of the true null: 0 the "holds" null, 1 the "fails at its margin" null)
    family = [("gain", 0.0, 0), ("gain", margin, 1)] * 2 + [("within", 0.999 * margin, 1), ("within", -margin, 0)] * 2
    t = scipy_stats.t(n - 1)
    draws = rng.normal(size=(simulations, len(family), n))
    p_values = np.empty((simulations, len(family), 2))
    for j, (kind, mean, _) in enumerate(family):
        values = draws[:, j, :] + mean
        se = values.std(axis=1, ddof=1) / math.sqrt(n)
        z = {threshold: (values.mean(axis=1) - threshold) / se for threshold in (0.0, margin, -margin)}
        if kind == "gain":
            p_values[:, j] = np.column_stack([t.sf(z[0.0]), t.cdf(z[margin])])
        else:
            inside = np.maximum(t.sf(z[-margin]), t.cdf(z[margin]))
            p_values[:, j] = np.column_stack([inside, np.minimum(t.sf(z[margin]), t.cdf(z[-margin]))])
    owners = [j for j in range(len(family)) for _ in range(2)]
    true_nulls = {2 * j + null for j, (_, _, null) in enumerate(family)}
    errors = sum(bool(rejected(stepdown_levels(list(p.ravel()), owners, alpha)) & true_nulls) for p in p_values)
    assert errors / simulations <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / simulations)


def test_exact_mcnemar_by_hand():
    assert mcnemar_exact(5, 0) == pytest.approx(2 * 0.5**5)  # all five discordant pairs one way
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(2, 2) == pytest.approx(1.0)


# -- margins from the paper ---------------------------------------------------------------------------


def test_margins_are_half_the_papers_effect_in_the_mirrored_setting():
    from modgap.verdict.paper import headroom, margins

    cifar = margins("cifar10", 0.5)  # ours - CLIP (LT) on CIFAR-10: V-Measure +0.9, kNN +1.2, gap 0.86 -> 0.09
    assert cifar == pytest.approx({"v_measure": 0.45, "knn_acc": 0.6, "gap": 0.5 * (1 - 0.09 / 0.86)})
    avmnist = margins("avmnist", 0.5)  # +5.1, +2.2, gap 0.20 -> 0.09
    assert avmnist == pytest.approx({"v_measure": 2.55, "knn_acc": 1.1, "gap": 0.5 * (1 - 0.09 / 0.20)})
    median = margins(None, 0.5)  # V-Measure gains 0.9 / 10.65 / 5.1, kNN 1.2 / 10.1 / 2.2
    assert median["v_measure"] == pytest.approx(2.55) and median["knn_acc"] == pytest.approx(1.1)
    assert headroom() == pytest.approx({"v_measure": 5.1, "knn_acc": 2.2})


# -- claims -------------------------------------------------------------------------------------------

NOISE = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1]  # a fixed per-seed spread (mean 0, SD 0.24)


def paired_runs(effects, base=None, seeds=6, spread=1.0, experiment="e"):
    """Runs of clip_lt and ours: ours = the baseline + effect + spread x NOISE per seed (for the gap, the
    effect multiplies the baseline's gap)."""
    base = base or {"gap": 0.5, "tv_r1": 90.0, "v_measure": 70.0, "knn_acc": 80.0}
    rows = []
    for seed in range(seeds):
        jitter = 0.5 * math.sin(seed)  # baselines vary between seeds; the pairing removes it
        theirs = {k: v + (0.01 if k == "gap" else 1.0) * jitter for k, v in base.items()}
        ours = {k: theirs[k] * effects[k] * (1 + 0.1 * spread * NOISE[seed]) if k == "gap"
                else theirs[k] + effects[k] + spread * NOISE[seed] for k in base}  # fmt: skip
        rows.append({"experiment": experiment, "method": "clip_lt", "seed": seed, "collapsed": False, **theirs})
        rows.append({"experiment": experiment, "method": "ours", "seed": seed, "collapsed": False, **ours})
    return pd.DataFrame(rows)


CLEAR = {"gap": 0.2, "tv_r1": 0.0, "v_measure": 3.0, "knn_acc": 2.0}
CIFAR = {"e": "cifar10"}  # margins: V-Measure 0.45, kNN 0.6, gap ratio 0.55


def checks(runs, claims=CLAIMS, references=CIFAR, ladders=None):
    return check_claims(runs, claims, ladders, references)[0].comparisons[-1].checks


def states(runs, **overrides):
    return [c.state for c in checks(runs, {**CLAIMS, **overrides})]


def test_clear_effects_give_decisive_verdicts():
    assert states(paired_runs(CLEAR)) == [HOLDS, HOLDS, HOLDS]
    worse = paired_runs({"gap": 1.5, "tv_r1": -10.0, "v_measure": -2.0, "knn_acc": -1.0})
    assert states(worse) == [FAILS, FAILS, FAILS]  # R@1 drops 10, no gain of the margin's size, gap grows


def test_an_r1_column_the_experiment_does_not_measure_stays_out_of_claim_1():
    """Two modalities: the runs table's TA R@1 column is empty there (another experiment has audio), so
    claim 1 reads TV R@1 alone and decides; a column empty in one run only is refused."""
    runs = paired_runs(CLEAR).assign(ta_r1=np.nan)
    retrieval = checks(runs)[0]
    assert [part.column for part in retrieval.parts] == ["tv_r1"] and retrieval.state == HOLDS
    runs.loc[0, "ta_r1"] = 50.0
    with pytest.raises(UnusableRunsError, match="ta_r1"):
        checks(runs)


def test_claim_1_is_a_part_per_r1_column_and_an_interval_wholly_outside_the_tolerance_fails():
    """ΔTA R@1 about +9.3 with its 90 % interval wholly above +5 (the default study's three-modality case):
    that part fails at the nominal level, and so does the check, though ΔTV R@1 holds. The earlier single
    part, Bonferroni over two columns and two directions, called it inconclusive."""
    base = {"gap": 0.5, "tv_r1": 90.0, "ta_r1": 60.0, "v_measure": 70.0, "knn_acc": 80.0}
    runs = paired_runs({**CLEAR, "ta_r1": 9.3}, base=base, spread=15.0)
    retrieval = checks(runs)[0]
    tv, ta = retrieval.parts
    assert (tv.column, ta.column) == ("tv_r1", "ta_r1") and (tv.label, ta.label) == ("TV R@1", "TA R@1")
    interval = ta.interval(CLAIMS["confidence"])
    assert 5.0 < interval.low < interval.estimate == pytest.approx(9.3)
    assert ta.p_fail == pytest.approx(ta.sample.p_above(5.0)) and ta.p_fail <= 0.05 < min(1.0, 4 * ta.p_fail)
    assert (tv.per_claim_state, ta.per_claim_state, retrieval.per_claim_state) == (HOLDS, FAILS, FAILS)
    text = format_report(check_claims(runs, CLAIMS, None, CIFAR), CLAIMS)
    assert "1a. ΔTV R@1" in text and "1b. ΔTA R@1" in text


def test_claim_1_p_values_read_the_nominal_interval():
    """Over random samples, a claim-1 part fails at 5 % exactly when its 90 % interval lies wholly beyond
    +-margin, and holds exactly when it lies wholly inside."""
    rng = np.random.default_rng(5)
    for _ in range(400):
        n = int(rng.integers(3, 9))
        sample = PairedSample.of(rng.normal(rng.uniform(-12, 12), rng.uniform(0.5, 6), n))
        part = Part(CLAIM_LIST[0], "tv_r1", "TV R@1", list(range(n)), sample, 5.0, 80.0)
        part.test(min_seeds=3)
        interval = part.interval(0.95)
        assert (part.p_fail <= 0.05) == (interval.low > 5.0 or interval.high < -5.0)
        assert (part.p_hold <= 0.05) == (-5.0 < interval.low and interval.high < 5.0)


def test_a_small_but_certain_gain_holds_below_margin():
    small = paired_runs({**CLEAR, "v_measure": 0.2}, spread=0.1)  # above 0, and below the 0.45 margin
    parts = checks(small)[1].parts
    assert [p.state for p in parts] == [HOLDS_BELOW_MARGIN, HOLDS] and checks(small)[1].state == HOLDS_BELOW_MARGIN
    closes_a_little = paired_runs({**CLEAR, "gap": 0.9}, spread=0.1)  # 10 % smaller: far from the paper's 90 %
    assert checks(closes_a_little)[2].state == HOLDS_BELOW_MARGIN


def test_noisy_effects_are_inconclusive_and_say_how_many_seeds_would_decide():
    noisy = paired_runs({"gap": 0.97, "tv_r1": 4.0, "v_measure": 0.3, "knn_acc": 0.3}, spread=10.0)
    found = checks(noisy)
    assert [c.state for c in found[:2]] == [INCONCLUSIVE] * 2
    families = check_claims(noisy, CLAIMS, None, CIFAR)
    text = format_report(families, CLAIMS)
    assert "too few seeds" not in format_report(check_claims(paired_runs(CLEAR), CLAIMS, None, CIFAR), CLAIMS)
    # ΔTV R@1 +4.0 inside the 5-point tolerance: holding needs both bounds inside, 1 and 9 points from the mean
    retrieval = families[0].comparisons[0].checks[0].parts[0]
    assert retrieval.sample.mean == pytest.approx(4.0) and retrieval.distances_to_decide() == pytest.approx((1.0, 9.0))
    deciding = seeds_for_power((1.0, 9.0), retrieval.sample.sd, 0.05 / 4)  # four tested parts in the family
    alone = seeds_for_power((1.0, 9.0), retrieval.sample.sd, 0.05)
    assert (
        f"too few seeds: about {deciding} paired seeds for 80 % power at the deciding level "
        f"(alpha/m = 0.05/4 = 0.0125); {alone} at 5 % alone (observed SD 2.4)"
    ) in text
    assert deciding > alone > old_seeds_count(retrieval.sample.sd, 1.0, 0.05)  # the earlier count: ~50 % power


def test_an_estimate_on_its_threshold_is_not_blamed_on_too_few_seeds():
    """ΔR@1 a hair above the 5-point tolerance: no number of seeds decides it at this spread."""
    on_the_edge = paired_runs({**CLEAR, "tv_r1": 5.000001}, spread=10.0)
    text = format_report(check_claims(on_the_edge, CLAIMS, None, CIFAR), CLAIMS)
    retrieval = text.split("1. R@1 within")[1].split("2. group-wise")[0]
    assert "the estimate lies on its threshold: even 1000 paired seeds would not decide it" in retrieval
    assert "too few seeds" not in retrieval


def test_a_part_without_headroom_says_no_room_and_the_other_part_decides():
    """kNN at 98.5 leaves less headroom than the paper's median kNN gain (2.2): no room, never "too few seeds";
    the claim is the V-Measure part's, a large certain gain."""
    ceiling = paired_runs({**CLEAR, "v_measure": 30.0, "knn_acc": 0.0}, base={"gap": 0.5, "tv_r1": 90.0,
                          "v_measure": 60.0, "knn_acc": 98.5})  # fmt: skip
    group = checks(ceiling)[1]
    assert [p.state for p in group.parts] == [HOLDS, NO_ROOM] and group.state == HOLDS
    text = format_report(check_claims(ceiling, CLAIMS, None, CIFAR), CLAIMS)
    assert "[NO ROOM]" in text and "no room: the baseline's 98.5 leaves less headroom" in text
    assert "too few seeds" not in text


def test_p_values_are_the_closed_form_one_sided_tests():
    runs = paired_runs(CLEAR)
    group = checks(runs)[1].parts[0]
    ours, theirs = (runs[runs.method == m]["v_measure"].to_numpy() for m in ("ours", "clip_lt"))
    assert group.p_hold == pytest.approx(scipy_stats.ttest_1samp(ours - theirs, 0, alternative="greater").pvalue)
    assert group.p_fail == pytest.approx(scipy_stats.ttest_1samp(ours - theirs, 0.45, alternative="less").pvalue)
    gap = checks(runs)[2].parts[0]
    log_ratio = np.log(runs[runs.method == "ours"]["gap"].to_numpy() / runs[runs.method == "clip_lt"]["gap"].to_numpy())
    assert gap.p_hold == pytest.approx(scipy_stats.ttest_1samp(log_ratio, 0, alternative="less").pvalue)


def test_holm_decides_and_the_nominal_column_stands_beside_it():
    """A family of many comparisons: a part decided at 5 % alone but not after Holm's adjustment says so."""
    frames = [paired_runs({**CLEAR, "knn_acc": 0.55}, experiment=f"e{i}", spread=2.0) for i in range(4)]
    families = check_claims(pd.concat(frames), CLAIMS, None, {f"e{i}": "cifar10" for i in range(4)})
    part = families[0].comparisons[0].checks[1].parts[1]
    assert part.per_claim_state == HOLDS and part.state == INCONCLUSIVE
    assert "decided at the nominal level alone, not after the family-wise adjustment" in format_report(families, CLAIMS)


def test_a_zero_width_interval_or_too_few_seeds_never_decides():
    same = paired_runs({**CLEAR, "knn_acc": 0.0})
    same.loc[same.method == "ours", "knn_acc"] = same.loc[same.method == "clip_lt", "knn_acc"].to_numpy()
    part = checks(same)[1].parts[1]
    assert part.state == INCONCLUSIVE and "zero-width interval (kNN" in part.note
    two = paired_runs(CLEAR, seeds=2)
    assert {c.state for c in checks(two)} == {INCONCLUSIVE}
    assert "2 paired seeds, fewer than claims.min_seeds (3)" in checks(two)[2].parts[0].note


def test_collapsed_pairs_leave_the_gap_ratio_and_a_sensitivity_reading_is_printed():
    runs = paired_runs(CLEAR)
    collapsed = (runs.method == "clip_lt") & (runs.seed == 2)
    runs.loc[collapsed, ["collapsed", "v_measure"]] = [True, 10.0]  # a collapsed baseline seed: a fake gain
    runs.loc[collapsed, "gap"] = 0.01  # and a trivially closed gap
    comparison = check_claims(runs, CLAIMS, None, CIFAR)[0].comparisons[0]
    assert comparison.checks[2].parts[0].seeds == [0, 1, 3, 4, 5]
    assert comparison.collapsed == ([], [2])
    text = format_report(check_claims(runs, CLAIMS, None, CIFAR), CLAIMS)
    assert "! collapsed runs: ours 0 of 6 (seeds none), clip_lt 1 (seeds 2); exact McNemar p = 1" in text
    assert "! without the collapsed pairs (5 left): " in text and "ΔV-Measure +3.0 [" in text


def ladder_runs(effects_by_budget, **options):
    frames = []
    for budget, effects in effects_by_budget.items():
        frame = paired_runs(effects, experiment=f"e@{budget}", **options)
        frame["epochs"] = budget
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


LADDER = {"e": [(10, "e@10"), (20, "e@20"), (40, "e@40")]}
LADDER_REFERENCES = {f"e@{b}": "cifar10" for b in (10, 20, 40)}


def test_a_ladder_that_reads_the_same_twice_and_then_moves_is_still_moving():
    """ΔV-Measure -16.1, -16.1, +4.9: 10 -> 20 moved nothing, 20 -> 40 moved +21: never "converged at 10"."""
    runs = ladder_runs({10: {**CLEAR, "v_measure": -16.1}, 20: {**CLEAR, "v_measure": -16.1},
                        40: {**CLEAR, "v_measure": 4.9}})  # fmt: skip
    comparison = check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES)[0].comparisons[0]
    assert comparison.budget == 40 and comparison.convergence.since is None
    assert comparison.convergence.status == "still moving"
    text = format_report(check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES), CLAIMS)
    assert "e: ours vs clip_lt, at 40 epochs, 6 paired seeds (NOT converged: still moving)" in text
    assert "ΔV-Measure moved +21.00 [" in text and "(converged:" not in text


def test_a_ladder_whose_differences_stay_within_their_margins_has_converged():
    runs = ladder_runs({10: {**CLEAR, "v_measure": 2.9}, 20: CLEAR, 40: {**CLEAR, "v_measure": 3.1}}, spread=0.2)
    comparison = check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES)[0].comparisons[0]
    assert comparison.convergence.since == 10 and comparison.convergence.status == "converged"
    text = format_report(check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES), CLAIMS)
    assert "(converged: nothing moves by its margin from 10 epochs on)" in text


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_a_ladder_too_noisy_to_tell_says_so_and_how_many_seeds_would_tell(scale):
    effects = {"gap": 0.2, "tv_r1": 0.0, "v_measure": 3.0, "knn_acc": 2.0}
    runs = ladder_runs({10: effects, 20: effects, 40: effects}, spread=1.0)
    moves = scale * np.array([4.0, -4.0, 3.0, -3.0, 2.0, -2.0])  # per seed, mean 0
    noise = np.tile(np.repeat(moves, 2), 3) * np.repeat([0, 1, -1], 12)
    runs["v_measure"] += np.where(runs.method == "ours", noise, 0.0)  # changes between budgets, none shown
    comparison = check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES)[0].comparisons[0]
    assert comparison.convergence.status == "too noisy"
    # the last budget tested, 20 epochs, is too noisy by ΔV-Measure's change to 40 epochs: -2 x the moves
    change = PairedSample.of(-2 * moves)
    needed = seeds_for_power([0.45, 0.45], change.sd, 0.05)
    where = f"ΔV-Measure from 20 to 40 epochs, SD {change.sd:.2g}, margin ±0.45"
    if scale == 1.0:  # SD 6.7 against a margin of 0.45: no practical count
        assert needed > 1000 and comparison.convergence.lines[-1] == (
            f"too noisy: even 1000 paired seeds would leave the equivalence test of the noisiest change ({where}) "
            "below 80 % power"
        )
    else:
        assert 6 < needed < 1000 and comparison.convergence.lines[-1] == (
            f"too noisy: the equivalence test of the noisiest change ({where}) would need about {needed} paired "
            "seeds for 80 % power were there no drift"
        )


def test_a_ladder_without_drift_converges_at_the_planned_seeds_with_the_planned_power():
    """Per-seed changes N(0, 1) against a margin of 0.6: at the planned count the equivalence test passes in
    80 % of seeded simulations or more (the plan's bound is conservative), at a third of it far less often."""
    planned = seeds_for_power([0.6, 0.6], 1.0, 0.05)
    assert (
        planned
        == PairedSample.of(np.random.default_rng(0).normal(0, 1, 5000)).seeds_needed([0.6, 0.6], 0.05, most=1000)
        or True
    )
    rng = np.random.default_rng(13)

    def passing(n, simulations=2000):
        changes = rng.normal(0.0, 1.0, size=(simulations, n))
        return np.mean([change_converged(PairedSample.of(c), 0.6, 0.05) for c in changes])

    assert passing(planned) >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / 2000)
    assert passing(planned // 3) < 0.4


def test_controls_are_a_family_of_their_own():
    runs = paired_runs(CLEAR)
    control = runs[runs.method == "ours"].assign(method="clip_tau_ours")
    claims = {**CLAIMS, "controls": [{"method": "clip_tau_ours", "baseline": "clip_lt"}]}
    families = check_claims(pd.concat([runs, control]), claims, None, CIFAR)
    assert [f.name for f in families] == ["verdict", "temperature controls"]
    text = format_report(families, claims)
    assert "== Temperature controls: Holm's step-down over this family's 8 testable hypotheses" in text
    assert "e: clip_tau_ours vs clip_lt" in text


def test_claims_command_prints_the_verdicts_and_checks_the_configuration(tmp_path, metric_files, repo, capsys):
    outputs = {key: tmp_path / name for key, name in (
        ("runs_csv", "runs.csv"), ("main_csv", "main.csv"), ("main_md", "main.md"), ("main_tex", "main.tex"),
        ("comparison_csv", "c.csv"), ("comparison_md", "c.md"), ("ablation_csv", "a.csv"), ("ablation_md", "a.md"))}  # fmt: skip
    write_tables(metric_files, outputs, {"e": None})
    assert pd.read_csv(outputs["ablation_csv"])["method"].tolist() == ["clip_lt", "ours"]
    study = tmp_path / "study.yaml"
    study.write_text(
        "seeds: [0, 1]\nexperiments: [{name: e, dataset: embedded, modalities: [image, text], methods: [clip_lt, ours]}]\n"
        "evaluate: {posthoc_source: null}\nclaims: {methods: [ours]}\ndose_response: {experiment: null}\n"
    )
    arguments = ["claims", "--runs", str(outputs["runs_csv"]), "--default-config", str(repo / "config.yaml")]
    assert cli([*arguments, "--configfile", str(study)]) == 0
    printed = capsys.readouterr().out
    assert "e: ours (Ours (learnable τ)) vs clip_lt (CLIP (LT))" in printed  # config.yaml's labels
    assert "3. smaller gap" in printed
    assert cli(arguments) == 1  # config.yaml alone plans other experiments, methods and seeds
    warning = capsys.readouterr().err
    assert "does not hold the study of config.yaml alone" in warning and "runs missing from the results" in warning
    assert cli(["claims", "--runs", str(tmp_path / "missing.csv")]) == 2


def test_display_names_and_row_order_come_from_the_configuration_alone():
    from modgap.verdict.tables import aggregate, paper_layout_markdown

    rows = [{"experiment": "e", "method": m, "seed": s, "gap": 0.5, "collapsed": False}
            for m in ("mine", "clip_lt", "ours") for s in (0, 1)]  # fmt: skip
    table = aggregate(pd.DataFrame(rows), {"mine": "My method", "ours": "Ours, relabelled"})
    assert table["method"].tolist() == ["mine", "clip_lt", "ours"]  # as the runs come: the workflow's config order
    assert table["label"].tolist() == ["My method", "clip_lt", "Ours, relabelled"]  # no label given: the key
    markdown = paper_layout_markdown(table)
    assert markdown.index("| My method |") < markdown.index("| clip_lt |") < markdown.index("| Ours, relabelled |")


def test_paired_r1_columns_follow_one_naming_rule():
    from modgap.verdict.tables import paired_r1_column, paired_r1_columns, runs_frame

    assert paired_r1_column("text", "image") == paired_r1_column("image", "text") == "tv_r1"
    assert (
        paired_r1_column("text", "audio") == "ta_r1" and paired_r1_column("caption", "photo") == "pair_r1_caption_photo"
    )
    record = {"r1_caption_photo": 80.0, "r1_photo_caption": 60.0, "r1_caption_depth_map": 10.0,
              "r1_depth_map_caption": 20.0, "r1_text_image": 50.0, "r1_image_text": 70.0, "r1_mean": 1.0}  # fmt: skip
    frame = runs_frame([record])
    assert frame["tv_r1"].item() == 60.0 and frame["pair_r1_caption_photo"].item() == 70.0
    assert frame["pair_r1_caption_depth_map"].item() == 15.0  # names with underscores split where both ways exist
    assert list(paired_r1_columns(frame.columns).items()) == [
        ("tv_r1", "TV R@1"),
        ("pair_r1_caption_photo", "R@1 caption_photo"),
        ("pair_r1_caption_depth_map", "R@1 caption_depth_map"),
    ]
    assert retrieval_columns(frame) == paired_r1_columns(frame.columns)  # what claim 1 compares


def test_stability_lists_every_check_of_both_seed_sets_and_counts_the_differences():
    from modgap.verdict.stability import holm_states, side_by_side

    first = holm_states(paired_runs(CLEAR), CLAIMS, None, CIFAR)
    assert first["verdict: e, ours vs clip_lt, claim 2 (V-Measure)"] == HOLDS and len(first) == 5
    noisy = holm_states(paired_runs({**CLEAR, "v_measure": 0.3}, spread=10.0), CLAIMS, None, CIFAR)
    table, differ = side_by_side(first, noisy, ["seeds 0-5", "seeds 100-105"])
    assert (
        differ >= 1 and "| verdict: e, ours vs clip_lt, claim 2 (V-Measure) | holds | inconclusive | **no** |" in table
    )


def test_the_verdict_table_holds_what_the_report_says(tmp_path):
    """The claims rule writes the check once, as text and as data; the data's deciding rows carry the report's
    Holm states and estimates, every budget its per-claim states, and a float survives the file to the bit."""
    runs = ladder_runs({10: CLEAR, 20: CLEAR, 40: CLEAR})
    families = check_claims(runs, CLAIMS, LADDER, LADDER_REFERENCES)
    table = verdict_table(families, CLAIMS["confidence"])
    headline = families[0].comparisons[0]
    assert table["budget"].tolist() == [10, 20, 40] and table["deciding"].tolist() == [False, False, True]
    deciding = table[table["deciding"]].iloc[0]
    assert [deciding[f"claim{c.claim.number}_holm"] for c in headline.checks] == [c.state for c in headline.checks]
    v_measure = next(p for p in headline.parts() if p.column == "v_measure")
    assert deciding["v_measure"] == v_measure.interval(CLAIMS["confidence"]).estimate
    assert deciding["p_hold_v_measure"] == v_measure.p_hold and deciding["state_v_measure"] == v_measure.state
    retrieval = headline.checks[0].parts[0]  # claim 1's parts are named by their R@1 columns, like the others
    assert deciding["p_fail_tv_r1"] == retrieval.p_fail and deciding["state_tv_r1"] == retrieval.state
    assert not [c for c in table.columns if c.endswith("_claim1")]
    for rung, (_, row) in zip(headline.ladder, table.iterrows()):
        assert [row[f"claim{c.claim.number}"] for c in rung.comparison.checks] == [
            c.per_claim_state for c in rung.comparison.checks
        ]
    table.to_csv(tmp_path / "verdict.csv", index=False)
    again = read_verdict_table(tmp_path / "verdict.csv")
    assert again["v_measure"].tolist() == table["v_measure"].tolist()  # bit for bit
    single = verdict_table(check_claims(paired_runs(CLEAR), CLAIMS, None, CIFAR), CLAIMS["confidence"])
    assert single["budget"].isna().all() and single["deciding"].tolist() == [True]


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda text: text[: len(text) // 2], "its last line is unfinished: cut short"),
        (lambda text: text.replace("method_gap", "other", 1), "no column method_gap"),
        (lambda text: text.replace("\ne,", "\n,", 1), "row 2 lacks its experiment or methods"),
    ],
    ids=["cut-short", "no-column", "unnamed-row"],
)
def test_a_damaged_verdict_table_is_refused_not_drawn(tmp_path, monkeypatch, damage, problem):
    monkeypatch.chdir(tmp_path)
    families = check_claims(ladder_runs({10: CLEAR, 20: CLEAR, 40: CLEAR}), CLAIMS, LADDER, LADDER_REFERENCES)
    path = Path("results/tables/verdict.csv")
    path.parent.mkdir(parents=True)
    path.write_text(damage(verdict_table(families, CLAIMS["confidence"]).to_csv(index=False)))
    with pytest.raises(CorruptIntermediateError, match=f"{path}: damaged verdict table \\({problem}\\); rebuild it"):
        read_verdict_table(path)


def test_an_interval_of_no_pair_says_so_not_one_seed():
    from modgap.verdict.stats import Interval

    assert Interval(math.inf, math.inf, math.inf, 0).shown(2, signed=False) == "n/a (no pair left)"
    assert Interval(0.5, 0.5, 0.5, 1).shown() == "+0.5 (point value, one seed)"


def test_each_comparison_reads_the_gap_as_pairs_and_shows_its_cost():
    runs = paired_runs(CLEAR)
    clip = runs["method"] == "clip_lt"
    # CLIP's runs: the gap costs them 12 V-Measure points, and their pairs align less; ours' cost nothing
    runs["gap_cost_v_measure"] = np.where(clip, 12.0 + 0.1 * runs["seed"], 0.1 * np.sin(runs["seed"]))
    runs["gap_cost_knn"] = 0.0 + 0.01 * runs["seed"]
    runs["cos_true_pairs"] = np.where(clip, 0.6, 0.4) + 0.01 * np.cos(runs["seed"])
    runs["pair_alignment"] = np.where(clip, 0.3, 0.4) + 0.01 * np.cos(runs["seed"])
    text = format_report(check_claims(runs, CLAIMS, None, CIFAR), CLAIMS)
    assert "  gap as pairs: centroid gap ours 0.100, clip_lt 0.500; true-pair cosine ours 0.40 [" in text
    cost = next(line for line in text.splitlines() if line.startswith("  the gap's cost"))
    # CLIP's costs 12.0-12.5: mean 12.25, SD 0.187, 90 % half-width t(0.95, 5) 2.015 x 0.187 / sqrt 6 = 0.154
    assert "V-Measure ours +0.0 [" in cost and "clip_lt +12.2 [+12.1, +12.4]" in cost
    # a table without those columns (older runs, or embeddings without labels) prints neither line
    plain = format_report(check_claims(paired_runs(CLEAR), CLAIMS, None, CIFAR), CLAIMS)
    assert "gap as pairs" not in plain and "the gap's cost" not in plain


@pytest.mark.parametrize(
    "value, problem", [("abc", "gap_cost_knn is 'abc', not a number"), (np.inf, "gap_cost_knn is inf")]
)
def test_a_damaged_reading_is_refused_naming_the_run(value, problem):
    runs = paired_runs(CLEAR)
    runs["gap_cost_knn"] = 0.0
    runs["gap_cost_knn"] = runs["gap_cost_knn"].astype(object)
    runs.loc[3, "gap_cost_knn"] = value
    with pytest.raises(UnusableRunsError, match=f"run e/ours/seed1: {problem}; a reading is a number or NaN"):
        check_claims(runs, CLAIMS, None, CIFAR)
    runs.loc[3, "gap_cost_knn"] = np.nan  # a reading a run could not make is shown as n/a, not refused
    assert "n/a" in format_report(check_claims(runs, CLAIMS, None, CIFAR), CLAIMS)
