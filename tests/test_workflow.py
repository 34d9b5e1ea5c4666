"""The Snakemake workflow end to end on a tiny configuration, in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modgap.data.format import read_manifest, verify_checksums

TINY = {
    "seeds": [0, 1],
    "datasets": {"embedded": {"source": "embedded", "n_samples": 120}},
    "experiments": [
        {"name": "pair", "dataset": "embedded", "modalities": ["image", "text"],
         "methods": ["clip_lt", "ours", "alignclip"]},
        {"name": "triple", "dataset": "embedded", "modalities": ["image", "audio", "text"],
         "methods": ["clip_lt", "ours"], "paper_reference": "avmnist"},
    ],
    "model": {"width": 16, "depth": 1, "heads": 2, "embed_dim": 8},
    "train": {"epochs": 2, "batch_size": 32, "progress": "never"},
    "evaluate": {"sweep_strengths": [0.0, 1.0], "kmeans_n_init": 2, "kmeans_states": 2},
    "dose_response": {"experiment": "triple", "strengths": [0.0, 0.5, 1.0]},
}  # fmt: skip
VERDICT = re.compile(r"\[(HOLDS|HOLDS, BELOW MARGIN|FAILS|INCONCLUSIVE|NO ROOM)\]")  # the deciding (Holm) column
FIGURES = {
    "pair": ["latent_2d", "cosine_histograms", "training_curves", "gap_sweep"],
    "triple": ["latent_2d", "latent_3d", "cosine_histograms", "training_curves", "gap_sweep"],
}


def snakemake(snakefile: Path, workdir: Path, config: dict, *args: str, check: bool = True):
    configfile = workdir / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
        "--configfile", str(configfile), "--cores", "2", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


def ran(result, rule: str) -> bool:
    """Whether a run finished a job of ``rule`` (the default profile prints one line per finished job)."""
    return f"(Rule: {rule})" in result.stdout + result.stderr


def planned_jobs(result) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    lines = (result.stdout + result.stderr).splitlines()
    if not any(line.startswith("Job stats:") for line in lines):
        return {}
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:")) + 3
    counts = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def checkout(repo, tmp_path_factory) -> Path:
    """A copy of the workflow and package sources, so tests may edit code without touching the repository."""
    copy = tmp_path_factory.mktemp("checkout")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, copy / name)
    for name in ("workflow", "src", "envs", "profiles"):  # profiles/default: what a user's run loads
        shutil.copytree(repo / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def study_run(checkout, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    return workdir, snakemake(checkout / "Snakefile", workdir, TINY)


@pytest.fixture(scope="module")
def study(study_run) -> Path:
    return study_run[0]


@pytest.mark.slow
def test_study_prepares_trains_evaluates_and_plots(study):
    data = study / "results" / "data" / "embedded"
    assert sum(s["size"] for s in read_manifest(data)["splits"].values()) == 120
    assert verify_checksums(data) == []
    table = pd.read_csv(study / "results" / "tables" / "main.csv")
    assert list(zip(table["experiment"], table["method"])) == [
        ("pair", "clip_lt"), ("pair", "ours"), ("pair", "alignclip"), ("pair", "posthoc"),
        ("triple", "clip_lt"), ("triple", "ours"), ("triple", "posthoc"),
    ]  # fmt: skip
    assert (table["n_seeds"] == 2).all() and "n_collapsed" in table and "n_converged" not in table
    runs = pd.read_csv(study / "results" / "tables" / "runs.csv")
    assert len(runs) == 2 * len(table) and {"collapsed", "temperature", "effective_rank_image"} <= set(runs)
    for column in ("gap", "gap_std", "tv_r1", "v_measure", "knn_acc", "r1_text_audio"):
        assert column in table, column
    gaps = table.set_index(["experiment", "method"])["gap"]
    for experiment in ("pair", "triple"):  # lambda = 1 shifts the gap away (up to re-normalisation)
        assert gaps[(experiment, "posthoc")] < 0.6 * gaps[(experiment, "clip_lt")]
    comparison = pd.read_csv(study / "results" / "tables" / "paper_comparison.csv")
    assert set(comparison["method"]) == {"clip_lt", "ours"} and set(comparison["paper_dataset"]) == {"avmnist"}
    assert "\\toprule" in (study / "results" / "tables" / "main.tex").read_text()
    claims = (study / "results" / "claims.txt").read_text()
    # two comparisons: three checks each, claim 2's two parts, and claim 1's two with three modalities (TV, TA)
    assert len(VERDICT.findall(claims)) == 12 and "2 paired seeds, fewer than claims.min_seeds (3)" in claims
    assert "pair: ours (Ours (learnable τ)) vs clip_lt (CLIP (LT)), at its one budget, 2 paired seeds" in claims
    for experiment, names in FIGURES.items():
        for name in names:
            for suffix in ("pdf", "png"):
                path = study / "results" / "figures" / experiment / f"{name}.{suffix}"
                assert path.stat().st_size > 1000, path
    for stage in ("prepare", "train", "metrics"):
        assert any((study / "results" / "logs" / stage).rglob("*.log")), stage
        assert stage == "prepare" or any((study / "results" / "benchmarks" / stage).rglob("*.tsv")), stage


@pytest.mark.slow
def test_the_run_ends_with_the_verdict(study_run):
    _, result = study_run
    claims = (study_run[0] / "results" / "claims.txt").read_text()
    assert result.stdout.rstrip().endswith(claims.rstrip())
    assert "Elapsed time" in result.stderr  # Snakemake's closing lines came before it


@pytest.mark.slow
def test_results_name_their_configuration_and_modgap_claims_checks_definitions(checkout, study, tmp_path, capsys):
    from modgap.cli import main

    claims = (study / "results" / "claims.txt").read_text()
    assert re.match(r"Configuration [0-9a-f]{12}: .*config\.yaml \+ .*tiny\.yaml ", claims)
    assert (study / "results" / "tables" / "main.md").read_text().rstrip().endswith(claims.splitlines()[0])
    runs = study / "results" / "tables" / "runs.csv"
    assert pd.read_csv(runs)["definition"].str.fullmatch(r"[0-9a-f]{12}").all()
    same, changed = tmp_path / "same.yaml", tmp_path / "changed.yaml"
    same.write_text(yaml.safe_dump(TINY))
    edited = {**TINY, "methods": {"ours": {"loss": {"atp": {"weight": 2.0}}}}}
    changed.write_text(yaml.safe_dump(edited))
    common = ["claims", "--runs", str(runs), "--default-config", str(checkout / "config.yaml"), "--configfile"]
    assert main([*common, str(same)]) == 0
    printed = capsys.readouterr().out
    assert "Holm" in printed and "round 1 of the plan" in printed and claims.endswith(printed)  # the file's verdict
    assert main([*common, str(changed)]) == 1  # same names, another definition of ours: refused
    error = capsys.readouterr().err
    assert "pair/ours: its runs were made by definition" in error and "triple/ours" in error


@pytest.mark.slow
def test_finished_study_has_nothing_to_do(checkout, study):
    result = snakemake(checkout / "Snakefile", study, TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_editing_a_description_retrains_nothing(checkout, study):
    edited = {**TINY, "methods": {"clip_lt": {"description": "worded anew, nothing else"}}}
    assert planned_jobs(snakemake(checkout / "Snakefile", study, edited, "-n")) == {}


@pytest.mark.slow
def test_adding_a_seed_trains_only_that_seed(checkout, study):
    seeded = {**TINY, "seeds": [0, 1, 2]}
    result = snakemake(checkout / "Snakefile", study, seeded, "-n", "--quiet", "reason")  # each job with its log
    assert planned_jobs(result)["train"] == 5  # the five methods of both experiments, seed 2 alone
    assert set(re.findall(r"results/logs/train/\w+/\w+/seed(\d+)\.log", result.stdout + result.stderr)) == {"2"}


@pytest.mark.slow
def test_a_display_name_reruns_only_tables_figures_and_claims(checkout, study):
    labelled = {**TINY, "methods": {"ours": {"label": "Ours, renamed"}}}
    planned = planned_jobs(snakemake(checkout / "Snakefile", study, labelled, "-n"))
    assert planned.pop("tables") == planned.pop("claims") == planned.pop("all") == 1
    assert planned and all(rule.startswith("figure_") for rule in planned), planned  # the figures name methods too


# Every class of result-defining key, edited on the finished tiny study: the runs it defines retrain in the first
# call, and the verdict is rebuilt (a Snakemake DAG skips a job's own rerun checks while a job it depends on must
# run, so an `ancient` input whose producer re-runs once hid a changed batch size until a second call).
RESULT_DEFINING_EDITS = {
    "train.batch_size": ({"train": {**TINY["train"], "batch_size": 16}}, 10),
    "train.lr": ({"train": {**TINY["train"], "lr": 0.01}}, 10),
    "train.epochs": ({"train": {**TINY["train"], "epochs": 3}}, 10),
    "model.width": ({"model": {**TINY["model"], "width": 24}}, 10),
    "methods.ours.temperature.init": ({"methods": {"ours": {"temperature": {"init": 0.05}}}}, 4),
    "experiments[1].train.batch_size": (
        {"experiments": [TINY["experiments"][0], {**TINY["experiments"][1], "train": {"batch_size": 16}}]}, 4
    ),
    "datasets.embedded.n_samples": ({"datasets": {"embedded": {"source": "embedded", "n_samples": 140}}}, 10),
    "evaluate.kmeans_n_init": ({"evaluate": {**TINY["evaluate"], "kmeans_n_init": 3}}, 0),
    "claims.confidence": ({"claims": {"confidence": 0.9}}, 0),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(RESULT_DEFINING_EDITS))
def test_a_result_defining_edit_is_acted_on_in_the_first_call(checkout, study, key):
    edit, trained = RESULT_DEFINING_EDITS[key]
    planned = planned_jobs(snakemake(checkout / "Snakefile", study, {**TINY, **edit}, "-n"))
    assert planned.get("train", 0) == trained, planned
    assert planned.get("prepare_dataset", 0) == (key.startswith("datasets.")), planned
    assert planned["claims"] == 1 and planned["tables"] == 1, planned  # no older verdict stays
    if key != "claims.confidence":
        assert planned["metrics"] > 0, planned


@pytest.mark.slow
def test_a_missing_model_and_a_new_batch_size_retrain_in_one_call(checkout, study, tmp_path):
    workdir = tmp_path / "study"
    shutil.copytree(study, workdir, symlinks=True)
    (workdir / "results/models/pair/ours/seed0/model.pt").unlink()
    smaller = {**TINY, "train": {**TINY["train"], "batch_size": 16}}
    result = snakemake(checkout / "Snakefile", workdir, smaller, "results/models/pair/ours/seed0/model.pt")
    assert ran(result, "train") and (workdir / "results/models/pair/ours/seed0/model.pt").is_file()


@pytest.mark.slow
def test_a_changed_loss_weight_retrains_only_that_method(checkout, study):
    weighted = {**TINY, "methods": {"ours": {"loss": {"atp": {"weight": 2.0}}}}}
    result = snakemake(checkout / "Snakefile", study, weighted, "-n", "--quiet", "reason")  # each job with its log
    planned = planned_jobs(result)
    assert planned["train"] == 4  # ours in both experiments, two seeds each; clip_lt and alignclip are reused
    trained = set(
        re.findall(r"results/logs/train/(\w+)/(\w+)/seed\d+\.log", result.stdout + result.stderr)
    )  # the train jobs' logs
    assert trained == {("pair", "ours"), ("triple", "ours")}


@pytest.mark.slow
def test_a_copied_project_keeps_its_results(checkout, study, tmp_path):
    """cp -a of the whole project (workflow and results, in the same relative places) plans nothing."""
    for folder in (checkout, study):
        subprocess.run(["cp", "-a", str(folder), str(tmp_path / folder.name)], check=True)
    result = snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout


@pytest.mark.slow
def test_dose_response_target(checkout, study):
    result = snakemake(checkout / "Snakefile", study, TINY, "dose_response")
    assert ran(result, "train")  # only the new strength trains
    trained = {p.parent.name for p in (study / "results" / "models" / "triple").glob("*/seed0")}
    assert trained == {"clip_lt", "ours", "ours_x0.5"}
    table = pd.read_csv(study / "results" / "tables" / "dose_response.csv")
    assert table["strength"].tolist() == [0.0, 0.5, 1.0] and table["method"].tolist() == [
        "clip_lt",
        "ours_x0.5",
        "ours",
    ]
    for suffix in ("pdf", "png"):
        assert (study / "results" / "figures" / "triple" / f"dose_response.{suffix}").stat().st_size > 1000


@pytest.mark.slow
def test_factorial_target(checkout, study):
    config = {**TINY, "factorial": {"experiments": ["pair"], "temperatures": [0.02, 0.04, 0.08, 0.16]}}
    snakemake(checkout / "Snakefile", study, config, "factorial")
    trained = {p.parent.name for p in (study / "results" / "models" / "pair").glob("*/seed1")}
    assert {f"{arm}_fixed{t:g}" for arm in ("clip_lt", "ours") for t in (0.02, 0.04, 0.08, 0.16)} <= trained
    table = pd.read_csv(study / "results" / "tables" / "factorial.csv")
    assert len(table) == 8 and set(table["arm"]) == {"clip_lt", "ours"} and (table["seeds"] == 2).all()
    for column in ("gap", "cos_true_pairs", "knn_acc", "r1_mean", "centred_knn_acc", "centred_gap"):
        assert table[column].notna().all(), column
    # the tiny test split holds too few points for 10 clusters: V-Measure is n/a, and the text says why
    assert table["v_measure"].isna().all()
    readings = pd.read_csv(study / "results" / "tables" / "factorial_readings.csv")
    assert set(readings["reading"]) == {"gap terms", "temperature (per doubling)", "centring"}
    text = (study / "results" / "factorial.txt").read_text()
    assert "shown after Holm" in text and "V-Measure τ 0.02: n/a (a run could not measure it" in text
    assert "nan" not in text
    assert (study / "results" / "figures" / "factorial.png").stat().st_size > 1000
    # the default's factorial is switched off by a preset that replaces its experiments
    assert "the factorial is off" in snakemake(checkout / "Snakefile", study, TINY, "-n").stderr


@pytest.mark.slow
def test_decide_target_adds_seeds_only_while_a_check_is_open(checkout, study):
    config = {**TINY, "decide": {"rounds": [2, 3]}, "claims": {"min_seeds": 2}}
    snakemake(checkout / "Snakefile", study, config, "decide")
    first = json.loads((study / "results" / "decide" / "round0.json").read_text())
    assert [c["seeds"] for c in first["comparisons"]] == [[0, 1], [0, 1]]
    text = (study / "results" / "decide.txt").read_text()
    assert "rounds of 2, 3 paired seeds" in text and "Sequential verdict:" in text
    open_after_first = {c["experiment"] for c in first["comparisons"] if c["open"]}
    # seed 2 trained and measured for exactly the comparisons the first round left open
    measured = {p.parts[-3] for p in (study / "results" / "decide" / "metrics").glob("*/*/seed2.json")}
    assert measured == open_after_first
    table = pd.read_csv(study / "results" / "tables" / "decide.csv")
    assert len(table) == 6 and set(table["claim"]) == {1, 2, 3}
    # every seed is cached once: a second call does nothing
    again = snakemake(checkout / "Snakefile", study, config, "decide", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_editing_a_figure_reruns_only_that_figure(checkout, study):
    module = checkout / "src" / "modgap" / "figures" / "cosine.py"
    original = module.read_text()
    module.write_text(original + "\n# a change\n")
    try:
        assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {"figure_cosine": 2, "all": 1}
    finally:
        module.write_text(original)


@pytest.mark.slow
def test_editing_the_tables_reruns_tables_and_claims_only(checkout, study):
    module = checkout / "src" / "modgap" / "verdict" / "tables.py"
    original = module.read_text()
    module.write_text(original + "\n# a change\n")
    try:
        assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {
            "tables": 1,
            "claims": 1,
            "all": 1,
        }
    finally:
        module.write_text(original)


@pytest.mark.slow
def test_editing_a_metric_redraws_the_latent_figures_that_print_it(checkout, study):
    """The latent figures print each panel's gap (modgap.metrics.measures.gap_metrics), so a changed metric redraws them.
    Only their own jobs are considered (--allowed-rules): the metrics module retrains too, which would redraw
    every figure whatever the figure's own code list."""
    module = checkout / "src" / "modgap" / "metrics" / "measures.py"
    original = module.read_text()
    module.write_text(original + "\n# a change\n")
    targets = [f"results/figures/{name}.pdf" for name in ("pair/latent_2d", "triple/latent_2d", "triple/latent_3d")]
    try:
        dry = snakemake(checkout / "Snakefile", study, TINY, *targets, "-n", "--allowed-rules", "figure_latent")
    finally:
        module.write_text(original)
    assert planned_jobs(dry) == {"figure_latent": 3}


@pytest.mark.slow
def test_one_figure_target_rebuilds_just_that_figure(checkout, study):
    target = "results/figures/triple/latent_3d.pdf"
    (study / target).unlink()
    result = snakemake(checkout / "Snakefile", study, TINY, target)
    assert planned_jobs(snakemake(checkout / "Snakefile", study, TINY, "-n")) == {}
    assert ran(result, "figure_latent") and not ran(result, "train")
    assert (study / target).is_file()


@pytest.mark.slow
def test_report_gathers_tables_and_figures(checkout, study):
    snakemake(checkout / "Snakefile", study, TINY, "--report", str(study / "report.zip"))
    import zipfile

    with zipfile.ZipFile(study / "report.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("main.csv") for n in names) and any(n.endswith("gap_sweep.png") for n in names)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"seeds": []}, "config key 'seeds': [] should be non-empty"),
        ({"train": {"epochs": "many"}}, "config key 'train.epochs': 'many' is not of type 'integer'"),
        ({"experiments": [{"name": "x", "dataset": "embedded", "modalities": ["image", "odour"]}]}, "odour"),
        (
            {
                "experiments": [
                    {"name": "x", "dataset": "embedded", "modalities": ["image", "text"], "methods": ["sam"]}
                ]
            },
            "unknown method 'sam'",
        ),
        ({"datasets": {"embedded": {"source": "embedded", "n_sample": 5}}}, "('n_sample' was unexpected)"),
        (
            {"train": {**TINY["train"], "batch_size": 1000}},
            "config key 'train.batch_size': 1000 exceeds the 90 training items",
        ),
        (
            {
                "datasets": {
                    "embedded": {"source": "embedded", "n_samples": 120},
                    "av": {"source": "avmnist", "mnist": {"extracted": "/nonexistent"}},
                }
            },
            "config key 'datasets.av.mnist.extracted': /nonexistent does not exist",
        ),
        (
            {
                "methods": {"weird": {"loss": {"frobnicate": {}}}},
                "experiments": [
                    {"name": "x", "dataset": "embedded", "modalities": ["image", "text"], "methods": ["weird"]}
                ],
            },
            "config key 'methods.weird.loss.frobnicate': unknown loss term",
        ),
        (
            {
                "datasets": {"../../escape": {"source": "embedded", "n_samples": 120}},
                "experiments": [{"name": "x", "dataset": "../../escape", "modalities": ["image", "text"]}],
            },
            "config key 'datasets': '../../escape' is not a plain name",
        ),
        ({"train": {**TINY["train"], "lr": float("nan")}}, "config key 'train.lr': nan is not a finite number"),
    ],
)
def test_broken_config_fails_before_any_job(repo, tmp_path, broken, message):
    workdir = tmp_path / "a" / "b"
    workdir.mkdir(parents=True)
    result = snakemake(repo / "Snakefile", workdir, {**TINY, **broken}, check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (workdir / "results").exists()
    # nothing outside results/ either: a name like ../../escape would have landed beside or above the workdir
    assert [p.name for p in tmp_path.iterdir()] == ["a"] and [p.name for p in (tmp_path / "a").iterdir()] == ["b"]
    assert {p.name for p in workdir.iterdir()} <= {"tiny.yaml", ".snakemake"}


@pytest.mark.slow
def test_a_key_given_twice_in_a_config_file_fails_before_any_job(repo, tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("seeds: [0, 1]\nseeds: [5, 6, 7]\n")
    result = snakemake(repo / "Snakefile", tmp_path, TINY, "--configfile", str(twice), "-n", check=False)
    assert result.returncode != 0 and not (tmp_path / "results").exists()
    assert (
        f"{twice}, line 2: key 'seeds' is given twice in one mapping (first on line 1)" in result.stdout + result.stderr
    )


@pytest.mark.slow
def test_jobs_run_the_code_of_their_own_checkout(checkout, study, tmp_path):
    """A second checkout beside the installed package: its jobs import its own modgap (its report.py edited)."""
    for folder in (checkout, study):
        subprocess.run(["cp", "-a", str(folder), str(tmp_path / folder.name)], check=True)
    claims = tmp_path / checkout.name / "src" / "modgap" / "verdict" / "report.py"
    text = claims.read_text()
    assert 'f"Claims check: methods' in text  # the edit below must change the code
    claims.write_text(text.replace('f"Claims check: methods', 'f"Claims check (second checkout): methods'))
    result = snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY)
    assert planned_jobs(snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY, "-n")) == {}
    assert ran(result, "claims")
    assert "Claims check (second checkout)" in (tmp_path / study.name / "results" / "claims.txt").read_text()
    import modgap

    assert str(tmp_path) not in modgap.__file__  # the test process itself still has the installed package


@pytest.mark.slow
def test_a_download_job_runs_the_code_of_its_own_checkout(checkout, tmp_path):
    """Download jobs too: their params are plain data, so nothing of the installed package is unpickled
    before the job's first line (a marker written by the second checkout's download code)."""
    second = tmp_path / "second"
    subprocess.run(["cp", "-a", str(checkout), str(second)], check=True)
    module = second / "src" / "modgap" / "data" / "download.py"
    marker = tmp_path / "ran"
    first_line = "    directory = Path(directory)\n"
    marked = f"    Path({str(marker)!r}).write_text(__file__)\n{first_line}"
    module.write_text(module.read_text().replace(first_line, marked, 1))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(b"not the real archive")
    config = {**TINY, "datasets": {"cifar": {"source": "cifar10", "mirror": f"file://{mirror}"}},
              "experiments": [{"name": "c", "dataset": "cifar", "modalities": ["image", "text"], "methods": ["clip_lt"]}],
              "dose_response": {"experiment": None}}  # fmt: skip
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(
        second / "Snakefile", workdir, config, "results/downloads/cifar/cifar-10-python.tar.gz", check=False
    )
    assert result.returncode != 0 and "MD5" in result.stdout + result.stderr  # the fake archive fails verification
    assert marker.read_text() == str(module)  # after this checkout's own download code ran
    import modgap

    assert str(tmp_path) not in modgap.__file__


def interrupted(snakefile: Path, workdir: Path, config: dict, stop_when) -> None:
    """Start the study and SIGKILL Snakemake and its jobs as soon as ``stop_when(workdir)`` is true."""
    configfile = workdir / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not stop_when(workdir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before the fault could be injected"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def same_outputs(reference: Path, other: Path, model_bytes: bool = True) -> list[str]:
    """Result files of ``other`` (every file under results/ but logs and benchmarks: data, models,
    dumps, metrics, tables, figures, claims) whose bytes differ from the reference study's (which may
    hold more, e.g. the dose-response of another test). Without ``model_bytes``, models are compared by
    their weights (a model file also records the run's configuration, checkpoint interval included)."""
    from modgap.training.model_files import load_trained

    root = other / "results"
    names = [
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.is_file() and p.parts[len(root.parts)] not in ("logs", "benchmarks") and p.name != ".snakemake_timestamp"
    ]  # fmt: skip
    assert len(names) > 60

    def same(name: str) -> bool:
        if not model_bytes and name.endswith("model.pt"):
            weights = [load_trained(folder / "results" / name)[1]["model"] for folder in (reference, other)]
            return weights[0].keys() == weights[1].keys() and all(
                weights[0][k].equal(weights[1][k]) for k in weights[0]
            )
        return (reference / "results" / name).read_bytes() == (root / name).read_bytes()

    return [n for n in names if not same(n)]


def temporaries(workdir: Path) -> list[Path]:
    return sorted((workdir / "results").rglob(".*.tmp"))


@pytest.mark.slow
def test_two_clean_runs_give_the_same_bytes(checkout, study, tmp_path):
    """Models (archive names), PDFs (no creation date), dumps, tables: all byte-identical."""
    snakemake(checkout / "Snakefile", tmp_path, TINY)
    assert same_outputs(study, tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_when",
    [
        lambda w: any((w / "results" / "models").glob("*/*/seed*/checkpoint.pt")),  # during training
        lambda w: any((w / "results" / "metrics").glob("*/*.json")),  # during evaluation
    ],
    ids=["training", "metrics"],
)
def test_a_killed_run_recovers_as_the_readme_says(checkout, study, tmp_path, stop_when):
    config = {**TINY, "train": {**TINY["train"], "checkpoint_every": 1}}  # checkpoints never change results
    workdir = tmp_path / "killed"
    workdir.mkdir()
    interrupted(checkout / "Snakefile", workdir, config, stop_when)
    again = snakemake(
        checkout / "Snakefile", workdir, config, check=False
    )  # docs/failures.md: run the same command again,
    if again.returncode != 0:  # and where Snakemake reports the lock the killed run left, unlock first
        assert "--unlock" in again.stdout + again.stderr, again.stderr
        snakemake(checkout / "Snakefile", workdir, config, "--unlock")
        snakemake(checkout / "Snakefile", workdir, config)
    assert same_outputs(study, workdir, model_bytes=False) == []
    assert temporaries(workdir) == []  # what the killed jobs were writing is gone


@pytest.mark.slow
def test_a_truncated_dump_fails_with_one_line_naming_it(checkout, study, tmp_path):
    for folder in (checkout, study):
        subprocess.run(["cp", "-a", str(folder), str(tmp_path / folder.name)], check=True)
    dump = tmp_path / study.name / "results" / "embeddings" / "pair" / "ours" / "seed0.npz"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    result = snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY, check=False)
    assert result.returncode != 0
    line = "error: results/embeddings/pair/ours/seed0.npz: damaged embedding dump"
    assert line in result.stderr
    assert "Traceback" not in result.stderr  # the traceback stays in the job's log, which the terminal names
    assert re.search(r"\(this job's log: results/logs/\S+\.log\)", result.stderr)
    # whichever job read the dump first (metrics or a figure) keeps the traceback in its own log
    logs = [p.read_text() for p in (tmp_path / study.name / "results" / "logs").rglob("*.log")]
    assert any("Traceback" in text and "seed0.npz" in text for text in logs)
    # the advice repeats the user's own command (its config file, its snakefile) and ends with the clean result
    command = re.search(r"rebuild it with `([^`]+)`", result.stderr).group(1)
    assert f"--configfile {tmp_path / study.name / 'tiny.yaml'}" in command
    assert command.endswith("--forcerun results/embeddings/pair/ours/seed0.npz")
    words = shlex.split(command)
    assert words[0] == "snakemake"
    subprocess.run([sys.executable, "-m", "snakemake", *words[1:]], check=True, capture_output=True)
    assert same_outputs(study, tmp_path / study.name) == []


@pytest.mark.slow
def test_a_short_metrics_file_stops_the_run_before_any_verdict(checkout, study, tmp_path):
    for folder in (checkout, study):
        subprocess.run(["cp", "-a", str(folder), str(tmp_path / folder.name)], check=True)
    workdir = tmp_path / study.name
    metrics = workdir / "results" / "metrics" / "pair" / "ours.json"
    metrics.write_text('[{"experiment": "pair", "method": "ours", "seed": 0}]\n')  # valid JSON, one row, no metrics
    claims_before = (workdir / "results" / "claims.txt").read_bytes()
    result = snakemake(tmp_path / checkout.name / "Snakefile", workdir, TINY, check=False)
    assert result.returncode != 0
    assert (
        "error: results/metrics/pair/ours.json: damaged metrics file (seeds [0], the study has [0, 1])" in result.stderr
    )
    assert not (workdir / "results" / "claims.txt").exists() or (
        (workdir / "results" / "claims.txt").read_bytes() == claims_before
    )  # no verdict printed from it


@pytest.mark.slow
def test_deleted_intermediates_are_rebuilt_by_the_next_run(checkout, study, tmp_path):
    for folder in (checkout, study):
        subprocess.run(["cp", "-a", str(folder), str(tmp_path / folder.name)], check=True)
    results = tmp_path / study.name / "results"
    deleted = [results / "embeddings" / "pair" / "ours" / "seed1.npz", results / "models" / "triple" / "clip_lt" /
               "seed0" / "model.pt", results / "metrics" / "pair" / "alignclip.json"]  # fmt: skip
    for path in deleted:
        path.unlink()
    dry = snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY, "-n")
    assert planned_jobs(dry)["train"] == 2 and planned_jobs(dry)["metrics"] >= 3  # and the post-hoc row of clip_lt
    snakemake(tmp_path / checkout.name / "Snakefile", tmp_path / study.name, TINY)
    assert all(path.is_file() for path in deleted)
    assert same_outputs(study, tmp_path / study.name) == []


def test_command_line_config_is_typed_as_a_config_file(repo, tmp_path):
    """``--config seeds=[0,1]``: Snakemake's usual override plans two seeds, not a type error."""
    result = snakemake(
        repo / "Snakefile", tmp_path, TINY, "-n", "--quiet", "reason", "--config", "seeds=[3,4]", "train={epochs: 1}"
    )
    planned = result.stdout + result.stderr
    assert "seed3.npz" in planned and "seed4.npz" in planned and "seed0.npz" not in planned


TOY_SOURCE = {
    "src/modgap/data/toy.py": """\"\"\"A toy data set: random digits-sized images, captioned by their class.\"\"\"

from __future__ import annotations

import numpy as np

from modgap.data.format import write_prepared
from modgap.data.text import encode_captions

CLASSES = ["zero", "one", "two"]


def prepare_toy(config, inputs, output_dir, name="toy"):
    rng = np.random.default_rng(config["seed"])
    text = encode_captions([[c] for c in CLASSES], 16)
    splits = {}
    for split, size in (("train", 96), ("val", 24), ("test", 24)):
        labels = np.arange(size) % len(CLASSES)
        images = rng.integers(0, 60, (size, 1, 28, 28)) + 60 * labels[:, None, None, None]  # a class's brightness
        splits[split] = {
            "image": images.astype(np.uint8),
            "labels": labels,
            "ids": np.array([f"{split}-{i}" for i in range(size)]),
            **{key: value[labels] for key, value in text.items()},
            "captions": [[CLASSES[label]] for label in labels],
        }
    return write_prepared(
        output_dir, splits, name=name, modalities=["image", "text"], class_names=CLASSES, source={"kind": "toy"},
        config=config,
    )
""",
}
TOY_EDITS = {
    "src/modgap/data/sources.py": [
        (
            '    "dumps": DataSource(',
            '    "toy": DataSource(("image", "text")),\n    "dumps": DataSource(',
        ),
    ],
    "workflow/schemas/config.schema.yaml": [
        (
            "enum: [embedded, cifar10, mscoco, avmnist, dumps, models]",
            "enum: [embedded, cifar10, mscoco, avmnist, dumps, models, toy]",
        ),
        (
            "  dumps_dataset:\n",
            "      - if: {properties: {source: {const: toy}}}\n"
            '        then: {$ref: "#/definitions/toy_dataset"}\n\n'
            "  toy_dataset:\n"
            "    type: object\n"
            "    additionalProperties: false\n"
            "    properties:\n"
            "      source: {const: toy}\n"
            "      seed: {type: integer, default: 0, description: seed of the random images}\n\n"
            "  dumps_dataset:\n",
        ),
    ],
}


def changed_files(original: Path, copy: Path) -> set[str]:
    """Files of ``copy`` that ``original`` lacks or holds otherwise, relative to ``copy``."""
    files = (p.relative_to(copy) for p in copy.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {
        str(p) for p in files if not (original / p).is_file() or (original / p).read_bytes() != (copy / p).read_bytes()
    }


@pytest.mark.slow
def test_a_data_set_added_as_docs_data_md_says_runs_through_the_study(repo, checkout, tmp_path):
    """docs/data.md, "Add a data set": a toy source added in exactly the code places the checklist names
    (its module, its entry of SOURCES, the schema) is checked, prepared, trained and evaluated."""
    section = (repo / "docs" / "data.md").read_text().partition("## Add a data set")[2]
    places = {p.replace("<source>", "toy") for p in re.findall(r"^\d+\. `([\w/<>.]+)`", section, flags=re.M)}
    code_places = {p for p in places if not p.startswith(("docs/", "tests/"))}
    toy = tmp_path / "toy_checkout"
    shutil.copytree(checkout, toy)
    for path, text in TOY_SOURCE.items():
        (toy / path).write_text(text)
    for path, edits in TOY_EDITS.items():
        text = (toy / path).read_text()
        for old, new in edits:
            assert old in text, (path, old)
            text = text.replace(old, new, 1)
        (toy / path).write_text(text)
    assert changed_files(checkout, toy) == code_places == {*TOY_SOURCE, *TOY_EDITS}

    experiment = {
        "name": "toy_pair",
        "dataset": "toys",
        "modalities": ["image", "text"],
        "methods": ["clip_lt", "ours"],
    }
    config = {**TINY, "seeds": [0], "datasets": {"toys": {"source": "toy"}}, "experiments": [experiment]}
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake(toy / "Snakefile", workdir, config, "results/claims.txt")
    runs = pd.read_csv(workdir / "results" / "tables" / "runs.csv")
    assert runs["method"].tolist() == ["clip_lt", "ours", "posthoc"] and runs["tv_r1"].notna().all()
    assert (
        "toy_pair: ours (Ours (learnable τ)) vs clip_lt (CLIP (LT))" in (workdir / "results" / "claims.txt").read_text()
    )
    larger = {**config, "train": {**config["train"], "batch_size": 64}}
    planned = planned_jobs(snakemake(toy / "Snakefile", workdir, larger, "-n", "results/claims.txt"))
    assert "prepare_dataset" not in planned and planned["train"] == 2  # the data stays prepared
    too_large = {**config, "train": {**config["train"], "batch_size": 500}}
    result = snakemake(toy / "Snakefile", workdir, too_large, "results/claims.txt", check=False)
    assert "config key 'train.batch_size': 500 exceeds the 96 training items data set 'toys' prepared" in result.stderr
    assert not ran(result, "train")
    module = toy / "src" / "modgap" / "data" / "toy.py"
    module.write_text(module.read_text() + "\n# a change\n")  # its preparation re-runs: a code dependency
    assert (
        planned_jobs(snakemake(toy / "Snakefile", workdir, config, "-n", "results/claims.txt"))["prepare_dataset"] == 1
    )
