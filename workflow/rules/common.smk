# Configuration and the input functions shared by every stage (paths: modgap.study.paths).

import dataclasses
import functools
import os
import re
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Plan with this checkout's package, whatever else is installed; jobs do the same (scripts/_checkout.py).
PACKAGE_ROOT = Path(workflow.basedir, "src")
sys.path.insert(0, str(PACKAGE_ROOT))

SOURCE = Path(PACKAGE_ROOT, "modgap")
SCRIPTS = Path(workflow.basedir, "workflow", "scripts")
TRAIN_ENV = "../../envs/train.yaml"
ANALYSIS_ENV = "../../envs/analysis.yaml"

from modgap.verdict.calibration import cell_margins
from modgap.study.config import ConfigError, load_config, typed_overrides
from modgap.data import preparation_module
from modgap.data.sources import SOURCES, local_copies, remote_files
from modgap.study.code_deps import module_file, package_modules
from modgap.errors import RERUN_VARIABLE, study_command
from modgap.verdict.evidence import withdraw_verdict
from modgap.verdict.sequential import Design, open_comparisons, read_round
from modgap.io import file_digest, remove_stale_temporaries_under, tree_digest
from modgap.logs import print_at_exit, report_killed_jobs
from modgap.study.paths import RUNS_TABLE, VERDICT_TABLE, embeddings_path, metrics_path, model_path, prepared, train_log_path
from modgap.study.plan import (
    POSTHOC_METHOD,
    batch_size_key,
    canonical,
    deep_merge,
    definition_digests,
    display_names,
    embedding_model,
    embedding_options,
    decided_comparisons,
    dose_response_methods,
    evaluated_methods,
    evaluated_runs,
    evaluations,
    experiment_by_name,
    factorial_methods,
    imported,
    imported_dump,
    imported_methods,
    ladders,
    latent_methods,
    method_labels,
    modality_counts,
    model_embedded,
    paper_references,
    neutral_train_options,
    provenance_line,
    result_defining_run,
    runs,
)
from modgap.runtime import local_gpu_count
from modgap.study.yaml_files import DuplicateKeyError, read_yaml

# A job's advice to rebuild a damaged file repeats the user's own command line (config files, targets);
# jobs on a cluster inherit the submitting run's.
os.environ.setdefault(RERUN_VARIABLE, study_command(sys.argv))


# `--config seeds=[0,1]` reaches the workflow as strings ('0'); read such values as a config file would.
config.update(deep_merge(config, typed_overrides(workflow.config_settings.config)))
notes = []
try:
    for path in dict.fromkeys(map(str, [*workflow.configfiles, *workflow.config_settings.configfiles])):
        read_yaml(path)  # Snakemake's reading keeps the last of a key given twice; refuse it instead
    study = load_config(config, workflow.source_path("../schemas/config.schema.yaml"), notes)
except (ConfigError, DuplicateKeyError) as error:
    raise WorkflowError(str(error)) from None
for note in notes:
    print(f"note: {note}", file=sys.stderr)


# --configfile files come last in the merge; Snakemake lists them among its own config files.
GIVEN_CONFIGS = [str(path) for path in workflow.config_settings.configfiles]
PROVENANCE = provenance_line(
    study, [p for p in workflow.configfiles if str(p) not in GIVEN_CONFIGS] + GIVEN_CONFIGS, workflow.basedir
)


def one_of(names):
    """A wildcard constraint matching exactly one of ``names`` (none: a pattern that never matches; an
    empty one would be no constraint at all)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


EVALUATIONS = {evaluation["name"]: evaluation for evaluation in evaluations(study)}
# The paper's data set each evaluation mirrors: its margins (modgap.verdict.paper) and the paper-comparison table.
REFERENCES = paper_references(study)


# Trained methods and the folders of embeddings made elsewhere.
METHOD_NAMES = [*study["methods"], *sorted(imported_methods(study))]


wildcard_constraints:
    dataset=one_of(study["datasets"]),
    experiment=one_of([*(e["name"] for e in study["experiments"]), *EVALUATIONS]),
    method=one_of(METHOD_NAMES),
    seed=r"\d+",


# Experiments that train, and those that read embeddings made elsewhere (a dumps data set).
TRAINED = [e["name"] for e in study["experiments"] if not imported(study, e["name"])]
IMPORTED = [e["name"] for e in study["experiments"] if imported(study, e["name"])]
# Of those, the ones whose pretrained models embed a prepared data set (a models data set), and their files.
EMBEDDED = [name for name in IMPORTED if model_embedded(study, name)]
DUMPED = [name for name in IMPORTED if name not in EMBEDDED]


def embedded_data(experiment):
    """The prepared data set a models experiment embeds."""
    return study["datasets"][experiment_dataset(experiment)]["data"]


def embedding_gpu(experiment):
    """GPUs an embedding job takes: 1 where it will run on CUDA, else 0 (as wants_gpu for training)."""
    device = embedding_options(study, experiment)["device"]
    return int(device == "cuda" or (device == "auto" and local_gpus() > 0))


@functools.cache
def local_copy_digests(dataset):
    """config key -> digest of each local copy a data set is prepared from (modgap.io.tree_digest)."""
    return {key: tree_digest(path) for key, path in local_copies(study["datasets"][dataset]).items()}


def trained_datasets():
    """The prepared data sets the study trains on."""
    return [prepared(d) for d in dict.fromkeys(experiment_dataset(e) for e in TRAINED)]


def dataset_source(dataset):
    return study["datasets"][dataset]["source"]


def downloads_of(dataset):
    """The downloaded original files a data set is prepared from, in the loader's order."""
    return [f"results/downloads/{dataset}/{remote.name}" for remote, _ in remote_files(study["datasets"][dataset])]


def remote_file(dataset, filename):
    for remote, mirror in remote_files(study["datasets"][dataset]):
        if remote.name == filename:
            return remote, mirror
    raise WorkflowError(f"data set '{dataset}' has no file '{filename}' to download")


def experiment_dataset(experiment):
    return experiment_by_name(study, experiment)["dataset"]


@functools.cache
def local_gpus():
    """GPUs of this machine, probed once and only when a job that may train asks (not for figures alone)."""
    return local_gpu_count()


def wants_gpu(experiment):
    """GPUs a training or embedding job takes: 1 where it will run on CUDA, else 0.

    On a cluster the workflow profile sets it per rule (profiles/slurm), since the
    submitting host need not have the GPUs the compute nodes have.
    """
    device = experiment_by_name(study, experiment).get("train", {}).get("device", study["train"]["device"])
    return int(device == "cuda" or (device == "auto" and local_gpus() > 0))


POSTHOC_SOURCE = study["evaluate"]["posthoc_source"]
LATENT_METHODS = latent_methods(study)
LABELS = method_labels(study)  # the labels the configuration gives, shown beside the keys in claims.txt
DISPLAY_NAMES = display_names(study)  # every method's display name, in display order: tables and figures
MODALITY_COUNTS = modality_counts(study)
# The calibration's temperature settings (trained methods: folders of a dumps data set have no temperature
# setting), in the order its rule prefers them.
CALIBRATION_SETTINGS = list(dict.fromkeys(m for e in study["experiments"] if e["name"] in TRAINED for m in e["methods"]))


@functools.cache
def code(script, *modules, data=()):
    """Package files a rule's output depends on, so editing one re-runs exactly the rules that use it: every
    module its script (under workflow/scripts/) imports, transitively (modgap.study.code_deps), with those of
    ``modules`` (dotted names a script loads by name), and the package's ``data`` files it reads.

    Paths are relative to the working directory, so a project moved or copied elsewhere
    keeps its cached results.
    """
    loaded = [module_file(name, SOURCE) for name in modules]
    files = [*package_modules(SCRIPTS / script, *loaded, root=SOURCE), *data]
    return [os.path.relpath(SOURCE / name) for name in files]


def trained_source(method):
    """The trained method whose runs an evaluated method reads (posthoc: the shifted method)."""
    return POSTHOC_SOURCE if method == POSTHOC_METHOD else method


def method_dumps(evaluation, method):
    """Embedding dumps of every seed of an evaluated method (at a budget of a ladder: the trained experiment's
    files, which hold every budget)."""
    source, experiment = trained_source(method), trained_experiment(evaluation)
    return [embeddings_path(experiment, source, seed) for seed in study["seeds"]]


@functools.cache
def content_digest(path):
    """A file's SHA-256, computed once per run."""
    return file_digest(path)


def external_contents(evaluation, method):
    """The SHA-256 of every file a dumps data set's method was imported from (none for trained runs): a param of
    the imports and of the metrics, so that what was made from a file's earlier content re-runs when the content
    changes, whatever its modification time, and never stands in for a refused import of the new content
    (Snakemake leaves a missing import alone while the metrics made from it are up to date)."""
    experiment = trained_experiment(evaluation)
    if experiment in TRAINED or experiment in EMBEDDED:  # embeddings made here: their params name what made them
        return []
    return [content_digest(imported_dump(study, experiment, trained_source(method), seed)) for seed in study["seeds"]]


def matched_temperature_run(experiment, method, seed):
    """A temperature control's input: the dump of the matched method's run with the same seed, which records
    the temperature it ended at (none for other methods)."""
    matched = study["methods"][method]["temperature"]["match"]
    return {"matched": embeddings_path(experiment, matched, seed)} if matched else {}


def resolve_model(experiment):
    """An experiment's model section: its own overrides over the top level's."""
    return deep_merge(study["model"], experiment_by_name(study, experiment).get("model", {}))


def trained_experiment(name):
    """The experiment whose runs an evaluation (or the experiment itself) reads."""
    return EVALUATIONS[name]["experiment"] if name in EVALUATIONS else name


def final_evaluation(experiment):
    """The evaluation of an experiment at its runs' last epoch."""
    return next(name for name, e in EVALUATIONS.items() if e["experiment"] == experiment and e["final"])


def evaluated_budget(evaluation):
    """The epoch an evaluation reads its dumps at: None for a run's own last epoch."""
    return None if EVALUATIONS[evaluation]["final"] else EVALUATIONS[evaluation]["budget"]


def trained_epochs(evaluation):
    """The training budget an evaluation's runs had: None for embeddings made elsewhere."""
    return EVALUATIONS[evaluation]["budget"] if trained_experiment(evaluation) in TRAINED else None


def metrics_files():
    return [metrics_path(name, m) for name in EVALUATIONS for m in evaluated_methods(study, name)]


DOSE_EXPERIMENT = study["dose_response"]["experiment"]


def dose_response_files():
    if DOSE_EXPERIMENT is None:
        return []
    evaluation = final_evaluation(DOSE_EXPERIMENT)
    return [metrics_path(evaluation, m) for m in dict.fromkeys(dose_response_methods(study).values())]


def figure_methods(experiment, wanted=None):
    """Methods of an experiment shown in a figure: all it evaluates, or the ``wanted`` ones it has (none of
    them, as with embeddings made elsewhere: its first three)."""
    available = evaluated_methods(study, experiment)
    if wanted is None:
        return available
    return [m for m in wanted if m in available] or available[:3]


FIGURE_SEED = study["seeds"][0]


def figure_embeddings(experiment, wanted=None):
    """Embedding dumps of the figure seed for the figure's methods, in figure_methods order."""
    return [embeddings_path(experiment, trained_source(m), FIGURE_SEED) for m in figure_methods(experiment, wanted)]


def figure_shifts(experiment, wanted=None):
    """The post-hoc shift each figure method's dump gets (None: shown as trained)."""
    strength = study["evaluate"]["posthoc_strength"]
    return [strength if m == POSTHOC_METHOD else None for m in figure_methods(experiment, wanted)]


def figure_outputs(name, caption, title):
    """A per-experiment figure: its PDF and its PNG, the PNG an entry of the report (snakemake --report)."""
    stem = f"results/figures/{{experiment}}/{name}"
    entry = report(f"{stem}.png", caption=f"../report/{caption}.rst", category="Figures", subcategory="{experiment}",
                   labels={"figure": title, "experiment": "{experiment}"})
    return {"pdf": f"{stem}.pdf", "png": entry}


def figures_of(experiment):
    names = ["latent_2d", "cosine_histograms"] + (["training_curves"] if experiment in TRAINED else [])
    if len(experiment_by_name(study, experiment)["modalities"]) >= 3:
        names.append("latent_3d")
    if POSTHOC_SOURCE in experiment_by_name(study, experiment)["methods"]:
        names.append("gap_sweep")
    return [f"results/figures/{experiment}/{name}.{ext}" for name in names for ext in ("pdf", "png")]


def trained_outputs():
    """Every model, epoch log and embedding dump of the main study: targets of `all`, so a deleted one
    is rebuilt by the next run (Snakemake leaves a missing intermediate alone while the files made
    from it are up to date)."""
    return [
        path
        for run in runs(study)
        for path in (model_path(*run), train_log_path(*run), embeddings_path(*run))
    ]


def imported_outputs():
    """Every imported embedding dump of a dumps data set: targets of `all` for the same reason, so one whose
    import failed (and was removed) is imported again, never skipped while older metrics made from it stand."""
    return [
        embeddings_path(experiment, method, seed)
        for experiment in IMPORTED
        for method in experiment_by_name(study, experiment)["methods"]
        for seed in study["seeds"]
    ]


def all_targets():
    return [
        *trained_outputs(),
        *imported_outputs(),
        *metrics_files(),
        "results/tables/main.csv",
        "results/claims.txt",
        VERDICT_TABLE,  # a deleted one is written again (Snakemake leaves a missing intermediate alone otherwise)
        *[path for e in study["experiments"] for path in figures_of(e["name"])],
        *([f"results/figures/budget.{ext}" for ext in ("pdf", "png")] if ladders(study) else []),
    ]


FACTORIAL = study["factorial"]
FACTORIAL_CELLS = factorial_methods(study)  # (arm, temperature) -> the method that trains that cell


def factorial_files():
    """Every factorial cell's metrics at its experiment's last budget, experiment by experiment, cells in
    FACTORIAL_CELLS order."""
    return [metrics_path(final_evaluation(e), m) for e in FACTORIAL["experiments"] for m in FACTORIAL_CELLS.values()]


def factorial_targets():
    if not FACTORIAL["experiments"]:
        return []
    return ["results/factorial.txt", "results/tables/factorial.csv", "results/figures/factorial.png"]


DECIDE = Design.of(study["decide"])
DECIDED_COMPARISONS = decided_comparisons(study)


DECIDE_REPORT, DECIDE_TABLE = "results/decide.txt", "results/tables/decide.csv"


def decide_metrics_path(experiment, method, seed):
    return f"results/decide/metrics/{experiment}/{method}/seed{seed}.json"


def decide_round_inputs(wildcards):
    """A round's per-seed metrics, of the comparisons the last round left open (every one at the first), and
    the last round's record."""
    index = int(wildcards.round)
    previous, inputs = None, {}
    if index > 0:
        inputs["previous"] = checkpoints.decide_round.get(round=index - 1).output[0]
        previous = read_round(inputs["previous"])
    wanted = {
        decide_metrics_path(experiment, m, seed)
        for experiment, method, baseline in open_comparisons(previous, DECIDED_COMPARISONS)
        for m in (method, baseline)
        for seed in DECIDE.round_seeds(index)
    }
    inputs["metrics"] = sorted(wanted)
    return inputs


def decide_last_round(wildcards):
    """The record of the round that finished the design: every check decided, or the cap reached."""
    for index in range(len(DECIDE.rounds)):
        path = checkpoints.decide_round.get(round=index).output[0]
        if read_round(path)["finished"]:
            return path
    return path


def dose_response_targets():
    if DOSE_EXPERIMENT is None:
        return []
    return [
        "results/tables/dose_response.csv",
        *[f"results/figures/{DOSE_EXPERIMENT}/dose_response.{ext}" for ext in ("pdf", "png")],
    ]


STARTED = time.time()  # the claims check is printed at the end of a run that rebuilt it (Snakefile)
