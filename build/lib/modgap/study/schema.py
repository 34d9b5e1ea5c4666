"""The configuration's JSON schema: the shape and defaults of every key, read from package data
(``workflow/schemas/config.schema.yaml`` in a checkout), with messages that name the key."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Package data, so that an installed package finds it outside any checkout: in a checkout, a link to
# workflow/schemas/config.schema.yaml, the file the workflow reads.
SCHEMA_PATH = Path(str(resources.files(__package__) / "config.schema.yaml")).resolve()


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


DefaultingValidator = _with_defaults(
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


def schema_problems(config: dict, schema: dict, prefix: tuple = ()) -> list[str]:
    """Schema violations, each naming its key; ``prefix`` is where ``config`` sits in the whole configuration."""
    validator = DefaultingValidator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("if", "allOf") and error.context:
            continue  # the specific errors of the branch are reported separately
        key = format_key([*prefix, *error.absolute_path])
        if error.validator == "propertyNames":
            problems.append(f"config key '{key}': {error.instance!r} is not a plain name ({NAME_RULE})")
        elif error.validator == "pattern" and error.schema.get("pattern") == name_pattern(schema):
            problems.append(f"config key '{key}': {error.instance!r} is not a plain name ({NAME_RULE})")
        else:
            problems.append(f"config key '{key}': {error.message}")
    return problems + non_finite_problems(config, prefix)


NAME_RULE = "letters, digits, _ . - and no path: it names a folder under results/"


def name_pattern(schema: dict) -> str | None:
    return schema.get("definitions", {}).get("name", {}).get("pattern")


def non_finite_problems(value: Any, path: tuple) -> list[str]:
    """NaN and infinity anywhere in the configuration, each naming its key (JSON Schema lets them
    through every bound: NaN compares false with any minimum)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"config key '{format_key(list(path))}': {value} is not a finite number"]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in non_finite_problems(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in non_finite_problems(item, (*path, index))]
    return []


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def subschema(schema: dict, name: str) -> dict:
    """A definition of the schema as a standalone schema (its $refs still resolve)."""
    return {**schema["definitions"][name], "definitions": schema["definitions"]}


def bound_problems(definition: str, values: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, str]:
    """key -> why its value breaks the type or bounds the schema gives ``<definition>.<key>`` (NaN and
    infinity included, which JSON Schema's bounds let through), for the keys of ``values`` alone: the command
    line's options take the workflow's bounds from here."""
    found: dict[str, str] = {}
    validator = DefaultingValidator(subschema(load_schema(schema_path), definition))
    for error in validator.iter_errors(copy.deepcopy(dict(values))):
        key = next(iter(error.absolute_path), None)
        if key in values:
            found.setdefault(key, error.message)
    for key, value in values.items():
        if non_finite_problems(value, ()):
            found.setdefault(key, f"{value} is not a finite number")
    return found


def section_defaults(name: str, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """A top-level section of the configuration (``evaluate``, ``claims``) with every default filled in."""
    return defaults(load_schema(schema_path), name)


def defaults(schema: dict, name: str) -> dict:
    section: dict = {}
    DefaultingValidator({"$ref": f"#/definitions/{name}", "definitions": schema["definitions"]}).validate(section)
    return section
