"""Atomic file output: a crashed job never leaves a file that looks finished, and never removes what
it did not write.

Every output is written to a hidden temporary sibling (``.<name>.<random>.tmp``) and moved into place
only when complete. A later write of the same output first removes the temporaries an interrupted
run left behind. A directory output replaces an existing directory only if that directory carries
the mark this module writes into every directory it makes (``OWNED_MARK``): a name that happens to
resolve to somebody else's folder can never have it removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modgap.errors import ExplainedError

# Written into every directory made by atomic_directory: the licence to replace it later.
OWNED_MARK = ".modgap-output"
_WRITE_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class OutputWriteError(ExplainedError, OSError):
    """An output could not be written (disk full, read-only, no permission); names the path and the cause."""


class ForeignDirectoryError(ExplainedError, FileExistsError):
    """An output directory exists but was not written by this workflow, so it is left alone."""


class OutputFolderError(ExplainedError, ValueError):
    """A folder cannot receive the files a command would write there; found before any work."""


def _write_cause(error: OSError, directory: Path) -> str | None:
    """The plain-words cause of a failed write, or None when it is not a storage problem."""
    if error.errno in _WRITE_CAUSES:
        return _WRITE_CAUSES[error.errno]
    # numpy's short writes ("N requested and M written") carry no errno: a full disk is the usual cause
    if error.errno is None and "requested and" in str(error):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(directory).free < 64 * 2**20:
                return "no space left on device"
        return "short write (is the disk full?)"
    return None


@contextlib.contextmanager
def explained_write_errors(path: Path) -> Iterator[None]:
    """Turn a storage failure inside the block into one line naming ``path`` and the cause."""
    try:
        yield
    except OSError as error:
        if isinstance(error, ExplainedError):
            raise
        cause = _write_cause(error, path.parent)
        if cause is None:
            raise
        raise OutputWriteError(f"{cause} while writing {path}") from error


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries an interrupted write of ``path`` left beside it; return them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return _remove(sorted(path.parent.glob(f".{glob_escape(path.name)}.*.tmp")))


def remove_stale_temporaries_under(root: str | Path) -> list[Path]:
    """Remove every temporary (``.*.tmp``) an interrupted write left anywhere below ``root``.

    Only for a moment when nothing writes below ``root``: the workflow calls it as a run starts,
    holding Snakemake's lock on the working directory.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    inside_another = lambda path: any(part.endswith(".tmp") for part in path.relative_to(root).parts[:-1])  # noqa: E731
    return _remove(sorted(p for p in root.rglob(".*.tmp") if not inside_another(p)))


def _remove(paths: list[Path]) -> list[Path]:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return paths


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _make_parent(path: Path) -> None:
    with explained_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    _make_parent(path)
    remove_stale_temporaries(path)
    with explained_write_errors(path):
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(tmp)
    try:
        with explained_write_errors(path):
            yield tmp
            os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_owned(directory: Path) -> bool:
    """Whether ``directory`` was written by atomic_directory (or is empty, so nothing can be lost)."""
    return (directory / OWNED_MARK).is_file() or (directory.is_dir() and not any(directory.iterdir()))


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only if the block succeeds.

    An existing ``path`` is replaced only when this module wrote it (it holds ``OWNED_MARK``);
    anything else there is refused before any work, with a ForeignDirectoryError.
    """
    path = Path(path)
    if path.is_symlink() or path.exists() and not (path.is_dir() and is_owned(path)):
        raise ForeignDirectoryError(
            f"{path}: exists and was not written by this workflow; refusing to replace it "
            "(move it away, or choose another name)"
        )
    _make_parent(path)
    remove_stale_temporaries(path)
    with explained_write_errors(path):
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        with explained_write_errors(path):
            yield tmp
            (tmp / OWNED_MARK).write_text("written by modgap; the workflow may replace this directory\n")
            os.chmod(tmp, 0o755)  # mkdtemp creates directories private to their owner
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _temporary_name_bytes(name: str) -> int:
    """The length of the longest name atomic_path gives ``name``'s temporary (mkstemp adds 8 characters)."""
    return len(f".{name}.{'x' * 8}.tmp".encode())


def check_output_folder(folder: str | Path, names: list[str]) -> None:
    """Refuse, before any work, a ``folder`` that cannot receive files ``names``: a file in its place, one
    that cannot be created or written to, or a name (of a file, its temporary, or a folder to create) longer
    than its file system allows. Creates nothing."""
    folder = Path(folder)
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "not a folder" if existing == folder else f"cannot be created: {existing} is not a folder"
        raise OutputFolderError(f"{folder}: {where}")
    limit = os.pathconf(existing, "PC_NAME_MAX")
    created = folder.relative_to(existing).parts if existing != folder else ()
    for name, size in [(part, len(part.encode())) for part in created] + [(n, _temporary_name_bytes(n)) for n in names]:
        if size > limit:
            raise OutputFolderError(
                f"{folder}: the name '{name}' needs {size} bytes (with its temporary's), longer than the {limit} "
                "this file system allows; shorten it"
            )
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".modgap-probe."))  # can anything be made there?
    except OSError as error:
        raise OutputFolderError(
            f"{folder}: cannot be {'written to' if existing == folder else 'created'} ({error.strerror or error})"
        ) from None


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def save_torch(path: str | Path, payload: Any) -> None:
    """``torch.save`` atomically, byte-stable: the archive's internal folder name is fixed ("archive")
    instead of following the random temporary file name, and a full disk fails as an OSError."""
    import torch  # only training saves torch objects; every job of the analysis environment, which lacks torch, uses io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's content (hex)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tree_digest(path: str | Path) -> str:
    """A SHA-256 over what a file, or every file under a folder, is: relative name, size and modification
    time (hidden entries left out). Every workflow call computes it, so it reads no content: a local copy of
    MSCOCO holds tens of gigabytes. A copy that gains, loses, grows or rewrites a file gets another digest;
    "missing" where nothing is there (the preparation names what it lacks)."""
    root = Path(path)
    if not root.exists():
        return "missing"
    files = (
        [root]
        if root.is_file()
        else sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    )
    listing = "\n".join(
        f"{p.relative_to(root).as_posix() if p != root else p.name} {p.stat().st_size} {p.stat().st_mtime_ns}"
        for p in files
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def read_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)
