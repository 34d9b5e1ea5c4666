"""The study a validated configuration describes: the queries the workflow plans with.

Which runs are trained (``runs``), what is evaluated and at which budgets (``evaluations``, ``ladders``),
what one training run needs (``resolve_run``), the dose-response's methods, and the fingerprints and
names results carry: digests of what runs depend on, the provenance line, the methods' display names.
Every function takes the configuration ``modgap.study.config.load_config`` returns (defaults filled in).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The training-free row: a trained method's embeddings with the gap shifted away (docs/workflow.md, "Metrics").
POSTHOC_METHOD = "posthoc"
# Its display name: the row is no method of the configuration, so no label of it can name it.
POSTHOC_LABEL = "Post-hoc shift"
# Keys of a method that only describe it: no job's result depends on them.
DISPLAY_KEYS = ("description", "label")
# Top-level sections that only change how results are shown (figures re-run, nothing else).
DISPLAY_SECTIONS = ("figures",)
# Training options that never change a run's results (checkpoints resume to the same run; a test compares).
RESULT_NEUTRAL_TRAIN_KEYS = ("checkpoint_every", "progress")


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def experiment_key(index: int, experiment: Mapping, section: str, key: str) -> str:
    """The config key that sets ``section.key`` for an experiment: its own override or the top level."""
    return f"experiments[{index}].{section}.{key}" if key in experiment.get(section, {}) else f"{section}.{key}"


# Data-set sources whose experiments train nothing: files of embeddings made elsewhere, and pretrained models
# that embed a prepared data set.
UNTRAINED_SOURCES = ("dumps", "models")


def _experiment_source(config: Mapping, experiment_name: str) -> str | None:
    experiment = next((e for e in config["experiments"] if e["name"] == experiment_name.partition("@")[0]), None)
    return None if experiment is None else config["datasets"].get(experiment["dataset"], {}).get("source")


def imported(config: Mapping, experiment_name: str) -> bool:
    """Whether an experiment reads embeddings made elsewhere (a ``dumps`` or ``models`` data set) instead of
    training."""
    return _experiment_source(config, experiment_name) in UNTRAINED_SOURCES


def model_embedded(config: Mapping, experiment_name: str) -> bool:
    """Whether an experiment's methods are pretrained models embedding a prepared data set (``models``)."""
    return _experiment_source(config, experiment_name) == "models"


def embedding_model(config: Mapping, experiment_name: str, method: str) -> str:
    """The model spec (modgap.study.model_specs) a ``models`` experiment's method names."""
    return config["datasets"][experiment_by_name(config, experiment_name)["dataset"]]["models"][method]


def embedding_options(config: Mapping, experiment_name: str) -> dict:
    """How a ``models`` experiment embeds its prepared data set (modgap.embeddings.from_models.write_model_dump)."""
    dataset = config["datasets"][experiment_by_name(config, experiment_name)["dataset"]]
    return {key: dataset[key] for key in ("split", "text", "prompt", "batch_size", "device")}


def imported_dump(config: Mapping, experiment_name: str, method: str, seed: int) -> Path:
    """The file a ``dumps`` experiment reads for one method and seed: <path>/<method>/seed<seed>.<format>."""
    dataset = config["datasets"][experiment_by_name(config, experiment_name)["dataset"]]
    return Path(dataset["path"]) / method / f"seed{seed}.{dataset['format']}"


def imported_methods(config: Mapping) -> set[str]:
    """Method names that are folders of a ``dumps`` experiment, not trained methods."""
    return {m for e in config["experiments"] if imported(config, e["name"]) for m in e.get("methods", ())}


def batch_size_key(config: dict, experiment_name: str) -> str:
    """The config key that sets an experiment's training batch size (for messages)."""
    index, experiment = next((i, e) for i, e in enumerate(config["experiments"]) if e["name"] == experiment_name)
    return experiment_key(index, experiment, "train", "batch_size")


def experiment_by_name(config: dict, name: str) -> dict:
    """The experiment called ``name``; an evaluation at one budget of a ladder, ``<name>@<epochs>``,
    gives the experiment it was trained in."""
    base, _, budget = name.partition("@")
    for experiment in config["experiments"]:
        if experiment["name"] == base and (not budget or int(budget) in (budget_ladder(config, base) or [])):
            return experiment
    raise KeyError(f"no experiment named '{name}' in the configuration")


def budget_ladder(config: dict, experiment_name: str) -> list[int] | None:
    """The experiment's ``train.budgets`` (its own or the top level's), or None without a ladder."""
    for experiment in config["experiments"]:
        if experiment["name"] == experiment_name:
            if imported(config, experiment_name):
                return None  # embeddings made elsewhere have no budgets here
            return deep_merge(config["train"], experiment.get("train", {}))["budgets"]
    raise KeyError(f"no experiment named '{experiment_name}' in the configuration")


def ladders(config: dict) -> dict[str, list[tuple[int, str]]]:
    """experiment -> [(budget, evaluation name)] for every experiment evaluated along a budget ladder."""
    result: dict[str, list[tuple[int, str]]] = {}
    for evaluation in evaluations(config):
        if evaluation["name"] != evaluation["experiment"]:
            result.setdefault(evaluation["experiment"], []).append((evaluation["budget"], evaluation["name"]))
    return result


def evaluations(config: dict) -> list[dict]:
    """What the metrics, tables and claims evaluate: every experiment once, or, with a budget ladder,
    once per budget as ``<name>@<epochs>`` (``experiment``: the trained one; ``budget``: its epochs;
    ``final``: the run's last epoch, whose dumps are the run's own)."""
    result = []
    for experiment in config["experiments"]:
        epochs = deep_merge(config["train"], experiment.get("train", {}))["epochs"]
        ladder = budget_ladder(config, experiment["name"])
        for budget in ladder or [epochs]:
            name = f"{experiment['name']}@{budget}" if ladder else experiment["name"]
            result.append(
                {"name": name, "experiment": experiment["name"], "budget": int(budget), "final": budget == epochs}
            )
    return result


def resolve_run(config: dict, experiment_name: str, method_name: str) -> dict:
    """Everything one training run needs: data set, modalities, model, train options and method."""
    experiment = experiment_by_name(config, experiment_name)
    if method_name not in trained_methods(config, experiment_name):
        raise KeyError(f"method '{method_name}' is not part of experiment '{experiment_name}'")
    # display-only keys stay out: editing a description never retrains (the run's fingerprint)
    method = {k: copy.deepcopy(v) for k, v in config["methods"][method_name].items() if k not in DISPLAY_KEYS}
    if method["temperature"]["learnable"] and experiment.get("temperature"):  # the experiment's regime knob
        method["temperature"] = {**method["temperature"], **experiment["temperature"]}
    return {
        "experiment": experiment_name,
        "dataset": experiment["dataset"],
        "modalities": list(experiment["modalities"]),
        "retrieval": experiment["retrieval"],
        "method_name": method_name,
        "method": method,
        "model": deep_merge(config["model"], experiment.get("model", {})),
        "train": resolve_train(config, experiment_name),
    }


def resolve_train(config: dict, experiment_name: str) -> dict:
    """An experiment's train section: its own overrides over the top level's."""
    return deep_merge(config["train"], experiment_by_name(config, experiment_name).get("train", {}))


def canonical(value: Any) -> Any:
    """``value`` with the keys of every mapping in it sorted: the form of a rule's params, which Snakemake
    compares by their repr, so that reordering keys in a config file re-runs nothing."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def _result_neutral_left_out(run: Mapping) -> dict:
    """A resolved run without the training options that change none of its results."""
    return {**run, "train": {k: v for k, v in run["train"].items() if k not in RESULT_NEUTRAL_TRAIN_KEYS}}


def result_defining_run(config: dict, experiment_name: str, method_name: str) -> dict:
    """What a training run's results depend on, in canonical form: the training rule's params, so that key
    order, ``train.progress`` and ``train.checkpoint_every`` never retrain (``neutral_train_options`` gives the
    job those)."""
    return canonical(_result_neutral_left_out(resolve_run(config, experiment_name, method_name)))


def neutral_train_options(config: dict, experiment_name: str) -> dict:
    """The training options of an experiment that change none of its runs' results."""
    train = resolve_train(config, experiment_name)
    return {key: train[key] for key in RESULT_NEUTRAL_TRAIN_KEYS}


def dose_response_methods(config: dict, experiment_name: str | None = None) -> dict[float, str]:
    """strength -> method of the dose-response (for ``experiment_name``: empty unless it is the
    dose-response experiment)."""
    if experiment_name not in (None, config["dose_response"]["experiment"]):
        return {}
    return {strength: name for strength, (name, _) in dose_response_plan(config).items()}


def trained_methods(config: dict, experiment_name: str) -> list[str]:
    """Methods an experiment may train: its own and, for the dose-response experiment, those of the sweep, and
    for a factorial experiment, those of its cells."""
    own = experiment_by_name(config, experiment_name)["methods"]
    return list(
        dict.fromkeys(
            [
                *own,
                *dose_response_methods(config, experiment_name).values(),
                *factorial_methods(config, experiment_name).values(),
            ]
        )
    )


def factorial_plan(config: dict) -> dict[tuple[str, float], tuple[str, dict]]:
    """(arm, temperature) -> (method name, definition) of the factorial's cells (empty without one).

    Each arm, the factorial's ``baseline`` (InfoNCE alone) and its ``method`` (with the gap terms), keeps its
    loss and trains with the temperature fixed at every grid value from the first step; where a configured
    method has that definition, its name (and runs) are used, otherwise ``<arm>_fixed<temperature>``."""
    factorial = config["factorial"]
    if not factorial["experiments"]:
        return {}
    plan = {}
    for arm in (factorial["baseline"], factorial["method"]):
        base = config["methods"][arm]
        for temperature in factorial["temperatures"]:
            fixed = copy.deepcopy(base)
            fixed.pop("label", None)  # the fixed-temperature method is not the one the label names
            fixed["temperature"] = {
                **base["temperature"],
                "learnable": False,
                "init": float(temperature),
                "match": None,
            }
            fixed["description"] = f"{arm}'s loss at the fixed temperature {temperature:g} (the factorial)"
            existing = [name for name, method in config["methods"].items() if same_method(method, fixed)]
            name = existing[0] if existing else f"{arm}_fixed{float(temperature)!r}"  # every digit: names stay apart
            plan[(arm, float(temperature))] = (name, fixed)
    return plan


def factorial_methods(config: dict, experiment_name: str | None = None) -> dict[tuple[str, float], str]:
    """(arm, temperature) -> method of the factorial's cells (for ``experiment_name``: empty unless the
    factorial runs on it)."""
    if experiment_name is not None and experiment_name not in config["factorial"]["experiments"]:
        return {}
    return {cell: name for cell, (name, _) in factorial_plan(config).items()}


def _canonical(method: Mapping) -> str:
    """A method's definition without its display keys and zero-weight terms, weights as floats."""
    loss = {
        term: {**options, "weight": float(options.get("weight", 1.0))}
        for term, options in method["loss"].items()
        if options.get("weight", 1.0) != 0
    }
    return json.dumps({**{k: v for k, v in method.items() if k not in DISPLAY_KEYS}, "loss": loss}, sort_keys=True)


def same_method(a: Mapping, b: Mapping) -> bool:
    """Whether two method definitions train the same runs (display keys and zero-weight terms aside)."""
    return _canonical(a) == _canonical(b)


def dose_response_plan(config: dict) -> dict[float, tuple[str, dict]]:
    """strength -> (method name, definition) of the dose-response (empty without one).

    Strength s scales the weights of the configured terms of the method; where the result
    equals an existing method (s = 1: the method itself; s = 0 with every gap term gone: CLIP),
    that method's name (and runs) are used, otherwise ``<method>_x<s>``.
    """
    dose = config["dose_response"]
    if dose["experiment"] is None:
        return {}
    base = config["methods"][dose["method"]]
    plan = {}
    for strength in dose["strengths"]:
        scaled = copy.deepcopy(base)
        scaled.pop("label", None)  # the scaled method is not the one the label names
        for term in dose["terms"]:
            scaled["loss"][term]["weight"] = base["loss"][term].get("weight", 1.0) * strength
        scaled["description"] = f"{dose['method']} with {', '.join(dose['terms'])} weights x {strength:g}"
        existing = [name for name, method in config["methods"].items() if same_method(method, scaled)]
        plan[float(strength)] = (existing[0] if existing else f"{dose['method']}_x{strength:g}", scaled)
    return plan


def runs(config: dict) -> list[tuple[str, str, int]]:
    """All trained (experiment, method, seed) triples of the main study, in config order."""
    return [
        (experiment["name"], method, seed)
        for experiment in config["experiments"]
        if not imported(config, experiment["name"])
        for method in experiment["methods"]
        for seed in config["seeds"]
    ]


def decided_comparisons(config: dict) -> list[tuple[str, str, str]]:
    """The verdict's comparisons the sequential design decides, (experiment, method, baseline): each claims
    method against the baseline, on every trained experiment that has both (read at the runs' last epoch)."""
    baseline = config["claims"]["baseline"]
    return [
        (experiment["name"], method, baseline)
        for experiment in config["experiments"]
        if not imported(config, experiment["name"]) and baseline in experiment["methods"]
        for method in config["claims"]["methods"]
        if method in experiment["methods"]
    ]


def evaluated_methods(config: dict, experiment_name: str) -> list[str]:
    """The experiment's methods plus the post-hoc row where its source method is trained."""
    methods = list(experiment_by_name(config, experiment_name)["methods"])
    if config["evaluate"]["posthoc_source"] in methods:
        methods.append(POSTHOC_METHOD)
    return methods


def modality_counts(config: dict) -> dict[str, int]:
    """evaluation -> how many modalities it measures (the regime map's rows)."""
    return {e["name"]: len(experiment_by_name(config, e["name"])["modalities"]) for e in evaluations(config)}


def paper_references(config: dict) -> dict[str, str | None]:
    """evaluation -> the paper's data set it mirrors (``paper_reference``): the claims' margins (modgap.verdict.paper)
    and the paper-comparison table."""
    return {e["name"]: experiment_by_name(config, e["name"])["paper_reference"] for e in evaluations(config)}


def evaluated_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (evaluation, evaluated method, seed) of the main study: the rows its runs table holds."""
    return [
        (evaluation["name"], method, seed)
        for evaluation in evaluations(config)
        for method in evaluated_methods(config, evaluation["name"])
        for seed in config["seeds"]
    ]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def definition_digest(config: Mapping, evaluation: str, method: str) -> str:
    """A short fingerprint of everything one evaluated method's runs depend on: its training run (method,
    model, train options and data set, descriptions left out) or, for embeddings made elsewhere, where its
    files lie; the evaluation (budget included) and its options. Runs with equal digests are the same runs."""
    experiment = experiment_by_name(config, evaluation)["name"]
    source = config["evaluate"]["posthoc_source"] if method == POSTHOC_METHOD else method
    if model_embedded(config, experiment):
        data = config["datasets"][experiment_by_name(config, experiment)["dataset"]]["data"]
        made: dict = {
            "model": embedding_model(config, experiment, source),
            "dataset": config["datasets"][data],
            **embedding_options(config, experiment),
        }
    elif imported(config, experiment):
        made = {"files": str(imported_dump(config, experiment, source, 0).parent)}
    else:
        run = _result_neutral_left_out(resolve_run(config, experiment, source))
        made = {**run, "dataset": config["datasets"][run["dataset"]]}
    made["modalities"] = experiment_by_name(config, evaluation)["modalities"]
    return _digest({"evaluation": evaluation, "method": method, "made": made, "evaluate": config["evaluate"]})


def definition_digests(config: Mapping) -> dict[str, str]:
    """``<evaluation>/<method>`` -> its definition_digest, for every evaluated method of the study."""
    return {
        f"{e['name']}/{m}": definition_digest(config, e["name"], m)
        for e in evaluations(config)
        for m in evaluated_methods(config, e["name"])
    }


def study_digest(config: Mapping) -> str:
    """A short fingerprint of the whole resolved configuration, less what changes no result (methods'
    descriptions and labels, checkpoint and progress options)."""

    def neutral(section: Mapping) -> dict:
        return {k: v for k, v in section.items() if k not in RESULT_NEUTRAL_TRAIN_KEYS}

    methods = {name: {k: v for k, v in m.items() if k not in DISPLAY_KEYS} for name, m in config["methods"].items()}
    experiments = [{**e, "train": neutral(e["train"])} if "train" in e else e for e in config["experiments"]]
    results = {k: v for k, v in config.items() if k not in DISPLAY_SECTIONS}
    return _digest({**results, "methods": methods, "train": neutral(config["train"]), "experiments": experiments})


def latent_methods(config: Mapping) -> list[str]:
    """Methods the latent-space figures show side by side (``figures.latent_methods``; by default the claims'
    baseline and checked methods)."""
    return list(config["figures"]["latent_methods"] or [config["claims"]["baseline"], *config["claims"]["methods"]])


def provenance_line(config: Mapping, config_files: Sequence[str | Path], root: str | Path) -> str:
    """The line tables and claims.txt end with: the configuration's digest and the files it came from, in
    merge order (files under ``root``, the repository, relative to it; others relative to the working
    directory)."""
    root = Path(root).resolve()

    def shown(path: str | Path) -> str:
        resolved = Path(path).resolve()
        return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else os.path.relpath(resolved)

    files = " + ".join(shown(path) for path in config_files)
    return f"Configuration {study_digest(config)}: {files} (modgap claims checks a configuration against the runs)."


def method_labels(config: Mapping) -> dict[str, str]:
    """Display names the configuration gives its methods (``methods.<name>.label``)."""
    return {name: method["label"] for name, method in config["methods"].items() if "label" in method}


def display_names(config: Mapping) -> dict[str, str]:
    """Every method a study's tables and figures may show, in display order, with its display name: the
    configuration's methods in their order, the folders of embeddings made elsewhere, then the post-hoc row;
    each named by its label, or by its key where it has none."""
    labels = {**method_labels(config), POSTHOC_METHOD: POSTHOC_LABEL}
    folders = [m for e in config["experiments"] if imported(config, e["name"]) for m in e.get("methods", ())]
    return {name: labels.get(name, name) for name in dict.fromkeys([*config["methods"], *folders, POSTHOC_METHOD])}
