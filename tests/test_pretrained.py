"""Pretrained open_clip and Hugging Face models: specs, one-line refusals, and `modgap embed` on tiny random models
(tests/tiny_models.py) through `modgap evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

import tiny_models  # noqa: E402

from modgap.cli import main  # noqa: E402
from modgap.data.format import load_split, read_manifest  # noqa: E402
from modgap.embeddings.from_models import embed_prepared  # noqa: E402
from modgap.embeddings.pretrained import load_model  # noqa: E402
from modgap.study.model_specs import ModelError, ModelSpec, model_modalities, parse_model_spec  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "open_clip": f"open_clip:{tiny_models.open_clip_folder(root / 'open_clip')}",
        "hf_clip": f"hf:{tiny_models.hf_clip_folder(root / 'hf_clip')}",
        "hf_clap": f"hf:{tiny_models.hf_clap_folder(root / 'hf_clap')}",
    }


@pytest.fixture(scope="module")
def waveform_data(tmp_path_factory, repo):
    """A tiny embedded data set that keeps its int16 waveforms (CLAP embeds sound, not log-mel)."""
    from modgap.data import prepare_dataset
    from modgap.study.config import load_config

    config = load_config(repo / "config.yaml")["datasets"]["embedded"]
    config.update(n_samples=120, captions_per_item=1)
    config["audio"]["keep_waveform"] = True
    path = tmp_path_factory.mktemp("waveforms") / "embedded"
    prepare_dataset("embedded", config, path)
    return path


def test_specs_parse_into_library_name_and_tag():
    assert parse_model_spec("open_clip:ViT-B-32/laion2b_s34b_b79k") == ModelSpec(
        "open_clip", "ViT-B-32", "laion2b_s34b_b79k"
    )
    assert parse_model_spec("hf:openai/clip-vit-base-patch32") == ModelSpec("hf", "openai/clip-vit-base-patch32")
    assert parse_model_spec("open_clip:/models/tiny") == ModelSpec("open_clip", "/models/tiny")
    assert str(parse_model_spec("open_clip:ViT-B-32/openai")) == "open_clip:ViT-B-32/openai"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("clip:ViT-B-32", "expected one of open_clip:<architecture>/<pretrained tag>"),
        ("open_clip:ViT-B-32", "names no pretrained weights; write open_clip:ViT-B-32/<tag>"),
        ("open_clip:ViT-B-99/openai", "open_clip has no architecture 'ViT-B-99'"),
        ("open_clip:ViT-B-32/nope", "no pretrained tag 'nope' of ViT-B-32 (tags: openai"),
        ("hf:/nowhere/model", "/nowhere/model/config.json not found"),
    ],
)
def test_unknown_models_are_refused_in_one_line(spec, message):
    with pytest.raises(ModelError) as error:
        model_modalities(spec)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "spec, fetch",
    [
        ("hf:openai/clip-vit-base-patch32", "hf download openai/clip-vit-base-patch32"),
        ("open_clip:ViT-B-32/laion2b_s34b_b79k", "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ],
)
def test_an_uncached_model_offline_names_itself_and_how_to_fetch_it(spec, fetch, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.file_download.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert main(["embed", "--model", spec, "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    assert f"model {spec}: not in the Hugging Face cache" in error and fetch in error
    assert not (tmp_path / "out").exists()


def test_modalities_of_each_library(models):
    assert model_modalities(models["open_clip"]) == ("image", "text")
    assert model_modalities(models["hf_clip"]) == ("image", "text")
    assert model_modalities(models["hf_clap"]) == ("audio", "text")


@pytest.mark.parametrize("library", ["open_clip", "hf_clip"])
def test_the_dump_is_the_models_own_forward_output(library, models, tiny_data):
    model = load_model(models[library])
    dump, done = embed_prepared(model, tiny_data, batch_size=7)  # batches that do not divide the split
    split = load_split(tiny_data, "test", ["image", "text"], with_captions=True)
    assert done == {"modalities": ["image", "text"], "items": len(split["labels"]), "text": "captions"}
    np.testing.assert_array_equal(dump["labels"], split["labels"])
    np.testing.assert_array_equal(dump["ids"], split["ids"])
    assert list(dump["class_names"]) == read_manifest(tiny_data)["class_names"]
    rows = [0, 3, len(split["labels"]) - 1]
    with torch.no_grad():
        inner = model.model
        grey = torch.from_numpy(split["image"][rows]).float().div(255).expand(-1, 3, -1, -1)
        pixels = torch.nn.functional.interpolate(grey, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
        pixels = (pixels - torch.tensor(model.mean).view(1, 3, 1, 1)) / torch.tensor(model.std).view(1, 3, 1, 1)
        captions = [split["captions"][i][0] for i in rows]
        if library == "open_clip":
            image, text = inner.encode_image(pixels), inner.encode_text(model.tokenizer(captions))
        else:
            image = inner.get_image_features(pixel_values=pixels).pooler_output
            tokens = model.tokenizer(captions, padding=True, return_tensors="pt")
            text = inner.get_text_features(**tokens).pooler_output
    np.testing.assert_allclose(dump["image"][rows], torch.nn.functional.normalize(image).numpy(), atol=1e-5)
    np.testing.assert_allclose(dump["text"][rows], torch.nn.functional.normalize(text).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(dump["image"], axis=1), 1, atol=1e-5)


def test_class_prompts_embed_each_class_name_in_the_template(models, tiny_data):
    model = load_model(models["hf_clip"])
    dump, done = embed_prepared(model, tiny_data, text="prompts", prompt="a sketch of the digit {}")
    names = read_manifest(tiny_data)["class_names"]
    expected = model.encode("text", [f"a sketch of the digit {n}" for n in names]).detach().numpy()
    assert done["text"] == "prompts"
    np.testing.assert_allclose(dump["text"], expected[dump["labels"]], atol=1e-5)


def test_captions_that_are_only_class_names_become_prompts(models, tiny_data, tmp_path):
    import shutil

    data = tmp_path / "named"
    shutil.copytree(tiny_data, data)
    labels = np.load(data / "test" / "labels.npy")
    names = read_manifest(data)["class_names"]
    (data / "test" / "captions.json").write_text(json.dumps([[names[i]] for i in labels]))
    _, done = embed_prepared(load_model(models["open_clip"]), data)
    assert done["text"] == "prompts"


def test_audio_text_model_embeds_the_waveforms(models, waveform_data):
    model = load_model(models["hf_clap"])
    dump, done = embed_prepared(model, waveform_data)
    assert done["modalities"] == ["audio", "text"] and "image" not in dump
    waves = np.load(waveform_data / "test" / "audio_waveform.npy")[:2].astype(np.float32) / 32768.0
    expected = model.encode("audio", torch.from_numpy(waves), 8000).detach().numpy()
    np.testing.assert_allclose(dump["audio"][:2], expected, atol=1e-5)


def test_an_audio_model_needs_the_waveforms(models, tiny_data):
    with pytest.raises(Exception, match="stores no audio_waveform"):
        embed_prepared(load_model(models["hf_clap"]), tiny_data)


def test_embed_then_evaluate_from_the_command_line(models, tiny_data, tmp_path, capsys):
    out = tmp_path / "dumps"
    assert main(["embed", "--model", models["open_clip"], "--model", models["hf_clip"], "--data", str(tiny_data),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    files = sorted(out.glob("*.npz"))
    assert len(files) == 2 and "20 items x 16-d, image + text" in printed and "modgap evaluate" in printed
    assert main(["evaluate", *map(str, files), "--level", "class", "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "20 items x 16-d, modalities image, text" in report and "V-Measure" in report


# Fine-tuning: pretrained towers in the training configuration.


def _towers(models, library):
    folder = models[library].partition(":")[2]
    kind = "open_clip" if library == "open_clip" else "hf_clip"
    return {"towers": {"image": {"kind": kind, "model": folder}, "text": {"kind": kind, "model": folder}}}


SEPARATION = {"label": "separation term", "encoder": "separate", "temperature": {"init": 0.07, "learnable": True},
              "loss": {"infonce": {"weight": 1.0}, "imsep": {"weight": 0.5, "similarity": "sentence"}}}  # fmt: skip


@pytest.mark.parametrize("library", ["open_clip", "hf_clip"])
@pytest.mark.parametrize("method", ["clip_lt", "ours", "separation"])
def test_one_fine_tuning_step_of_a_pretrained_model_per_method(library, method, models, tiny_data, tmp_path,
                                                               default_config_dict, monkeypatch):  # fmt: skip
    from modgap.study.config import load_config
    from modgap.study.plan import resolve_run
    from modgap.training.trainer import Trainer

    config = {**default_config_dict, "methods": {**default_config_dict["methods"], "separation": SEPARATION}}
    config["experiments"] = [{"name": "tuned", "dataset": "embedded", "modalities": ["image", "text"],
                              "methods": [method], "model": _towers(models, library)}]  # fmt: skip
    config["train"] = {"epochs": 1, "batch_size": 45, "progress": "never", "budgets": None}
    config["claims"] = {"baseline": method, "methods": [method], "controls": []}
    config["dose_response"] = {"experiment": None}
    run = resolve_run(load_config(config), "tuned", method)
    trainer = Trainer(run, tiny_data, tmp_path, seed=0)
    reference = load_model(models[library])
    images = torch.from_numpy(load_split(tiny_data, "test", ["image"])["image"][:4].copy())
    with torch.no_grad():  # before any step the encoder is the published model: no head of ours on top
        np.testing.assert_allclose(trainer.model.encode("image", images), reference.encode("image", images), atol=1e-5)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(0, None, 1)
    moved = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("image" in k for k in moved) and any("text" in k or "token" in k for k in moved)


def test_alignclip_cannot_share_a_pretrained_tower_and_says_so_before_any_job(models, default_config_dict):
    from modgap.study.config import ConfigError, load_config

    config = {**default_config_dict, "model": _towers(models, "open_clip")}
    config["experiments"] = [{"name": "tuned", "dataset": "embedded", "modalities": ["image", "text"],
                              "methods": ["alignclip"]}]  # fmt: skip
    config["claims"] = {"baseline": "alignclip", "methods": ["alignclip"], "controls": []}
    config["dose_response"] = {"experiment": None}
    with pytest.raises(ConfigError, match=r"model.towers.image.kind': open_clip cannot share a trunk"):
        load_config(config)


def test_a_pretrained_tower_naming_an_unknown_model_is_a_config_error(default_config_dict):
    from modgap.study.config import ConfigError, load_config

    config = {**default_config_dict, "model": {"towers": {"image": {"kind": "open_clip", "model": "ViT-B-99",
                                                                    "pretrained": "openai"}}}}  # fmt: skip
    config["experiments"] = [{"name": "tuned", "dataset": "embedded", "modalities": ["image", "text"],
                              "methods": ["clip_lt"]}]  # fmt: skip
    config["claims"] = {"baseline": "clip_lt", "methods": ["clip_lt"], "controls": []}
    config["dose_response"] = {"experiment": None}
    with pytest.raises(ConfigError, match=r"'model.towers.image.model': model open_clip:ViT-B-99/openai: open_clip "):
        load_config(config)


def _damaged_copy(source: str, tmp_path, damage) -> str:
    """A copy of a tiny model's folder with ``damage(folder)`` applied; its spec."""
    import shutil

    library, _, folder = source.partition(":")
    copy = tmp_path / "damaged"
    shutil.copytree(folder, copy)
    damage(copy)
    return f"{library}:{copy}"


@pytest.mark.parametrize(
    "library, damage, message",
    [
        (
            "open_clip",
            lambda f: (f / "open_clip_model.safetensors").unlink(),
            "holds no weights (open_clip_model.safetensors or open_clip_pytorch_model.bin)",
        ),
        ("hf_clip", lambda f: (f / "tokenizer.json").unlink(), "holds no tokenizer (tokenizer.json or vocab.json)"),
        ("hf_clip", lambda f: (f / "config.json").write_text("{not json"), "config.json is not JSON ("),
        (
            "open_clip",
            lambda f: (f / "open_clip_model.safetensors").write_bytes(b"\0" * 100),
            "cannot be loaded (SafetensorError",
        ),
        ("hf_clip", lambda f: (f / "model.safetensors").write_bytes(b"\0" * 100), "cannot be loaded ("),
    ],
    ids=["open-clip-no-weights", "hf-no-tokenizer", "hf-garbled-config", "open-clip-truncated", "hf-truncated"],
)
def test_a_damaged_model_folder_is_refused_in_one_line(library, damage, message, models, tiny_data, tmp_path, capsys):
    """Never a random model, a two-token tokenizer or a traceback: the spec and what is wrong, in one line."""
    spec = _damaged_copy(models[library], tmp_path, damage)
    code = main(["embed", "--model", spec, "--data", str(tiny_data), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert (
        code == 2 and err.startswith(f"modgap embed: model {spec}: ") and message in err and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ["--text", "prompts", "--prompt", "a {} of a {}"],
            "prompt 'a {} of a {}': holds the fields {}, {}; write exactly one '{}'",
        ),
        (["--text", "prompts", "--prompt", "a {name} photo {}"], "holds the fields {name}, {}"),
        (["--text", "prompts", "--prompt", "a {"], "is not a template (Single '{' encountered"),
        pytest.param(
            ["--device", "cuda"],
            "--device is 'cuda' but no CUDA device is available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here"),
        ),
    ],
    ids=["two-fields", "named-field", "unmatched-brace", "no-gpu"],
)
def test_embed_options_that_cannot_work_are_named_in_one_line(arguments, message, models, tiny_data, tmp_path, capsys):
    code = main(
        [
            "embed",
            "--model",
            models["open_clip"],
            "--data",
            str(tiny_data),
            "--out",
            str(tmp_path),
            "--quiet",
            *arguments,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_batch_size_below_one_and_one_model_named_twice_are_refused(models, tiny_data, tmp_path, capsys):
    base = ["embed", "--data", str(tiny_data), "--out", str(tmp_path / "out"), "--quiet"]
    with pytest.raises(SystemExit):
        main([*base, "--model", models["open_clip"], "--batch-size", "0"])
    assert "0 is not a positive whole number" in capsys.readouterr().err
    code = main([*base, "--model", models["open_clip"], "--model", models["open_clip"] + "/"])
    assert code == 2 and "would be written to one file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_prompt_rule_is_the_config_check_too():
    from modgap.study.model_specs import prompt_problem

    assert prompt_problem("a photo of a {}.") is None and prompt_problem("{{literal}} {}") is None
    assert prompt_problem("a photo") == "holds no '{}' where the class name goes"
    assert prompt_problem("{0}") == "holds the fields {0}; write exactly one '{}' for the class name"
