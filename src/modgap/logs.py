"""Logging set-up shared by the workflow scripts and the command line."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to_file(path: str | Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Send log records, warnings and uncaught tracebacks of the block to ``path`` (and stderr)."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    previous_level = root.level
    root.setLevel(level)
    logging.captureWarnings(True)
    try:
        yield
    except BaseException:
        logging.getLogger("modgap").exception("failed")
        raise
    finally:
        logging.captureWarnings(False)
        root.setLevel(previous_level)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
