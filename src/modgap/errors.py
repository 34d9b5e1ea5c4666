"""Errors that explain themselves: a job prints their one-line message, its log keeps the traceback.

Kept free of heavy imports: the Snakefile reads the configuration (modgap.study.config) with it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

# Set by the workflow (common.smk) to the command line the user ran, so a job's advice repeats it.
RERUN_VARIABLE = "MODGAP_RERUN"
_DRY_RUN_FLAGS = ("-n", "--dry-run", "--dryrun")


class ExplainedError(Exception):
    """An error whose message names its cause (a file, a config key) in one line: jobs print that line
    on the terminal and keep the traceback in their log (modgap.logs.log_to_file)."""


class CorruptIntermediateError(ExplainedError, RuntimeError):
    """A file written by an earlier stage is unreadable or incomplete; the message names it and how to rebuild it
    (``path``, ``what`` and ``detail`` keep its parts, so a caller that knows better can reword the advice)."""

    def __init__(self, message: str, path: str | Path, what: str, detail: str):
        super().__init__(message)
        self.path, self.what, self.detail = path, what, detail


def study_command(argv: Sequence[str]) -> str:
    """The snakemake command line of ``argv`` (as ``sys.argv`` holds it), less any dry-run flag: what
    the user typed, config files and targets included, to be repeated with one more option."""
    return shlex.join(["snakemake", *(a for a in argv[1:] if a not in _DRY_RUN_FLAGS)])


def rebuild_command(path: str | Path, command: str | None = None) -> str:
    """The command that rebuilds ``path`` and everything made from it, then finishes the user's study: the
    user's ``command`` (in a job, the one the workflow recorded), with ``--forcerun``."""
    command = command or os.environ.get(RERUN_VARIABLE) or "snakemake --cores all"
    return f"{command} --forcerun {shlex.quote(str(path))}"


def corrupt(
    path: str | Path, what: str, error: BaseException | str, rebuildable: bool = True, command: str | None = None
) -> CorruptIntermediateError:
    """The error for a damaged (unreadable or incomplete) ``path`` (a ``what``): for an intermediate of the
    study in this folder (under results/, and ``rebuildable``), with the command that rebuilds it (``command``:
    the study's own, rebuild_command); for a file from elsewhere, which no rerun of this study remakes, with no
    command."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {' '.join(str(error).split())}"  # one line
    if rebuildable and Path(path).resolve().is_relative_to(Path.cwd().resolve() / "results"):
        advice = f"rebuild it with `{rebuild_command(path, command)}`"
    else:
        advice = "it is not an intermediate of a study in this folder (results/), so fix it or make it again where it was made"
    return CorruptIntermediateError(f"{path}: damaged {what} ({detail}); {advice}", path, what, detail)
