"""Model specs: which pretrained CLIP-style model of open_clip or Hugging Face transformers a command or a
configuration names, and whether it can be had, checked without torch (modgap.embeddings.pretrained loads it).

A model spec names a library and a model:

- ``open_clip:<architecture>/<pretrained tag>``, e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k``, or
  ``open_clip:<folder>`` (a local folder with ``open_clip_config.json`` and a weights file);
- ``hf:<hub id or local folder>``, e.g. ``hf:openai/clip-vit-base-patch32`` (image and text) or
  ``hf:laion/clap-htsat-unfused`` (audio and text).

Weights come from the hubs at run time into their own caches (open_clip downloads through the Hugging Face
hub); a model that is neither cached nor reachable is refused with one line naming it and the command that
fetches it. Nothing here imports torch: the workflow plans with these checks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

from modgap.errors import ExplainedError

LIBRARIES = ("open_clip", "hf")
OPEN_CLIP_MODALITIES = ("image", "text")
# A Hugging Face model's config.json 'model_type' -> the modalities it embeds.
HF_MODEL_TYPES = {"clip": ("image", "text"), "clap": ("audio", "text")}
SPEC_FORMS = "open_clip:<architecture>/<pretrained tag>, open_clip:<local folder>, hf:<hub id or local folder>"
# CLIP's own prompt style for data sets whose text is a class name (docs/your_embeddings.md).
DEFAULT_PROMPT = "a photo of a {}."


def prompt_problem(template: str) -> str | None:
    """Why a class-prompt template cannot be filled with one class name: it must hold exactly one '{}' and no
    other replacement field (None: it can)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:  # an unmatched brace
        return f"is not a template ({error}; write a literal brace as {{{{ or }}}})"
    if fields == [""]:
        return None
    if not fields:
        return "holds no '{}' where the class name goes"
    return f"holds the fields {', '.join('{' + f + '}' for f in fields)}; write exactly one '{{}}' for the class name"


class ModelError(ExplainedError, ValueError):
    """A model spec that names no usable model: the message names the spec and what to do."""


@dataclass(frozen=True)
class ModelSpec:
    library: str  # one of LIBRARIES
    name: str  # an open_clip architecture, a hub id, or a local folder
    pretrained: str | None = None  # an open_clip pretrained tag (None for folders and Hugging Face models)

    def __str__(self) -> str:
        return f"{self.library}:{self.name}" + (f"/{self.pretrained}" if self.pretrained else "")

    @property
    def local(self) -> bool:
        return _is_local(self.name)

    @property
    def slug(self) -> str:
        """A file name for the model's outputs."""
        return re.sub(r"[^A-Za-z0-9-]+", "_", str(self)).strip("_")


def _is_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).is_dir()


def parse_model_spec(text: str) -> ModelSpec:
    """``library:name[/tag]`` as a ModelSpec; raises ModelError on a spec of no known form."""
    library, colon, name = str(text).partition(":")
    if not colon or library not in LIBRARIES or not name:
        raise ModelError(f"model {text!r}: expected one of {SPEC_FORMS}")
    if library == "hf" or _is_local(name):
        return ModelSpec(library, os.path.expanduser(name) if _is_local(name) else name)
    architecture, _, tag = name.partition("/")
    if not tag:
        raise ModelError(
            f"model {text!r}: names no pretrained weights; write open_clip:{architecture}/<tag> (list the tags with "
            f"`python -c \"import open_clip; print(open_clip.list_pretrained_tags_by_model('{architecture}'))\"`)"
        )
    return ModelSpec(library, architecture, tag)


def tower_spec(tower: dict) -> ModelSpec:
    """The model a pretrained tower of the training configuration names (``kind: open_clip`` or ``hf_clip``)."""
    if tower["kind"] == "open_clip":
        tag = tower.get("pretrained")
        text = f"open_clip:{tower['model']}" + (f"/{tag}" if isinstance(tag, str) and tag else "")
        return parse_model_spec(text)
    return parse_model_spec(f"hf:{tower['model']}")


def _fetch_advice(spec: ModelSpec, repo: str | None) -> str:
    if repo:
        return f"fetch it once where there is network with `hf download {repo}`"
    return (
        'fetch it once where there is network with `python -c "import open_clip; '
        f"open_clip.create_model('{spec.name}', pretrained='{spec.pretrained}')\"`"
    )


def unreachable(spec: ModelSpec, repo: str | None, error: Exception) -> ModelError:
    from huggingface_hub.constants import HF_HUB_CACHE

    first_sentence = " ".join(str(error).split()).split(". ")[0][:120]
    reason = f"{type(error).__name__}: {first_sentence}"
    return ModelError(
        f"model {spec}: not in the Hugging Face cache ({HF_HUB_CACHE}) and the hub cannot be reached ({reason}); "
        f"{_fetch_advice(spec, repo)} (HF_HUB_OFFLINE=1 skips the hub's retries)"
    )


def _hub_file(spec: ModelSpec, repo: str, filename: str) -> str:
    """A file of a hub repository: from the cache, else downloaded into it; refused in one line when neither."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError

    cached = try_to_load_from_cache(repo, filename)
    if isinstance(cached, str):
        return cached
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings would bury the one line below
    try:
        return hf_hub_download(repo, filename)
    except RepositoryNotFoundError:
        raise ModelError(f"model {spec}: no repository '{repo}' on the Hugging Face hub") from None
    except RemoteEntryNotFoundError:
        raise ModelError(f"model {spec}: the hub repository '{repo}' holds no {filename}") from None
    except (LocalEntryNotFoundError, Exception) as error:  # offline, DNS, timeouts, proxies: many types
        raise unreachable(spec, repo, error) from None
    finally:
        hub_log.setLevel(level)


def open_clip_weights(spec: ModelSpec) -> str:
    """The local checkpoint of an open_clip architecture's pretrained tag (downloaded when not cached)."""
    import open_clip

    if spec.name not in open_clip.list_models():
        raise ModelError(
            f"model {spec}: open_clip has no architecture '{spec.name}' (`python -c \"import open_clip; "
            'print(open_clip.list_models())"` lists them)'
        )
    config = open_clip.get_pretrained_cfg(spec.name, spec.pretrained)
    if not config:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(spec.name)) or "none"
        raise ModelError(f"model {spec}: no pretrained tag '{spec.pretrained}' of {spec.name} (tags: {tags})")
    hub = config.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        return _hub_file(spec, repo, filename or "open_clip_pytorch_model.bin")
    try:
        return open_clip.download_pretrained(config)
    except Exception as error:  # a plain URL download (urllib)
        raise unreachable(spec, None, error) from None


# What a local model folder must hold besides its config: weights (one of), and for Hugging Face a tokenizer
# (one of), without which transformers would fall back to a two-token vocabulary and embed every text alike.
LOCAL_WEIGHTS = {
    "open_clip": ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    "hf": ("model.safetensors", "pytorch_model.bin"),
}
LOCAL_TOKENIZER = ("tokenizer.json", "vocab.json")


def _local_files_problem(spec: ModelSpec) -> None:
    """Refuse a local folder without weights (a random model would be embedded) or, for Hugging Face, without
    a tokenizer."""
    folder = Path(spec.name)
    needed = [("weights", LOCAL_WEIGHTS[spec.library])] + (
        [("tokenizer", LOCAL_TOKENIZER)] if spec.library == "hf" else []
    )
    for what, names in needed:
        if not any((folder / name).is_file() for name in names):
            raise ModelError(f"model {spec}: {folder} holds no {what} ({' or '.join(names)})")


def hf_config(spec: ModelSpec) -> dict:
    if spec.local:
        path = Path(spec.name) / "config.json"
        if not path.is_file():
            raise ModelError(f"model {spec}: {path} not found (a local model folder holds save_pretrained's files)")
    else:
        path = Path(_hub_file(spec, spec.name, "config.json"))
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"model {spec}: {path} is not JSON ({error})") from None
    if not isinstance(config, dict):
        raise ModelError(f"model {spec}: {path} is not a model config (not a JSON object)")
    return config


def model_modalities(spec: ModelSpec | str) -> tuple[str, ...]:
    """The modalities a model embeds, checked without loading its weights (no torch): an unknown library,
    architecture, tag or model type, a missing local folder, or a model neither cached nor reachable raise
    ModelError."""
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    if spec.library == "open_clip":
        if spec.local:
            config = Path(spec.name) / "open_clip_config.json"
            if not config.is_file():
                raise ModelError(f"model {spec}: {config} not found (a local open_clip folder holds its config)")
            _local_files_problem(spec)
        else:
            open_clip_weights(spec)  # the architecture and tag exist, and the weights can be had
        return OPEN_CLIP_MODALITIES
    model_type = hf_config(spec).get("model_type")
    if spec.local:
        _local_files_problem(spec)
    if model_type not in HF_MODEL_TYPES:
        known = ", ".join(f"{t} ({' + '.join(m)})" for t, m in HF_MODEL_TYPES.items())
        raise ModelError(f"model {spec}: model type {model_type!r} is not one this project embeds (known: {known})")
    return HF_MODEL_TYPES[model_type]
