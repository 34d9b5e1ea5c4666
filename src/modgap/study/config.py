"""Load and validate the study configuration.

The JSON schema (modgap.study.schema) fixes the shape and the defaults; the reference
and plan checks (modgap.study.reference_checks, modgap.study.plan_checks) cover what a
schema cannot express: references between sections (experiment -> data set,
experiment -> method), modalities a data set actually has, loss-term options that
the loss functions accept, split sizes, ladders and local paths. Every problem is
reported with the config key it concerns, all at once.

``load_config`` works in phases, each on the result of the one before: the schema
fills in defaults and checks the shape; what the configuration leaves implicit is
made explicit (``_complete``); then the reference checks, and, once every reference
resolves, the plan checks (split sizes, ladders, local paths) run. A check only reads
the configuration. What a valid configuration describes (runs, evaluations, digests)
is modgap.study.plan's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ExplainedError
from modgap.study.plan import (
    deep_merge,
    dose_response_plan,
    factorial_plan,
    imported,
)
from modgap.study.plan_checks import PLAN_CHECKS
from modgap.study.reference_checks import REFERENCE_CHECKS, trained_experiments
from modgap.study.schema import SCHEMA_PATH, defaults, format_key, load_schema, schema_problems
from modgap.study.yaml_files import read_yaml

# The configuration every study starts from (the Snakefile's configfile), wherever a command runs: package
# data, in a checkout a link to the top-level config.yaml.
DEFAULT_CONFIG = Path(str(resources.files(__package__) / "default_config.yaml")).resolve()


class ConfigError(ExplainedError, ValueError):
    """The configuration is invalid; the message lists every offending key."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


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


# Reference checks: every name a section uses is defined, and fits what it names.


# Plan checks: what the plan can know before any job, once every reference resolves.


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
    problems = schema_problems(resolved, schema)  # fills in the schema's defaults as it goes
    if problems:
        raise ConfigError(problems, source)
    completed = _complete(resolved, schema)
    for checks in (REFERENCE_CHECKS, PLAN_CHECKS):
        problems = [problem for check in checks for problem in check(resolved, schema)]
        if problems:
            raise ConfigError(problems, source)
    for name, definition in [*dose_response_plan(resolved).values(), *factorial_plan(resolved).values()]:
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
    for _, experiment in trained_experiments(config):
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
    factorial = config["factorial"]
    absent = [name for name in factorial["experiments"] if name not in names]
    if absent:
        notes.append(
            f"the factorial is off: its experiments {', '.join(absent)} (factorial.experiments) are not among the "
            f"experiments ({', '.join(names)}); name some of them there to run it"
        )
        factorial["experiments"] = []
    if config["model"] == defaults(schema, "model"):  # the schema load_config validated against
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
