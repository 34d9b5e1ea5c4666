"""Resumable, verified downloads of the public data sets' original files.

Every file has an official URL and, where known, an MD5 checksum. A source can be
redirected to a mirror: a local directory or a ``file://`` / ``http(s)://`` URL
holding the same file names (clusters without internet, pre-downloaded copies).
A download goes to ``<name>.part`` and continues from there after an
interruption (HTTP range requests); the finished file is verified, and a file
whose checksum does not match is deleted and reported with the expected sum.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from modgap.errors import ExplainedError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(ExplainedError, RuntimeError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    """One original file of a data set."""

    name: str  # file name on disk and in mirrors
    url: str  # official location
    md5: str | None = None  # None where the publisher gives none (verified per file after extraction)


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_url(remote: RemoteFile, mirror: str | None) -> str:
    """The URL to fetch ``remote`` from: the mirror's copy if a mirror is set, else the official one."""
    if not mirror:
        return remote.url
    if "://" not in mirror:  # a plain directory
        return Path(mirror).resolve().joinpath(remote.name).as_uri()
    return mirror.rstrip("/") + "/" + urllib.parse.quote(remote.name)


def _progress(total: int | None, initial: int, name: str, enabled: bool):
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, disable=not enabled)


def _fetch_file_url(url: str, part: Path, show_progress: bool) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not source.is_file():
        raise DownloadError(f"{url}: no such file")
    done = part.stat().st_size if part.exists() else 0
    with open(source, "rb") as reader, open(part, "ab") as writer:
        reader.seek(done)
        with _progress(source.stat().st_size, done, source.name, show_progress) as bar:
            for block in iter(lambda: reader.read(_CHUNK), b""):
                writer.write(block)
                bar.update(len(block))


def _fetch_http(url: str, part: Path, show_progress: bool, timeout: float) -> None:
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and done:  # the part file is already complete
            return
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"{url}: {error}; no network? point the data set's mirror at a local copy") from error
    with response:
        resumed = response.status == 206
        if done and not resumed:  # the server ignored the range: start over
            done = 0
        length = response.headers.get("Content-Length")
        total = int(length) + done if length else None
        with open(part, "ab" if resumed else "wb") as writer, _progress(total, done, part.stem, show_progress) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                writer.write(block)
                bar.update(len(block))


def download(
    remote: RemoteFile,
    directory: str | Path,
    mirror: str | None = None,
    show_progress: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``remote`` into ``directory`` (resuming a partial download) and verify it; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.name
    if target.is_file() and (remote.md5 is None or md5sum(target) == remote.md5):
        return target
    url = resolve_url(remote, mirror)
    part = directory / f"{remote.name}.part"
    log.info("fetching %s from %s", remote.name, url)
    if url.startswith("file://"):
        _fetch_file_url(url, part, show_progress)
    elif url.startswith(("http://", "https://")):
        _fetch_http(url, part, show_progress, timeout)
    else:
        raise DownloadError(f"{url}: unsupported URL scheme (use https://, http://, file:// or a directory)")
    if remote.md5 is not None:
        actual = md5sum(part)
        if actual != remote.md5:
            part.unlink()
            raise DownloadError(
                f"{remote.name}: MD5 {actual} does not match the expected {remote.md5} "
                f"(from {url}); the partial file was deleted, download again"
            )
    os.replace(part, target)
    return target
