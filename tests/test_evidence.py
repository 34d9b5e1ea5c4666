"""No verdict from inputs that cannot support one (issue 27): one test set per comparison in modgap compare,
the tables and the claims check; finite values after normalising and before any check; the command line's
options in the schema's bounds and its output folders checked before any work; a size guard on declared
arrays; and the one-line causes that replaced tracebacks and wrong messages. The workflow's side (params,
external dumps by content, killed jobs) is in test_evidence_workflow.py."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_external import paired, unit
from test_tables_claims import CLAIMS, run

from modgap.cli import BOUNDED_OPTIONS, main
from modgap.embeddings import external_files
from modgap.embeddings.external_files import EmbeddingFileError, import_dump
from modgap.embeddings.fingerprints import ItemSet, OtherItemsError, SameRunError
from modgap.errors import CorruptIntermediateError
from modgap.metrics.per_run import evaluate_method
from modgap.study.config import ConfigError, load_config
from modgap.study.plan import definition_digests, neutral_train_options, resolve_run, result_defining_run
from modgap.study.schema import load_schema
from modgap.verdict.report import claims_report
from modgap.verdict.tables import load_runs, write_tables

N = 120


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_set(path: Path, n: int = N, seed: int = 0, offset: float = 0.5, order=None, ids: bool = False, **arrays):
    """One run's embeddings of a 4-class test set of ``n`` items (row ``order[i]`` of the set at row i)."""
    labels = np.arange(n) % 4
    rng = np.random.default_rng(seed)
    shared = 2.0 * np.random.default_rng(0).normal(size=(4, 16))[labels] + rng.normal(size=(n, 16))
    found = {"image": unit(shared + offset), "text": unit(shared - offset), "labels": labels}
    if ids:
        found["ids"] = np.array([f"item{i}" for i in range(n)])
    order = np.arange(n) if order is None else order
    np.savez(path, **{**{name: values[order] for name, values in found.items()}, **arrays})
    return path


def per_seed_folders(tmp_path, seeds=3, ids=False):
    for name, offset in (("baseline", 1.0), ("candidate", 0.2)):
        (tmp_path / name).mkdir()
        for seed in range(seeds):
            write_set(tmp_path / name / f"seed{seed}.npz", seed=seed, offset=offset, ids=ids)
    return tmp_path / "baseline", tmp_path / "candidate"


# -- one test set per comparison: modgap compare -----------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, ids, said",
    [
        (lambda path: write_set(path, n=100, seed=1, offset=0.2), False, "holds 100 items and {first} 120"),
        (
            lambda path: write_set(path, seed=1, offset=0.2, labels=np.roll(np.arange(N) % 4, 1)),
            False,
            "has other labels than {first}",
        ),  # fmt: skip
        (
            lambda path: write_set(path, seed=1, offset=0.2, order=np.random.default_rng(5).permutation(N)),
            False,
            "has other labels than {first}",
        ),  # fmt: skip
        (
            lambda path: write_set(path, seed=1, offset=0.2, order=np.roll(np.arange(N), 4), ids=True),
            True,
            "has other item ids than {first}",
        ),  # rows shuffled within their classes: only the ids tell  # fmt: skip
    ],
    ids=["fewer-rows", "rolled-labels", "shuffled-rows", "shuffled-within-classes"],
)
def test_compare_refuses_runs_of_other_items(tmp_path, capsys, damage, ids, said):
    baseline, candidate = per_seed_folders(tmp_path, ids=ids)
    damage(candidate / "seed1.npz")
    code, out, err = cli(capsys, "compare", "--baseline", baseline, "--method", candidate, "--quiet")
    first = baseline / "seed0.npz"
    expected = f"{candidate / 'seed1.npz'} {said.format(first=first)}: paired runs must share one test set"
    assert (code, out, err) == (2, "", f"modgap compare: {expected}\n")


def test_compare_refuses_other_modalities_and_one_folder_twice(tmp_path, capsys):
    baseline, candidate = per_seed_folders(tmp_path)
    code, out, err = cli(capsys, "compare", "--baseline", baseline, "--method", f"{baseline}/",
                         "--baseline-name", "a", "--method-name", "b", "--quiet")  # fmt: skip
    assert (code, out) == (2, "")
    assert (
        err == f"modgap compare: {baseline}: the baseline's folder too; a model compared with itself has no verdict\n"
    )
    image, text, labels = paired(n=N)
    np.savez(candidate / "seed2.npz", image=image, audio=text, labels=labels)
    code, out, err = cli(capsys, "compare", "--baseline", baseline, "--method", candidate, "--quiet")
    assert err == (f"modgap compare: {candidate / 'seed2.npz'}: holds image, audio, {baseline / 'seed0.npz'} image, "
                   "text: paired runs must measure the same modalities\n")  # fmt: skip


def test_one_run_copied_to_every_seed_gives_no_verdict(tmp_path, capsys):
    """A candidate's seed0 copied to seed1 and seed2: 'three seeds' of zero spread, a [HOLDS] from one run."""
    baseline, candidate = per_seed_folders(tmp_path)
    for seed in (1, 2):
        (candidate / f"seed{seed}.npz").write_bytes((candidate / "seed0.npz").read_bytes())
    code, out, err = cli(capsys, "compare", "--baseline", baseline, "--method", candidate, "--quiet")
    assert (code, out, err) == (2, "", f"modgap compare: {candidate / 'seed1.npz'} holds the same embeddings as "
                                       f"{candidate / 'seed0.npz'}: each seed must be a run of its own\n")  # fmt: skip


def test_the_metrics_refuse_two_seeds_of_one_method_with_the_same_embeddings(tmp_path, default_config_dict):
    """The workflow's side: a dumps data set whose files are copies (or a trainer that ignores its seed)."""
    paths = [write_set(tmp_path / f"seed{seed}.npz", seed=seed) for seed in (0, 1)]
    paths.append(write_set(tmp_path / "seed2.npz", seed=0))
    with pytest.raises(SameRunError) as error:
        evaluate_method(list(enumerate(paths)), tmp_path / "m.json", experiment="e", method="m", retrieval="instance",
                        options=load_config(default_config_dict)["evaluate"])  # fmt: skip
    assert str(error.value) == f"{paths[2]} holds the same embeddings as {paths[0]}: each seed must be a run of its own"
    assert not (tmp_path / "m.json").exists()


# -- one test set per comparison: the tables and the claims check --------------------------------------------------


def metrics_files(tmp_path, damaged: dict | None = None) -> list[Path]:
    """Two methods' metrics files of two seeds, each record with its test set; ``damaged``: fields of ours' seed
    1 record."""
    test_set = ItemSet.of(np.arange(20) % 4, None, np.arange(20)).fields()
    paths = []
    for method, gap in (("clip_lt", 0.6), ("ours", 0.2)):
        records = [{**run(method, seed, gap + 0.01 * seed, 80.0, 50.0, 80.0), **test_set} for seed in (0, 1)]
        if method == "ours" and damaged:
            records[1].update(damaged)
        paths.append(tmp_path / f"{method}.json")
        paths[-1].write_text(json.dumps(records))
    return paths


@pytest.mark.parametrize(
    "damaged, said",
    [
        ({"n_test": 15}, "holds 15 items and {first} 20"),
        ({"test_labels": ItemSet.of(np.roll(np.arange(20) % 4, 1)).labels}, "has other labels than {first}"),
        ({"test_ids": ItemSet.of(np.arange(20), None, np.arange(20)[::-1]).ids}, "has other item ids than {first}"),
    ],
    ids=["items", "labels", "ids"],
)
def test_the_tables_refuse_runs_of_other_items_naming_both_files(tmp_path, damaged, said):
    paths = metrics_files(tmp_path, damaged)
    first = f"{paths[0]} (seed 0)"
    expected = f"{paths[1]} (seed 1) {said.format(first=first)}: paired runs must share one test set"
    with pytest.raises(OtherItemsError) as error:
        load_runs(paths, seeds=[0, 1])
    assert str(error.value) == expected


# A damaged file no rerun of the study in the working folder makes (modgap.errors.corrupt) gets no rebuild command.
OUTSIDE_THE_STUDY = (
    "it is not an intermediate of a study in this folder (results/), so fix it or make it again where it was made"
)


def test_a_damaged_runs_table_of_the_study_in_this_folder_says_how_to_rebuild_it(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MODGAP_RERUN", raising=False)
    monkeypatch.chdir(tmp_path)
    runs = Path("results/tables/runs.csv")
    runs.parent.mkdir(parents=True)
    runs.write_text("experiment,method\ne,ours\n")
    expected = f"{runs}: damaged runs table (no column seed); rebuild it with `snakemake --cores all --forcerun {runs}`"
    assert cli(capsys, "claims", "--runs", runs) == (2, "", f"modgap claims: {expected}\n")
    outside = tmp_path.parent / "elsewhere.csv"
    outside.write_text("experiment,method\ne,ours\n")
    expected = f"{outside}: damaged runs table (no column seed); {OUTSIDE_THE_STUDY}"
    assert cli(capsys, "claims", "--runs", outside) == (2, "", f"modgap claims: {expected}\n")


def runs_table(tmp_path, damaged: dict | None = None, column_values: dict | None = None) -> Path:
    """runs.csv of metrics_files, with ``column_values`` (column -> value) set in ours' seed-0 row."""
    outputs = {key: tmp_path / f"{key}.out" for key in ("main_csv", "main_md", "main_tex", "comparison_csv",
               "comparison_md", "ablation_csv", "ablation_md")} | {"runs_csv": tmp_path / "runs.csv"}  # fmt: skip
    write_tables(metrics_files(tmp_path, damaged), outputs, {"e": None})
    runs = pd.read_csv(outputs["runs_csv"])
    for column, value in (column_values or {}).items():
        if isinstance(value, str):
            runs[column] = runs[column].astype(object)  # a word in a column of numbers (empty notes read as NaN)
        runs.loc[(runs["method"] == "ours") & (runs["seed"] == 0), column] = value
    runs.to_csv(outputs["runs_csv"], index=False)
    return outputs["runs_csv"]


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"gap": np.inf}, "run e/ours/seed0: gap is inf; a check reads finite values only"),
        ({"gap": np.nan}, "run e/ours/seed0: gap is nan; a check reads finite values only"),
        ({"tv_r1": -np.inf}, "run e/ours/seed0: tv_r1 is -inf; a check reads finite values only"),
        ({"v_measure": np.nan}, "run e/ours/seed0: v_measure is nan; a check reads finite values only"),
        ({"knn_acc": np.inf, "notes": "kNN skipped"}, "run e/ours/seed0: knn_acc is inf; a check reads finite values only"),
        ({"gap": "abc"}, "run e/ours/seed0: gap is 'abc', not a number; a check reads finite values only"),
        ({"collapsed": "maybe"}, "run e/ours/seed0: collapsed is 'maybe', not True or False"),
        ({"n_test": 15}, "run e/ours/seed0 holds 15 items and run e/clip_lt/seed0 20: paired runs must share one test set"),
    ],
    ids=["inf-gap", "nan-gap", "inf-r1", "nan-v-measure-unnoted", "inf-knn-noted", "word-gap", "collapsed", "items"],
)  # fmt: skip
def test_a_runs_table_a_check_cannot_read_gives_no_verdict(tmp_path, monkeypatch, capsys, repo, values, problem):
    monkeypatch.delenv("MODGAP_RERUN", raising=False)
    runs = runs_table(tmp_path, column_values=values)
    expected = f"{runs}: damaged runs table ({problem}); {OUTSIDE_THE_STUDY}"
    with pytest.raises(CorruptIntermediateError) as error:
        claims_report(runs, CLAIMS)
    assert str(error.value) == expected
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    code, out, err = cli(
        capsys, "claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile", study
    )
    assert (code, out, err) == (2, "", f"modgap claims: {expected}\n")


def test_a_group_metric_may_be_nan_where_the_notes_say_why(tmp_path):
    runs = runs_table(tmp_path, column_values={"v_measure": np.nan, "notes": "clustering skipped: ..."})
    assert "e: ours vs clip_lt" in claims_report(runs, CLAIMS)  # inconclusive at worst, never refused


STUDY = {
    "seeds": [0, 1],
    "experiments": [{"name": "e", "dataset": "embedded", "modalities": ["image", "text"], "methods": ["clip_lt", "ours"]}],
    "evaluate": {"posthoc_source": None},
    "claims": {"methods": ["ours"]},
    "dose_response": {"experiment": None},
}  # fmt: skip


def test_modgap_claims_checks_the_definition_of_every_row(tmp_path, capsys, repo):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    with open(repo / "config.yaml") as handle:
        defaults = yaml.safe_load(handle)
    digests = definition_digests(load_config({**defaults, **STUDY}))
    runs = runs_table(tmp_path)
    table = pd.read_csv(runs)
    table.insert(3, "definition", (table["experiment"] + "/" + table["method"]).map(digests))
    table.to_csv(runs, index=False)
    arguments = ["claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile", study]
    assert cli(capsys, *arguments)[0] == 0
    table.loc[(table["method"] == "ours") & (table["seed"] == 1), "definition"] = "0123456789ab"  # one row of two
    table.to_csv(runs, index=False)
    code, out, err = cli(capsys, *arguments)
    assert (code, out) == (1, "")
    assert err.splitlines()[1] == (f"  - e/ours: its runs of seeds 1 were made by definition 0123456789ab, this "
                                   f"configuration defines {digests['e/ours']}")  # fmt: skip


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "EmptyDataError: No columns to parse from file"),
        ("experiment,method\ne,ours\n", "no column seed"),
        ("experiment,method,seed\ne,ours,x\n", "seed 'x' is not a whole number"),
        ("experiment,method,seed\ne,ours,0.5\n", "seed 0.5 is not a whole number"),
        (
            "experiment,method,seed\ne,ours,0\ne,ours,1,2\n",
            "ParserError: Error tokenizing data. C error: Expected 3 fields in line 3, saw 4",
        ),  # pandas ends it with a newline  # fmt: skip
        ("experiment,method,seed\ne,ours,0\ne,ours,0\n", "run e/ours/seed0 is listed more than once"),
    ],
    ids=["empty", "no-seed-column", "word-seed", "half-seed", "extra-field", "twice"],
)
def test_modgap_claims_on_a_broken_runs_table_says_why_in_one_line(tmp_path, capsys, monkeypatch, content, problem):
    monkeypatch.delenv("MODGAP_RERUN", raising=False)
    runs = tmp_path / "runs.csv"
    runs.write_text(content)
    code, out, err = cli(capsys, "claims", "--runs", runs)
    expected = f"{runs}: damaged runs table ({problem}); {OUTSIDE_THE_STUDY}"
    assert (code, out, err) == (2, "", f"modgap claims: {expected}\n")


@pytest.mark.parametrize(
    "dropped, problem",
    [
        (["gap"], "no column gap"),
        (["knn_acc", "collapsed"], "no column knn_acc, collapsed"),
        (
            ["tv_r1"],
            "no R@1 column with a value (tv_r1, ta_r1 or pair_r1_<anchor>_<other>): claim 1 has nothing to compare",
        ),  # was a StopIteration  # fmt: skip
    ],
    ids=["gap", "knn-and-collapsed", "r1"],
)
def test_modgap_claims_names_a_column_its_check_reads_that_the_table_lacks(
    tmp_path, capsys, monkeypatch, repo, dropped, problem
):
    monkeypatch.delenv("MODGAP_RERUN", raising=False)
    runs = runs_table(tmp_path)
    pd.read_csv(runs).drop(columns=dropped).to_csv(runs, index=False)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    code, out, err = cli(
        capsys, "claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile", study
    )
    expected = f"{runs}: damaged runs table ({problem}); {OUTSIDE_THE_STUDY}"
    assert (code, out, err) == (2, "", f"modgap claims: {expected}\n")


def test_an_experiment_whose_runs_have_no_r1_value_is_named(tmp_path):
    runs = runs_table(tmp_path)
    table = pd.read_csv(runs)
    other = table.assign(experiment="f", tv_r1=np.nan)  # the table has R@1 values, experiment f none
    pd.concat([table, other]).to_csv(runs, index=False)
    with pytest.raises(CorruptIntermediateError, match="experiment f: no R@1 column with a value"):
        claims_report(runs, CLAIMS)  # was a StopIteration


def test_a_definition_of_digits_only_is_compared_as_the_text_it_is(tmp_path, capsys, repo):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    runs = runs_table(tmp_path)
    table = pd.read_csv(runs)
    table.insert(3, "definition", "0123456789")  # pandas alone reads it as the number 123456789
    table.to_csv(runs, index=False)
    code, out, err = cli(
        capsys, "claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile", study
    )
    assert (code, out) == (1, "")
    assert "  - e/ours: its runs were made by definition 0123456789, this configuration defines" in err


def test_modgap_claims_names_a_folder_given_as_its_runs_table(tmp_path, capsys):
    assert cli(capsys, "claims", "--runs", tmp_path) == (
        2, "", f"modgap claims: {tmp_path}: a folder, not a runs table (results/tables/runs.csv)\n")  # fmt: skip


def test_modgap_claims_names_a_config_file_it_cannot_read(tmp_path, capsys, repo):
    runs = runs_table(tmp_path)
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "broken.yaml").write_text("seeds: [0\n")
    common = ["claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile"]
    missing = tmp_path / "missing.yaml"
    assert cli(capsys, *common, missing)[2] == f"modgap claims: {missing}: cannot be read (No such file or directory)\n"
    assert cli(capsys, *common, tmp_path / "list.yaml")[2] == (
        f"modgap claims: {tmp_path / 'list.yaml'}: not a mapping of config keys\n"
    )
    assert cli(capsys, *common, tmp_path / "broken.yaml")[2].startswith(
        f"modgap claims: {tmp_path / 'broken.yaml'}: not YAML (while parsing a flow sequence"
    )


def test_a_folder_in_place_of_an_external_dump_is_named_as_such(tmp_path, default_config_dict):
    per_seed_folders(tmp_path, seeds=2)
    (tmp_path / "baseline" / "seed2.npz").mkdir()
    (tmp_path / "candidate" / "seed2.npz").touch()
    config = {**default_config_dict, **yaml.safe_load((REPO / "presets" / "your_dumps.yaml").read_text())}
    config["datasets"] = {"my_dumps": {"source": "dumps", "path": str(tmp_path)}}
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert error.value.problems == [
        f"config key 'datasets.my_dumps.path': {tmp_path / 'baseline' / 'seed2.npz'} is a folder, not a file (method "
        "'baseline' of experiments[0], one file per seed)"
    ]


def test_a_configuration_that_holds_itself_is_refused_naming_its_key(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("seeds: &a [0, *a]\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"invalid configuration in {path}:\n  - config key 'seeds[1]': holds itself (a YAML alias inside its own anchor)"
    )


# -- the command line's options take the workflow's bounds ----------------------------------------------------------


@pytest.mark.parametrize(
    "command, option, problem, key",
    [
        ("evaluate", ["--kmeans-starts", "0"], "0 is less than the minimum of 1", "evaluate.kmeans_n_init"),
        ("evaluate", ["--knn-k", "0"], "0 is less than the minimum of 1", "evaluate.knn_k"),
        ("evaluate", ["--kmeans-k", "-3"], "-3 is less than the minimum of 2", "evaluate.kmeans_k"),
        ("evaluate", ["--knn-test-fraction", "nan"], "nan is not a finite number", "evaluate.knn_test_fraction"),
        ("evaluate", ["--knn-test-fraction", "1"], "1.0 is greater than or equal to the maximum of 1",
         "evaluate.knn_test_fraction"),
        ("evaluate", ["--k", "0", "-1"], "0 is less than the minimum of 1", "evaluate.recall_at"),
        ("evaluate", ["--split-seed", "-1"], "-1 is less than the minimum of 0", "evaluate.knn_seed"),
        ("evaluate", ["--budget", "0"], "0 is less than the minimum of 1", "train.budgets"),
        ("evaluate", ["--max-array-gib", "0"], "0.0 is less than or equal to the minimum of 0",
         "datasets.<name>.max_array_gib"),
        ("compare", ["--confidence", "nan"], "nan is not a finite number", "claims.confidence"),
        ("compare", ["--confidence", "1.5"], "1.5 is greater than or equal to the maximum of 1", "claims.confidence"),
        ("compare", ["--confidence", "0.5"], "0.5 is less than or equal to the minimum of 0.5", "claims.confidence"),
        ("compare", ["--confidence", "1e-300"], "1e-300 is less than or equal to the minimum of 0.5",
         "claims.confidence"),  # an inverted interval, [+inf, -inf], and a [FAILS] from it
        ("compare", ["--min-seeds", "1"], "1 is less than the minimum of 2", "claims.min_seeds"),
        ("compare", ["--min-seeds", "0"], "0 is less than the minimum of 2", "claims.min_seeds"),
        ("compare", ["--retrieval-tolerance", "-5"], "-5.0 is less than or equal to the minimum of 0",
         "claims.retrieval_tolerance"),
        ("compare", ["--margin-fraction", "inf"], "inf is greater than the maximum of 1", "claims.margin_fraction"),
        ("compare", ["--knn-k", "0"], "0 is less than the minimum of 1", "evaluate.knn_k"),
    ],
)  # fmt: skip
def test_numeric_options_are_refused_outside_the_schemas_bounds_before_any_work(
    tmp_path, capsys, command, option, problem, key
):
    baseline, candidate = per_seed_folders(tmp_path)
    inputs = [baseline / "seed0.npz"] if command == "evaluate" else ["--baseline", baseline, "--method", candidate]
    code, out, err = cli(capsys, command, *inputs, *option, "--out", tmp_path / "out")
    shown = " ".join(option[1:]) if option[0] == "--k" else problem.split()[0]  # the value as parsed
    assert (code, out, err) == (2, "", f"modgap {command}: {option[0]} {shown}: {problem} (the bound of {key})\n")
    assert not (tmp_path / "out").exists()


def test_every_bounded_option_names_a_key_of_the_schema():
    definitions = load_schema()["definitions"]
    for option, (definition, key, _) in BOUNDED_OPTIONS.items():
        assert key in definitions[definition]["properties"], option


# -- output folders are checked before any work ----------------------------------------------------------------------


def test_output_folders_that_cannot_receive_the_results_are_refused_first(tmp_path, capsys):
    path = write_set(tmp_path / "a.npz")
    (tmp_path / "taken").write_text("a file")
    for out, problem in ((tmp_path / "taken", "not a folder"), (Path("/proc/modgap"), "cannot be created (No such "
                         "file or directory)"), (tmp_path / "taken" / "x", f"cannot be created: {tmp_path / 'taken'} "
                         "is not a folder")):  # fmt: skip
        assert cli(capsys, "evaluate", path, "--out", out, "--quiet") == (2, "", f"modgap evaluate: {out}: {problem}\n")
    (tmp_path / "runs").mkdir()
    baseline, candidate = per_seed_folders(tmp_path / "runs")
    code, out, err = cli(capsys, "compare", "--baseline", baseline, "--method", candidate, "--out", tmp_path / "taken")
    assert (code, out, err) == (2, "", f"modgap compare: {tmp_path / 'taken'}: not a folder\n")  # before any verdict


def test_two_outputs_of_one_name_are_refused_first(tmp_path, capsys):
    from safetensors.numpy import save_file

    first = write_set(tmp_path / "a.npz")
    with np.load(first) as arrays:
        save_file({name: np.ascontiguousarray(arrays[name]) for name in arrays.files}, tmp_path / "a.safetensors")
    code, out, err = cli(capsys, "evaluate", first, tmp_path / "a.safetensors", "--out", tmp_path / "o", "--quiet")
    assert (code, out) == (2, "") and not (tmp_path / "o").exists()
    assert err == (f"modgap evaluate: {tmp_path / 'o'}: {first} and {tmp_path / 'a.safetensors'} would both write "
                   "a.json there; evaluate them into two folders\n")  # fmt: skip


def test_a_name_too_long_for_the_file_system_is_refused_before_the_metrics(tmp_path, capsys):
    image, text, _ = paired(n=N)
    paths = [tmp_path / f"{'i' * 200}.npy", tmp_path / f"{'t' * 200}.npy"]
    np.save(paths[0], image), np.save(paths[1], text)
    code, out, err = cli(capsys, "evaluate", *paths, "--out", tmp_path / "o", "--quiet")
    assert (code, out) == (2, "")
    assert err == (f"modgap evaluate: {tmp_path / 'o'}: the name '{'i' * 200}+{'t' * 200}.json' needs 420 bytes (with "
                   "its temporary's), longer than the 255 this file system allows; shorten it\n")  # fmt: skip


# -- a size guard on declared arrays ----------------------------------------------------------------------------------


def declared(path: Path, shape: tuple, payload: bytes = b"", names=("image", "text"), chunk: int = 0) -> Path:
    """An .npz whose arrays declare ``shape`` float32 in their headers; ``chunk``: write the declared bytes as
    zeros (compressed), else only ``payload``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in names:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                entry.write(header.getvalue() + payload)
                left = int(np.prod(shape)) * 4 if chunk else 0
                while left:
                    entry.write(bytes(min(left, chunk)))
                    left -= min(left, chunk)
    return path


def test_a_zip_bomb_is_refused_before_anything_is_read(tmp_path, capsys):
    """The issue's case: 2 x 1.6 GB of zeros in a few megabytes."""
    bomb = declared(tmp_path / "bomb.npz", (400_000, 1000), chunk=2**24)
    assert bomb.stat().st_size < 20 * 2**20
    code, out, err = cli(capsys, "evaluate", bomb, "--quiet")
    assert (code, out) == (2, "")
    assert err == (f"modgap evaluate: {bomb}: array 'image' declares 1.49 GiB (1600000128 bytes uncompressed), over "
                   "the limit of 1 GiB per array; nothing was read (docs/your_embeddings.md, 'Limits': how to raise "
                   "it)\n")  # fmt: skip


def test_a_header_that_declares_more_than_its_data_is_refused(tmp_path, capsys):
    liar = declared(tmp_path / "liar.npz", (2**28, 2), payload=bytes(64))
    code, out, err = cli(capsys, "evaluate", liar, "--quiet")
    assert err == (f"modgap evaluate: {liar}: array 'image' declares 2 GiB (shape (268435456, 2) float32), over the "
                   "limit of 1 GiB per array; nothing was read (docs/your_embeddings.md, 'Limits': how to raise it)\n")  # fmt: skip


def test_the_limit_can_be_raised(tmp_path, capsys):
    path = write_set(tmp_path / "a.npz")  # 120 x 16 float32 arrays: 7,680 bytes each
    code, _, err = cli(capsys, "evaluate", path, "--max-array-gib", "5e-6", "--quiet")
    assert (
        code == 2
        and "array 'image' declares 7.27e-06 GiB (7808 bytes uncompressed), over the limit of 5e-06 GiB" in err
    )
    assert cli(capsys, "evaluate", path, "--max-array-gib", "1e-5", "--quiet")[0] == 0


# -- finite after normalising ------------------------------------------------------------------------------------------


def test_rows_near_the_float32_limit_normalise_to_their_directions(tmp_path):
    image, text, labels = paired(n=N)
    np.savez(tmp_path / "unit.npz", image=image, text=text, labels=labels)
    np.savez(tmp_path / "huge.npz", image=(image * 1e20).astype(np.float32), text=text * 3e37, labels=labels)
    unit_rows, huge = external_files.load([tmp_path / "unit.npz"]), external_files.load([tmp_path / "huge.npz"])
    for name in ("image", "text"):
        np.testing.assert_allclose(huge.modalities[name], unit_rows.modalities[name], atol=1e-6)


@pytest.mark.parametrize(
    "row, dtype, problem",
    [
        (0.0, np.float32, "row 5 of array 'image' is all zeros: it has no direction (1 such rows)"),
        (1e-45, np.float32, "row 5 of array 'image' has a subnormal norm (5.61e-45): too small to give a direction (1 such rows)"),
        (1e-310, np.float64, "row 5 of array 'image' has a subnormal norm (4e-310): too small to give a direction (1 such rows)"),
        (1e308, np.float64, "row 5 of array 'image' has a norm beyond the float range (1 such rows)"),
    ],
    ids=["zeros", "subnormal-float32", "subnormal-float64", "beyond-float64"],
)  # fmt: skip
def test_a_row_without_a_usable_norm_is_refused_naming_file_array_and_row(tmp_path, capsys, row, dtype, problem):
    image, text, labels = paired(n=N)
    image = image.astype(dtype)
    image[5] = row
    path = tmp_path / "rows.npz"
    np.savez(path, image=image, text=text, labels=labels)
    assert cli(capsys, "evaluate", path, "--quiet") == (2, "", f"modgap evaluate: {path}: {problem}\n")


# -- true causes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, problem",
    [
        (np.full(N, 2**63, np.uint64), "array 'labels' holds 9223372036854775808, beyond the classes int64 can number"),
        (np.full(N, 2**64 - 1, np.uint64), "array 'labels' holds 18446744073709551615, beyond the classes int64 can number"),
        (np.full(N, -2.0), "array 'labels' holds -2; classes are 0 or more, -1 marks an unlabelled row"),
    ],
    ids=["2**63", "2**64-1", "minus-two"],
)  # fmt: skip
def test_labels_are_shown_as_the_file_holds_them(tmp_path, capsys, labels, problem):
    image, text, _ = paired(n=N)
    path = tmp_path / "labels.npz"
    np.savez(path, image=image, text=text, labels=labels)
    assert cli(capsys, "evaluate", path, "--quiet") == (2, "", f"modgap evaluate: {path}: {problem}\n")


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_file_of_another_kind_is_named_for_what_it_is(tmp_path, capsys):
    marker = tmp_path / "ran"
    cases = {
        "passwd.npz": (Path("/etc/passwd").read_bytes(), "not an .npz archive (it does not start as a zip archive does)"),
        "array.npz": (None, "not an .npz archive but one .npy array (name it .npy)"),
        "archive.npy": (None, "not a .npy file but a zip archive (an .npz? name it .npz)"),
        "pickle.npz": (pickle.dumps(Payload(marker)), "holds a Python pickle, which is never loaded (save plain arrays)"),
    }  # fmt: skip
    np.save(tmp_path / "array.npy", np.ones((3, 2)))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    (tmp_path / "archive.npy").write_bytes(write_set(tmp_path / "set.npz").read_bytes())
    for name, (content, problem) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        assert cli(capsys, "evaluate", tmp_path / name, "--quiet") == (
            2,
            "",
            f"modgap evaluate: {tmp_path / name}: {problem}\n",
        )
    assert cli(capsys, "evaluate", tmp_path, "--quiet")[2] == f"modgap evaluate: {tmp_path}: a folder, not a file\n"
    assert not marker.exists()


def test_a_missing_modality_is_reported_with_everything_the_file_holds(tmp_path, capsys):
    path = write_set(tmp_path / "pair.npz")
    with pytest.raises(EmbeddingFileError) as error:
        import_dump(path, tmp_path / "out.npz", ["image", "audio"])  # the workflow leaves 'text' out
    assert str(error.value) == f"{path}: no array 'audio' (it holds image, text, labels)"
    assert cli(capsys, "evaluate", path, "--modalities", "image,audio", "--quiet")[2] == (
        f"modgap evaluate: {path}: no array 'audio' (it holds image, text, labels)\n"
    )
    assert not (tmp_path / "out.npz").exists()


def test_an_empty_modality_list_is_named_as_such(tmp_path, capsys):
    path = write_set(tmp_path / "pair.npz")
    assert cli(capsys, "evaluate", path, "--modalities", ",", "--quiet") == (
        2, "", "modgap evaluate: --modalities ',' names no modality (a,b: comma-separated)\n")  # fmt: skip
    assert cli(capsys, "evaluate", path, "--modalities", "image,image", "--quiet") == (
        2, "", "modgap evaluate: --modalities 'image,image' names image twice\n")  # fmt: skip


def test_a_single_class_is_named_as_the_cause_of_skipped_group_metrics(tmp_path, capsys):
    path = write_set(tmp_path / "one.npz", labels=np.zeros(N, int))
    code, out, _ = cli(capsys, "evaluate", path, "--quiet")
    assert code == 0
    notes = [line for line in out.splitlines() if line.startswith("- note:")]
    assert notes == [
        "- note: clustering skipped: the labelled test items hold one class, so there is nothing to tell apart",
        "- note: kNN skipped: the labelled test items hold one class, so there is nothing to tell apart",
    ]


def test_too_few_points_for_the_clusters_are_named_as_points(tmp_path, capsys):
    path = write_set(tmp_path / "two.npz", n=2)
    code, out, _ = cli(capsys, "evaluate", path, "--quiet")
    assert code == 0 and "- note: clustering skipped: 4 labelled points (items x modalities) cannot fill 2 clusters " \
        "of 5 points each" in out.splitlines()  # fmt: skip


def test_a_group_metric_no_run_could_compute_leaves_no_warning(tmp_path, capsys):
    baseline, candidate = per_seed_folders(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # was "Mean of empty slice" from the baseline's mean
        code, out, _ = cli(capsys, "compare", "--baseline", baseline, "--method", candidate, "--kmeans-k", "1000",
                           "--quiet")  # fmt: skip
    assert code == 0 and "2a. ΔV-Measure n/a (baseline nan)" in out


def test_imported_dumps_keep_the_files_item_ids(tmp_path):
    path = write_set(tmp_path / "ids.npz", ids=True)
    import_dump(path, tmp_path / "out.npz", ["image", "text"])
    with np.load(tmp_path / "out.npz") as dump:
        assert dump["ids"].tolist() == [f"item{i}" for i in range(N)]
    write_set(tmp_path / "plain.npz")
    import_dump(tmp_path / "plain.npz", tmp_path / "plain_out.npz", ["image", "text"])
    with np.load(tmp_path / "plain_out.npz") as dump:
        assert dump["ids"].tolist() == list(range(N))  # without ids: row numbers


# -- params that carry only what changes results ----------------------------------------------------------------------


def test_a_training_runs_params_leave_out_what_changes_no_result_in_one_order(default_config_dict):
    config = load_config(default_config_dict)
    experiment = config["experiments"][0]["name"]
    params = result_defining_run(config, experiment, "ours")
    assert "progress" not in params["train"] and "checkpoint_every" not in params["train"]
    reordered = {**default_config_dict, "experiments": [
        {**e, "train": dict(reversed(list(e["train"].items())))} for e in default_config_dict["experiments"]]}  # fmt: skip
    assert repr(result_defining_run(load_config(reordered), experiment, "ours")) == repr(params)
    run = resolve_run(config, experiment, "ours")
    assert {**params, "train": {**params["train"], **neutral_train_options(config, experiment)}} == run


def test_a_column_an_experiment_does_not_measure_is_no_missing_value():
    """The TA R@1 of an experiment without audio is empty in a study that has one with audio (an optional
    column: R@1 alone may be unmeasured in an experiment)."""
    from modgap.verdict.evidence import runs_problem

    runs = pd.DataFrame([{"experiment": e, "method": m, "seed": s, "gap": 0.5, "tv_r1": 50.0, "collapsed": False,
                          "ta_r1": 40.0 if e == "triple" else np.nan}
                         for e in ("pair", "triple") for m in ("a", "b") for s in (0, 1)])  # fmt: skip
    assert runs_problem(runs, ["gap"], optional=["tv_r1", "ta_r1"]) is None
    runs.loc[5, "ta_r1"] = np.nan
    assert runs_problem(runs, ["gap"], optional=["tv_r1", "ta_r1"]) == (
        "run triple/a/seed1: ta_r1 is nan; a check reads finite values only"
    )


def test_an_empty_definition_cell_is_named_not_a_traceback(tmp_path, capsys, repo):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    runs = runs_table(tmp_path)
    table = pd.read_csv(runs)
    table.insert(3, "definition", "")
    table.to_csv(runs, index=False)
    code, out, err = cli(
        capsys, "claims", "--runs", runs, "--default-config", repo / "config.yaml", "--configfile", study
    )
    assert (code, out) == (1, "") and "  - e/ours: its runs were made by definition (none), this configuration" in err


def test_a_metric_missing_from_every_run_of_an_experiment_gives_no_verdict(tmp_path):
    runs = runs_table(tmp_path)
    pd.read_csv(runs).assign(gap=np.nan).to_csv(runs, index=False)  # only an R@1 column may be unmeasured
    with pytest.raises(
        CorruptIntermediateError, match="run e/clip_lt/seed0: gap is nan; a check reads finite values only"
    ):
        claims_report(runs, CLAIMS)


def test_modgap_claims_advises_a_rebuild_only_for_the_study_table_and_with_its_config(
    tmp_path, monkeypatch, capsys, repo
):
    monkeypatch.delenv("MODGAP_RERUN", raising=False)
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    tables = Path("results/tables")
    tables.mkdir(parents=True)
    for name in ("runs.csv", "other.csv"):
        (tables / name).write_text("experiment,method\ne,ours\n")
    arguments = ["--default-config", repo / "config.yaml", "--configfile", study]
    code, _, err = cli(capsys, "claims", "--runs", tables / "runs.csv", *arguments)
    rebuild = f"snakemake --cores all --configfile {study} --forcerun results/tables/runs.csv"
    assert (code, err) == (
        2,
        f"modgap claims: results/tables/runs.csv: damaged runs table (no column seed); rebuild it with `{rebuild}`\n",
    )
    code, _, err = cli(capsys, "claims", "--runs", tables / "other.csv", *arguments)
    assert (code, err) == (
        2,
        f"modgap claims: results/tables/other.csv: damaged runs table (no column seed); {OUTSIDE_THE_STUDY}\n",
    )
    assert "MODGAP_RERUN" not in os.environ  # the command line leaves no state behind for later runs
