"""Downloads against a real HTTP server on 127.0.0.1: success, mismatch, 404, dropped connection, retries,
mirror hits, the checksum lock file and local sources."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genegraph.data.download import fetch, read_lock, remove_stale, sha256_path
from genegraph.errors import DataError

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Loopback HTTP server whose paths behave as the tests need; counts requests per path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.payload = PAYLOAD
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                n = server.hits[self.path] = server.hits.get(self.path, 0) + 1
                kind = self.path.split("/")[1]
                if kind == "missing":
                    self.send_error(404, "Not Found")
                    return
                if kind == "flaky" and n <= 2:
                    self.send_error(503, "Service Unavailable")
                    return
                body = server.payload
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if kind == "drop" or (kind == "dropfirst" and n == 1):
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


def test_success_verifies_and_renames(server, tmp_path):
    got = fetch(f"{server.url}/ok/data.bin", tmp_path / "d", sha256=SHA, retries=0)
    assert got.path == tmp_path / "d" / "data.bin"
    assert got.path.read_bytes() == PAYLOAD
    assert got.sha256 == SHA and got.origin.startswith("url:")
    assert leftovers(tmp_path / "d") == ["data.bin"]


def test_sha256_mismatch_removes_file(server, tmp_path):
    with pytest.raises(DataError, match="sha256 mismatch.*removed"):
        fetch(f"{server.url}/ok/data.bin", tmp_path / "d", sha256="0" * 64, retries=0)
    assert leftovers(tmp_path / "d") == []


def test_404_fails_at_once(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(f"{server.url}/missing/data.bin", tmp_path / "d", sha256=SHA, retries=3, backoff=0.01)
    assert server.hits["/missing/data.bin"] == 1  # a 404 is not retried
    assert leftovers(tmp_path / "d") == []


def test_dropped_connection_retried_then_fails(server, tmp_path):
    with pytest.raises(DataError, match="after 3 attempts.*connection closed after"):
        fetch(f"{server.url}/drop/data.bin", tmp_path / "d", sha256=SHA, retries=2, backoff=0.01)
    assert server.hits["/drop/data.bin"] == 3
    assert leftovers(tmp_path / "d") == []


def test_dropped_connection_recovers_on_retry(server, tmp_path):
    got = fetch(f"{server.url}/dropfirst/data.bin", tmp_path / "d", sha256=SHA, retries=2, backoff=0.01)
    assert got.path.read_bytes() == PAYLOAD
    assert server.hits["/dropfirst/data.bin"] == 2


def test_server_errors_retried_with_backoff(server, tmp_path):
    got = fetch(f"{server.url}/flaky/data.bin", tmp_path / "d", sha256=SHA, retries=3, backoff=0.01)
    assert got.sha256 == SHA
    assert server.hits["/flaky/data.bin"] == 3


def test_mirror_hit_by_name_makes_no_request(server, tmp_path):
    mirror = tmp_path / "mirror" / "sub"
    mirror.mkdir(parents=True)
    (mirror / "data.bin").write_bytes(PAYLOAD)
    got = fetch(f"{server.url}/ok/data.bin", tmp_path / "d", sha256=SHA, mirror=tmp_path / "mirror")
    assert got.origin == f"mirror:{mirror / 'data.bin'}"
    assert server.hits == {}


def test_mirror_hit_by_sha256_under_another_name(server, tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "renamed.bin").write_bytes(PAYLOAD)
    (tmp_path / "mirror" / "data.bin").write_bytes(b"same name, other bytes")
    got = fetch(f"{server.url}/ok/data.bin", tmp_path / "d", sha256=SHA, mirror=tmp_path / "mirror")
    assert got.origin.endswith("renamed.bin")
    assert got.path.name == "data.bin" and got.path.read_bytes() == PAYLOAD
    assert server.hits == {}


def test_mirror_miss_falls_back_to_network(server, tmp_path):
    (tmp_path / "mirror").mkdir()
    got = fetch(f"{server.url}/ok/data.bin", tmp_path / "d", sha256=SHA, mirror=tmp_path / "mirror", retries=0)
    assert got.origin.startswith("url:")
    assert server.hits == {"/ok/data.bin": 1}


def test_lock_file_records_then_verifies(server, tmp_path):
    lock = tmp_path / "checksums.lock.tsv"
    url = f"{server.url}/ok/data.bin"
    first = fetch(url, tmp_path / "d", lock_file=lock, retries=0)
    assert first.recorded and read_lock(lock) == {url: SHA}
    again = fetch(url, tmp_path / "d", lock_file=lock, retries=0)
    assert not again.recorded
    server.payload = b"changed upstream"
    with pytest.raises(DataError, match="sha256 mismatch.*recorded in"):
        fetch(url, tmp_path / "d2", lock_file=lock, retries=0)
    assert leftovers(tmp_path / "d2") == []


def test_local_file_and_directory_sources(tmp_path):
    (tmp_path / "repo" / "data" / "folder").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "x.txt").write_text("hello")
    (tmp_path / "repo" / "data" / "folder" / "a.txt").write_text("a")
    got = fetch("data/x.txt", tmp_path / "d", base_dir=tmp_path / "repo", sha256=hashlib.sha256(b"hello").hexdigest())
    assert got.path.read_text() == "hello" and got.origin.startswith("local:")
    folder = tmp_path / "repo" / "data" / "folder"
    got = fetch(f"file://{folder}", tmp_path / "d", sha256=sha256_path(folder))
    assert (got.path / "a.txt").read_text() == "a"
    with pytest.raises(DataError, match="not found"):
        fetch("data/absent.txt", tmp_path / "d", base_dir=tmp_path / "repo")


def test_unsupported_scheme(tmp_path):
    with pytest.raises(DataError, match="unsupported scheme 'ftp'"):
        fetch("ftp://example.org/x.txt", tmp_path / "d")


def test_a_failed_refetch_keeps_the_previous_good_copy(server, tmp_path):
    url = f"{server.url}/ok/data.bin"
    fetch(url, tmp_path / "d", sha256=SHA, retries=0)
    # an edited row with a wrong sha256: the new copy is discarded, the good one stays
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(url, tmp_path / "d", sha256="0" * 64, retries=0)
    assert leftovers(tmp_path / "d") == ["data.bin"] and (tmp_path / "d" / "data.bin").read_bytes() == PAYLOAD
    # a changed upstream file does not replace it either
    server.payload = b"changed upstream"
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(url, tmp_path / "d", sha256=hashlib.sha256(b"other").hexdigest(), retries=0)
    assert (tmp_path / "d" / "data.bin").read_bytes() == PAYLOAD
    # a good fetch replaces it
    server.payload = PAYLOAD
    got = fetch(url, tmp_path / "d", sha256=SHA, retries=0)
    assert got.origin.startswith("url:") and leftovers(tmp_path / "d") == ["data.bin"]


def test_stale_copies_of_an_earlier_source_are_removed(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    for name in ("old.h5ad", "new.h5ad", "download.json", ".new.h5ad.part"):
        (folder / name).write_text("x")
    remove_stale(folder, keep={"new.h5ad", "download.json"})
    assert leftovers(folder) == [".new.h5ad.part", "download.json", "new.h5ad"]
