"""No verdict from inputs that cannot support one, in the workflow (issue 27): runs of other items and
non-finite values stop the tables and the claims check; params re-run only what changed; external dumps are
imported again when their content changes, whatever their modification time; a killed job names its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import planned_jobs

from modgap.logs import END_OF_LOG

STUDY = {
    "seeds": [0, 1],
    "datasets": {"tiny_set": {"source": "embedded", "n_samples": 120, "seed": 0, "captions_per_item": 1}},
    "experiments": [{
        "name": "e", "dataset": "tiny_set", "modalities": ["image", "text"], "methods": ["clip_lt", "ours"],
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.002, "progress": "never", "checkpoint_every": 2},
    }],
    "model": {"width": 16, "depth": 1, "heads": 2, "embed_dim": 8},
    "evaluate": {"posthoc_source": None, "kmeans_n_init": 2, "kmeans_states": 2},
    "dose_response": {"experiment": None},
}  # fmt: skip
TARGET = "results/claims.txt"  # the verdict and what it is made from; figures are not this issue's
WITHDRAWN = "removed results/claims.txt: a run that fails leaves no verdict (the next complete run writes it again)"


def snakemake(repo, workdir, config, *args, check=True):
    """A run with ``config`` written as given (keys in its order: config files are read in theirs)."""
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def trained(repo, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained")
    snakemake(repo, workdir, STUDY, TARGET)
    return workdir


def copied(folder, tmp_path):
    """A copy of a finished study at the depth of the original, so the code paths its rules record (relative to
    the working directory) stay the same and nothing re-runs for the move."""
    subprocess.run(["cp", "-a", f"{folder}/.", str(tmp_path)], check=True)
    return tmp_path


def reordered(mapping: dict) -> dict:
    return dict(reversed(list(mapping.items())))


def edited_train(**changes) -> dict:
    experiment = STUDY["experiments"][0]
    return {**STUDY, "experiments": [{**experiment, "train": {**experiment["train"], **changes}}]}


@pytest.mark.slow
@pytest.mark.parametrize(
    "edited",
    [
        {**STUDY, "experiments": [{**STUDY["experiments"][0], "train": reordered(STUDY["experiments"][0]["train"])}]},
        {**STUDY, "datasets": {"tiny_set": reordered(STUDY["datasets"]["tiny_set"])}},
        edited_train(progress="always"),
        edited_train(checkpoint_every=1),
    ],
    ids=["train-key-order", "dataset-key-order", "progress", "checkpoint_every"],
)
def test_edits_that_change_no_result_plan_no_job(repo, trained, edited):
    result = snakemake(repo, trained, edited, TARGET, "-n")
    assert planned_jobs(result) == {} and "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_result_changing_edit_still_retrains(repo, trained):
    """The other side of the params above: what changes results is in them."""
    assert planned_jobs(snakemake(repo, trained, edited_train(lr=0.004), TARGET, "-n"))["train"] == 4


@pytest.mark.slow
def test_a_dump_cut_short_stops_the_tables_naming_both_files(repo, trained, tmp_path):
    workdir = copied(trained, tmp_path)
    dump = workdir / "results" / "embeddings" / "e" / "ours" / "seed1.npz"
    with np.load(dump) as arrays:
        kept = {name: arrays[name][:15] if arrays[name].ndim and len(arrays[name]) == 20 else arrays[name]
                for name in arrays.files}  # fmt: skip
    np.savez(dump, **kept)  # a valid dump of 15 of the test set's 20 items
    result = snakemake(repo, workdir, STUDY, TARGET, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        "error: results/metrics/e/ours.json (seed 1) holds 15 items and results/metrics/e/clip_lt.json (seed 0) 20: "
        "paired runs must share one test set\n  (this job's log: results/logs/tables.log)"
    ) in result.stderr
    assert WITHDRAWN in result.stderr and not (workdir / TARGET).exists()  # not even the verdict of before
    again = snakemake(repo, workdir, STUDY, TARGET, check=False)
    assert again.returncode != 0 and "paired runs must share one test set" in again.stderr


@pytest.mark.slow
@pytest.mark.parametrize("value", [np.inf, np.nan], ids=["inf", "nan"])
def test_a_non_finite_gap_in_the_runs_table_gives_no_verdict(repo, trained, tmp_path, value):
    workdir = copied(trained, tmp_path)
    runs_csv = workdir / "results" / "tables" / "runs.csv"
    runs = pd.read_csv(runs_csv)
    runs.loc[(runs["method"] == "ours") & (runs["seed"] == 0), "gap"] = value
    runs.to_csv(runs_csv, index=False)
    result = snakemake(repo, workdir, STUDY, TARGET, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    rebuild = f"snakemake -s {repo / 'Snakefile'} --directory {workdir} --configfile {workdir / 'study.yaml'}"
    assert (
        f"error: results/tables/runs.csv: damaged runs table (run e/ours/seed0: gap is {value}; a check reads finite "
        f"values only); rebuild it with `{rebuild} --cores 2 {TARGET} --forcerun results/tables/runs.csv`"
    ) in result.stderr
    assert "[HOLDS]" not in result.stdout and "[FAILS]" not in result.stdout


@pytest.mark.slow
def test_a_killed_training_job_names_its_log(repo, tmp_path):
    config = edited_train(epochs=2000)  # long enough to be killed while it trains
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "study.yaml"), "--cores", "2", TARGET]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = tmp_path / "results" / "logs" / "train"
    deadline = time.time() + 300
    while not any(logs.rglob("*.log")) and time.time() < deadline and run.poll() is None:
        time.sleep(0.5)
    time.sleep(2)  # the job is past its imports and training
    scripts = subprocess.run(
        ["pgrep", "-f", f"{tmp_path}/.snakemake/scripts/.*train.py"], capture_output=True, text=True
    )
    for pid in scripts.stdout.split():
        os.kill(int(pid), signal.SIGKILL)  # as the out-of-memory killer would
    _, stderr = run.communicate(timeout=600)
    assert run.returncode != 0 and scripts.stdout.split()
    named = [line.split("its log: ")[1] for line in stderr.splitlines() if line.startswith("error: a job was killed")]
    assert named and all(not (tmp_path / log).read_text().rstrip().endswith(END_OF_LOG) for log in named)
    assert all(line.startswith("results/logs/train/e/") for line in named), named
    assert stderr.count(
        "error: a job was killed before its script ended (a signal, or out of memory?); its log: "
    ) == len(named)


# -- a dumps data set ----------------------------------------------------------------------------------------------


def write_dumps(root, items=120):
    """Two models' per-seed embeddings of one test set (labels and ids shared), each seed its own noise."""
    labels = np.arange(items) % 4
    centres = 2.0 * np.random.default_rng(0).normal(size=(4, 12))[labels]
    for model, offset in (("baseline", 1.0), ("candidate", 0.2)):
        (root / model).mkdir(parents=True)
        for seed in (0, 1, 2):
            rng = np.random.default_rng(10 * seed + len(model))
            shared = centres + rng.normal(size=(items, 12))
            np.savez(root / model / f"seed{seed}.npz", labels=labels, ids=np.arange(items) + 1000,
                     image=shared + offset, text=shared - offset)  # fmt: skip


def dumps_config(repo) -> dict:
    config = yaml.safe_load((repo / "presets" / "your_dumps.yaml").read_text())
    return {**config, "evaluate": {**config["evaluate"], "kmeans_n_init": 2, "kmeans_states": 2}}


def cut(arrays, rows=100):
    return {name: values[:rows] for name, values in arrays.items()}


def rolled_labels(arrays):
    return {**arrays, "labels": np.roll(arrays["labels"], 1)}


def shuffled_rows(arrays):
    order = np.random.default_rng(3).permutation(len(arrays["labels"]))
    return {name: values[order] for name, values in arrays.items()}


def rows_shuffled_within_classes(arrays):
    return {name: np.roll(values, 4, axis=0) for name, values in arrays.items()}  # labels repeat every 4 rows


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, said",
    [
        (cut, "holds 100 items and results/metrics/my_models/baseline.json (seed 0) 120"),
        (rolled_labels, "has other labels than results/metrics/my_models/baseline.json (seed 0)"),
        (shuffled_rows, "has other labels than results/metrics/my_models/baseline.json (seed 0)"),
        (rows_shuffled_within_classes, "has other item ids than results/metrics/my_models/baseline.json (seed 0)"),
    ],
    ids=["fewer-rows", "rolled-labels", "shuffled-rows", "shuffled-within-classes"],
)
def test_a_dumps_study_of_other_items_gives_no_verdict(repo, tmp_path, damage, said):
    write_dumps(tmp_path / "my_dumps")
    path = tmp_path / "my_dumps" / "candidate" / "seed1.npz"
    with np.load(path) as arrays:
        np.savez(path, **damage(dict(arrays)))
    result = snakemake(repo, tmp_path, dumps_config(repo), TARGET, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        f"error: results/metrics/my_models/candidate.json (seed 1) {said}: paired runs must share one test set"
    ) in result.stderr
    assert not (tmp_path / TARGET).exists()


@pytest.mark.slow
def test_a_dumps_study_with_one_file_copied_to_another_seed_gives_no_verdict(repo, tmp_path):
    write_dumps(tmp_path / "my_dumps")
    folder = tmp_path / "my_dumps" / "candidate"
    (folder / "seed2.npz").write_bytes((folder / "seed0.npz").read_bytes())
    result = snakemake(repo, tmp_path, dumps_config(repo), TARGET, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        "error: results/embeddings/my_models/candidate/seed2.npz holds the same embeddings as "
        "results/embeddings/my_models/candidate/seed0.npz: each seed must be a run of its own"
    ) in result.stderr
    assert not (tmp_path / TARGET).exists()


@pytest.mark.slow
def test_a_refused_import_leaves_no_verdict_then_or_later(repo, tmp_path):
    """The verdict of before goes when a dump is refused, and later runs import the file again rather than keep
    the metrics made from its earlier content (imported dumps are targets of `all`, and the metrics' params
    hold the files' SHA-256)."""
    write_dumps(tmp_path / "my_dumps")
    snakemake(repo, tmp_path, dumps_config(repo), TARGET)
    path = tmp_path / "my_dumps" / "baseline" / "seed1.npz"
    with np.load(path) as arrays:
        np.savez(path, **{**arrays, "text": np.where(np.arange(120)[:, None] == 5, np.nan, arrays["text"])})
    for target in ([], [TARGET], []):  # the whole study, or the verdict alone
        result = snakemake(repo, tmp_path, dumps_config(repo), *target, check=False)
        assert result.returncode != 0 and not (tmp_path / TARGET).exists()
        assert "error: my_dumps/baseline/seed1.npz: array 'text' holds NaN or inf (12 values; the first in row 5)" in (
            result.stderr
        )


@pytest.mark.slow
def test_an_external_dump_replaced_by_older_content_is_imported_again(repo, tmp_path):
    write_dumps(tmp_path / "my_dumps")
    snakemake(repo, tmp_path, dumps_config(repo), TARGET)
    path = tmp_path / "my_dumps" / "candidate" / "seed0.npz"
    with np.load(path) as arrays:
        np.savez(path, **{**arrays, "image": arrays["image"] + 0.5})
    os.utime(path, (946684800, 946684800))  # 1 January 2000: older than everything made from it
    planned = planned_jobs(snakemake(repo, tmp_path, dumps_config(repo), TARGET, "-n"))
    assert planned == {"import_dumps": 1, "metrics": 1, "tables": 1, "claims": 1}


def test_a_configuration_that_holds_itself_fails_before_any_job(repo, tmp_path):
    configfile = tmp_path / "loop.yaml"
    configfile.write_text("seeds: &a [0, *a]\n")
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(configfile), "-n"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "RecursionError" not in output
    assert (
        "invalid configuration:\n  - config key 'seeds[1]': holds itself (a YAML alias inside its own anchor)" in output
    )
