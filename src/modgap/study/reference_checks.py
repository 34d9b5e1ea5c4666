"""Reference checks: every name a section uses is defined and fits what it names (experiment -> data set,
experiment -> method, loss options, overrides, the dose-response, temperature matches), each problem naming
its config key."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from modgap.data.sources import SOURCES
from modgap.study.method_options import loss_option_problems
from modgap.study.model_specs import prompt_problem
from modgap.study.plan import (
    POSTHOC_METHOD,
    UNTRAINED_SOURCES,
    deep_merge,
    dose_response_plan,
    experiment_by_name,
    factorial_plan,
    imported,
    imported_dump,
    imported_methods,
    same_method,
)
from modgap.study.schema import NAME_RULE, name_pattern, schema_problems, subschema


def dataset_source(config: Mapping, experiment: Mapping) -> str | None:
    """The source of an experiment's data set (None: the data set is not defined)."""
    return config["datasets"].get(experiment["dataset"], {}).get("source")


def trained_experiments(config: Mapping) -> Iterator[tuple[int, Mapping]]:
    """(index, experiment) of every experiment that trains (not one on embeddings made elsewhere)."""
    return ((i, e) for i, e in enumerate(config["experiments"]) if dataset_source(config, e) not in UNTRAINED_SOURCES)


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
    pattern = re.compile(name_pattern(schema))
    problems = []
    for index, experiment in enumerate(config["experiments"]):
        key = f"experiments[{index}]"
        if dataset_source(config, experiment) != "dumps":
            continue
        if "methods" not in experiment:
            problems.append(
                f"config key '{key}.methods': an experiment on a dumps data set lists its methods (the folders of "
                "its files)"
            )
            continue
        for method in experiment["methods"]:
            if not pattern.fullmatch(method):
                problems.append(f"config key '{key}.methods': {method!r} is not a plain name ({NAME_RULE})")
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
    pattern = re.compile(name_pattern(schema))
    problems = []
    for index, experiment in enumerate(config["experiments"]):
        key, name = f"experiments[{index}]", experiment["dataset"]
        if dataset_source(config, experiment) != "models":
            continue
        dataset = config["datasets"][name]
        if len(config["seeds"]) != 1:
            problems.append(
                f"config key 'seeds': experiment '{experiment['name']}' embeds data set '{name}' with pretrained "
                f"models, whose embeddings are the same for every seed; give one seed (seeds: [0])"
            )
        if prompt_problem(dataset["prompt"]):
            problems.append(f"config key 'datasets.{name}.prompt': {prompt_problem(dataset['prompt'])}")
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
                problems.append(f"config key '{key}.methods': {method!r} is not a plain name ({NAME_RULE})")
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
    for index, experiment in trained_experiments(config):
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
        for index, experiment in trained_experiments(config)
        for section in ("model", "train")
        if section in experiment
        for problem in schema_problems(
            deep_merge(config[section], experiment[section]),
            subschema(schema, section),
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
    problems += _names_taken(
        config, [(f"dose-response method for strength {s:g}", name, method) for s, (name, method) in plan.items()]
    )
    return problems


def _names_taken(config: Mapping, planned: Iterable[tuple[str, str, Mapping]]) -> list[str]:
    """A method a target plans, (what it is, its name, its definition), whose name another definition holds."""
    return [
        f"config key 'methods.{name}': the name of the {what} is taken by another definition; rename that method"
        for what, name, definition in planned
        if name in config["methods"] and not same_method(config["methods"][name], definition)
    ]


def _decide_problems(config: Mapping, schema: Mapping) -> list[str]:
    """The sequential design's rounds rise, and its first round has the seeds a check needs."""
    rounds = config["decide"]["rounds"]
    falling = [f"{b} after {a}" for a, b in zip(rounds, rounds[1:]) if b <= a]
    if falling:
        return [f"config key 'decide.rounds': the rounds count seeds cumulatively and must rise ({', '.join(falling)})"]
    if rounds[0] < config["claims"]["min_seeds"]:
        return [
            f"config key 'decide.rounds': the first round's {rounds[0]} seeds are fewer than claims.min_seeds "
            f"({config['claims']['min_seeds']}), so it could decide nothing"
        ]
    return []


def _factorial_problems(config: Mapping, schema: Mapping) -> list[str]:
    """The factorial's arms are known methods, its grid lies inside their temperature clamp, and its cells'
    names are free."""
    factorial = config["factorial"]
    if not factorial["experiments"]:
        return []
    problems = []
    for key in ("baseline", "method"):
        if factorial[key] not in config["methods"]:
            problems.append(f"config key 'factorial.{key}': unknown method '{factorial[key]}'")
    if problems:
        return problems
    if factorial["baseline"] == factorial["method"]:
        return [
            f"config key 'factorial.method': '{factorial['method']}' is also the baseline; the factorial compares two losses"
        ]
    for name in factorial["experiments"]:
        if imported(config, name):
            problems.append(
                f"config key 'factorial.experiments': experiment '{name}' trains nothing (its runs were made elsewhere)"
            )
    for key in ("baseline", "method"):
        temperature = config["methods"][factorial[key]]["temperature"]
        lowest = 1.0 / temperature["max_logit_scale"]
        outside = [t for t in factorial["temperatures"] if not lowest <= t <= 1.0]
        if outside:
            problems.append(
                f"config key 'factorial.temperatures': {', '.join(f'{t:g}' for t in outside)} lie outside "
                f"[{lowest:g}, 1], the temperatures method '{factorial[key]}' can hold (1 / max_logit_scale to 1)"
            )
    cells = factorial_plan(config).items()
    return problems + _names_taken(config, [(f"factorial's cell ({a} at {t:g})", n, m) for (a, t), (n, m) in cells])


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
        for index, experiment in trained_experiments(config):
            trained = experiment["methods"]
            if name in trained and matched not in trained:
                problems.append(
                    f"{key}: experiment '{experiment['name']}' trains {name} but not {matched}, whose runs give "
                    f"its temperature (experiments[{index}].methods)"
                )
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
    _factorial_problems,
    _decide_problems,
    _temperature_match_problems,
)
