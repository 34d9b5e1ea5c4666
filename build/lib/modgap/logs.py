"""Logging set-up shared by the workflow scripts and the command line."""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from modgap.errors import ExplainedError

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The last line of every job's log, however its script ended: a log without it belongs to a job killed
# before its script could write it (SIGKILL, the out-of-memory killer), which only Snakemake saw end.
END_OF_LOG = "the job's script ended"
# Libraries that log routine details at INFO (font subsetting of every PDF, model loading).
_CHATTY = ("fontTools", "matplotlib", "sentence_transformers", "httpx")


@contextlib.contextmanager
def log_to_file(path: str | Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Send log records, warnings and uncaught tracebacks of the block to ``path`` (stderr if None).

    Snakemake jobs log to their rule's log file only, so the terminal shows the workflow's progress.
    An error that explains itself (modgap.errors.ExplainedError) reaches the terminal as its one-line
    message and the log's path, the job exiting with status 1; its traceback stays in the log. Any other
    error names the log on the terminal too.
    """
    root = logging.getLogger()
    if path is None:
        handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(path, mode="w")]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    previous_level = root.level
    root.setLevel(level)
    quiet = {name: logging.getLogger(name).level for name in _CHATTY}
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    try:
        yield
    except ExplainedError as error:
        logging.getLogger("modgap").exception("failed")
        if path is None:
            raise
        print(f"error: {error}\n  (this job's log: {path})", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception:
        logging.getLogger("modgap").exception("failed")
        if path is not None:  # the terminal names the failed job's log (the default profile shows no job details)
            print(f"error: the job failed; its log, with the traceback: {path}", file=sys.stderr)
        raise
    except BaseException:  # an interrupt: logged, nothing to explain
        logging.getLogger("modgap").exception("failed")
        raise
    finally:
        if path is not None:
            logging.getLogger("modgap").info(END_OF_LOG)
        logging.captureWarnings(False)
        root.setLevel(previous_level)
        for name, previous in quiet.items():
            logging.getLogger(name).setLevel(previous)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def print_at_exit(path: str | Path, since: float) -> None:
    """Print ``path`` as the last thing on the terminal, if it was (re)written at or after ``since`` (a
    ``time.time()``): after a workflow run, the claims check it rebuilt, below Snakemake's closing lines."""
    path = Path(path).resolve()  # Snakemake leaves the working directory before atexit runs
    if path.is_file() and path.stat().st_mtime >= since:
        atexit.register(lambda: print(f"\n{path.read_text()}", end="", flush=True))


def report_killed_jobs(root: str | Path, since: float) -> list[Path]:
    """Name, on the terminal, the log of every job of this run that was killed before its script ended: the
    logs below ``root`` written at or after ``since`` (a ``time.time()``) whose last line is not END_OF_LOG.
    The workflow calls it when a run fails (Snakefile, onerror): a killed job cannot name its log itself,
    and the default profile keeps Snakemake's own account of failed jobs off the terminal."""
    killed = []
    for path in sorted(Path(root).rglob("*.log")) if Path(root).is_dir() else []:
        if path.stat().st_mtime >= since and not path.read_text(errors="replace").rstrip().endswith(END_OF_LOG):
            killed.append(path)
            print(
                f"error: a job was killed before its script ended (a signal, or out of memory?); its log: {path}",
                file=sys.stderr,
            )
    return killed
