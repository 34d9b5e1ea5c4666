"""How tables and figures name methods, and in which order they show them.

The workflow hands every job that shows methods the study's display names (modgap.study.plan.display_names):
every method of the configuration, in its order, with its label (``methods.<name>.label``). A method
outside them, such as the folder of embeddings ``modgap compare`` reads, has no configuration to name it:
it is shown by its key, after the configuration's methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def method_label(method: str, labels: Mapping[str, str] | None = None) -> str:
    """A method's display name: its entry in ``labels``, else its key."""
    return (labels or {}).get(method, method)


def display_order(methods: Iterable[str], labels: Mapping[str, str] | None = None) -> list[str]:
    """``methods`` (each once) in the order of ``labels``, those without an entry after them in their own order."""
    methods = list(dict.fromkeys(methods))
    known = [m for m in labels or {} if m in methods]
    return known + [m for m in methods if m not in known]
