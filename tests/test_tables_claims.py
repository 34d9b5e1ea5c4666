"""Tables (aggregation, paper layout, paper comparison, ablation) and the claims check."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from modgap.claims import check_claims, format_verdicts
from modgap.cli import main as cli
from modgap.tables import (
    aggregate,
    load_runs,
    paper_comparison,
    paper_layout_latex,
    paper_layout_markdown,
    write_tables,
)

THRESHOLDS = {"baseline": "clip_lt", "method": "ours", "retrieval_tolerance": 5.0, "group_gain": 2.0, "gap_ratio": 0.5}


def run(method, seed, gap, r1, v, knn, experiment="e"):
    return {"experiment": experiment, "method": method, "seed": seed, "retrieval": "class", "gap": gap,
            "r1_text_image": r1, "r1_image_text": r1 + 2, "v_measure": v, "knn_acc": knn, "cos_true_pairs": 0.5}  # fmt: skip


@pytest.fixture()
def metric_files(tmp_path):
    runs = [
        run("clip_lt", 0, 0.6, 80.0, 50.0, 80.0), run("clip_lt", 1, 0.8, 82.0, 54.0, 82.0),
        run("ours", 0, 0.1, 81.0, 60.0, 85.0), run("ours", 1, 0.2, 83.0, 62.0, 86.0),
    ]  # fmt: skip
    paths = []
    for entry in runs:
        path = tmp_path / f"{entry['method']}_{entry['seed']}.json"
        path.write_text(json.dumps(entry))
        paths.append(path)
    return paths


def test_aggregate_gives_mean_and_sample_std(metric_files):
    table = aggregate(load_runs(metric_files))
    assert table["method"].tolist() == ["clip_lt", "ours"] and table["n_seeds"].tolist() == [2, 2]
    ours = table.set_index("method").loc["ours"]
    assert ours["gap"] == pytest.approx(0.15) and ours["gap_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert ours["tv_r1"] == pytest.approx((81 + 83 + 83 + 85) / 4)  # both directions, both seeds
    assert "seed" not in table and "seed_std" not in table


def test_paper_layout_bolds_the_best_value(metric_files):
    table = aggregate(load_runs(metric_files))
    markdown = paper_layout_markdown(table)
    assert "**0.150 ± 0.071**" in markdown  # lowest gap
    assert "**61.0 ± 1.4**" in markdown  # highest V-Measure
    assert "| CLIP (LT) | 2 | 0.700 ± 0.141 |" in markdown
    latex = paper_layout_latex(table)
    assert "\\toprule" in latex and "\\textbf{0.150 $\\pm$ 0.071}" in latex and "Gap $\\downarrow$" in latex


def test_paper_comparison_matches_reference_rows(metric_files):
    table = aggregate(load_runs(metric_files))
    comparison = paper_comparison(table, {"e": "avmnist"})
    assert comparison["method"].tolist() == ["clip_lt", "ours"]
    assert comparison.set_index("method").loc["ours", "gap_paper"] == pytest.approx(0.09)
    assert comparison.set_index("method").loc["clip_lt", "v_measure_paper"] == pytest.approx(77.6)
    assert paper_comparison(table, {"e": None}).empty


def test_claims_verdicts(metric_files):
    table = aggregate(load_runs(metric_files))
    verdicts = check_claims(table, THRESHOLDS, {"e": 2})
    assert [v.holds for v in verdicts] == [True, True, True]
    assert "gap 0.150 ± 0.071 vs 0.700 ± 0.141 (ratio 0.21)" in verdicts[2].evidence
    strict = check_claims(table, {**THRESHOLDS, "group_gain": 15.0, "retrieval_tolerance": 0.5}, {"e": 2})
    assert [v.holds for v in strict] == [False, False, True]
    assert "2 of 3" not in format_verdicts(verdicts, THRESHOLDS) and "3 of 3 checks hold." in format_verdicts(
        verdicts, THRESHOLDS)  # fmt: skip


def test_claims_command_prints_the_verdicts(tmp_path, metric_files, repo, capsys):
    outputs = {key: tmp_path / name for key, name in (
        ("main_csv", "main.csv"), ("main_md", "main.md"), ("main_tex", "main.tex"),
        ("comparison_csv", "c.csv"), ("comparison_md", "c.md"), ("ablation_csv", "a.csv"), ("ablation_md", "a.md"))}  # fmt: skip
    write_tables(metric_files, outputs, {"e": None})
    assert pd.read_csv(outputs["ablation_csv"])["method"].tolist() == ["clip_lt", "ours"]
    assert cli(["claims", "--table", str(outputs["main_csv"]), "--default-config", str(repo / "config.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "[HOLDS] 3. the loss closes the gap" in printed
    assert cli(["claims", "--table", str(tmp_path / "missing.csv")]) == 2
