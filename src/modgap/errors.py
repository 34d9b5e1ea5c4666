"""Errors that explain themselves: a job prints their one-line message, its log keeps the traceback.

Kept free of heavy imports: the Snakefile reads the configuration (modgap.config) with it.
"""

from __future__ import annotations

from pathlib import Path


class ExplainedError(Exception):
    """An error whose message names its cause (a file, a config key) in one line: jobs print that line
    on the terminal and keep the traceback in their log (modgap.logs.log_to_file)."""


class CorruptIntermediateError(ExplainedError, RuntimeError):
    """A file written by an earlier stage is unreadable; the message names it and how to rebuild it."""


def corrupt(path: str | Path, what: str, error: BaseException | str) -> CorruptIntermediateError:
    """The error for an unreadable intermediate ``path`` (a ``what``), with the command that rebuilds it."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return CorruptIntermediateError(
        f"{path}: unreadable {what} ({detail}); rebuild it with `snakemake --cores all --force {path}`, "
        "then run the study again"
    )
