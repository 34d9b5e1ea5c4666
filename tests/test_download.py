"""Downloads: mirrors (directory, file://, http with ranges), resume, checksum failures."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from modgap.data.download import DownloadError, RemoteFile, download, resolve_url

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture()
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "data.bin").write_bytes(PAYLOAD)
    return folder


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload with HTTP range support and records the ranges asked for."""

    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        RangeHandler.ranges.append(self.headers.get("Range"))
        if self.path != "/files/data.bin":
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_directory_mirror(tmp_path, mirror):
    path = download(RemoteFile("data.bin", "https://example.invalid/data.bin", MD5), tmp_path / "out", str(mirror))
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "out" / "data.bin.part").exists()


def test_file_url_mirror_resumes_a_partial_download(tmp_path, mirror):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(PAYLOAD[:1000])
    path = download(RemoteFile("data.bin", "https://example.invalid/data.bin", MD5), out, mirror.as_uri())
    assert path.read_bytes() == PAYLOAD


def test_http_resume_asks_for_the_missing_range(tmp_path, server):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin.part").write_bytes(PAYLOAD[:5000])
    path = download(RemoteFile("data.bin", f"{server}/files/data.bin", MD5), out)
    assert path.read_bytes() == PAYLOAD
    assert RangeHandler.ranges == ["bytes=5000-"]


def test_http_mirror_url(tmp_path, server):
    remote = RemoteFile("data.bin", "https://example.invalid/data.bin", MD5)
    assert download(remote, tmp_path, f"{server}/files").read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_file_and_names_it(tmp_path, mirror):
    remote = RemoteFile("data.bin", "https://example.invalid/data.bin", "0" * 32)
    with pytest.raises(DownloadError, match=f"data.bin: MD5 {MD5} does not match the expected 0{{32}}"):
        download(remote, tmp_path / "out", str(mirror))
    assert list((tmp_path / "out").iterdir()) == []


def test_http_errors_are_clear(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(RemoteFile("missing.bin", f"{server}/files/missing.bin", None), tmp_path)
    with pytest.raises(DownloadError, match="no network\\? point the data set's mirror"):
        download(RemoteFile("x.bin", "http://127.0.0.1:9/x.bin", None), tmp_path, timeout=2)
    with pytest.raises(DownloadError, match="no such file"):
        download(RemoteFile("x.bin", "https://example.invalid/x.bin", None), tmp_path, str(tmp_path / "nowhere"))


def test_verified_existing_file_is_not_fetched_again(tmp_path, mirror):
    remote = RemoteFile("data.bin", "https://example.invalid/data.bin", MD5)
    download(remote, tmp_path, str(mirror))
    (mirror / "data.bin").unlink()
    assert download(remote, tmp_path, str(mirror)).read_bytes() == PAYLOAD


def test_resolve_url():
    remote = RemoteFile("a b.tar.gz", "https://official/a b.tar.gz")
    assert resolve_url(remote, None) == "https://official/a b.tar.gz"
    assert resolve_url(remote, "https://mirror/data/") == "https://mirror/data/a%20b.tar.gz"
    assert resolve_url(remote, "/srv/data").endswith("/srv/data/a%20b.tar.gz")
