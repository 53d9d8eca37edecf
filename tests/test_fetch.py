"""`models fetch` against a local HTTP server: download, resume, checksum refusal."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from avatarlab import weights
from avatarlab.engines._fill import filled_state_dict
from avatarlab.errors import CheckpointError, MissingWeightsError, OptionError
from avatarlab.tasks.models import FetchOptions, fetch


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with ``Range`` support; a name in ``cut`` is sent
    with its full Content-Length but only its first half, once (a dropped connection)."""

    files: dict[str, bytes] = {}
    cut: set[str] = set()
    ranges: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        name = self.path.lstrip("/")
        data = self.files.get(name)
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        self.ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.cut:
            self.cut.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    """A fixture-filled checkpoint file (rule B on a small conv net), as bytes."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"params_ema": filled_state_dict(net.state_dict(), rule="B")}, path)
    return path.read_bytes()


@pytest.fixture
def server(payload) -> Iterator[str]:
    _Files.files = {"tiny.pth": payload, "bad.pth": payload[:-8] + b"corrupt!"}
    _Files.cut, _Files.ranges = set(), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _register(name: str, filename: str, url: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    ckpt = weights.Checkpoint(name, filename, "test checkpoint", url, sha256=digest)
    weights.unregister(name)  # a test entry; replaced freely between tests
    weights.register(ckpt)


def test_good_file_lands_and_verifies(server, payload, tmp_path):
    _register("test_tiny", "tiny.pth", f"{server}/tiny.pth", payload)
    (path,) = fetch(["test_tiny"], FetchOptions(to=str(tmp_path), progress=False))
    assert path == tmp_path / "tiny.pth" and path.read_bytes() == payload
    assert weights.verify("test_tiny", path) == path
    state = weights.read_state_dict(path)
    assert set(state) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    }
    assert _Files.ranges == [None]
    fetch(["test_tiny"], FetchOptions(to=str(tmp_path), progress=False))  # verified: no request
    assert _Files.ranges == [None]


def test_truncated_download_resumes_with_range(server, payload, tmp_path):
    _register("test_tiny", "tiny.pth", f"{server}/tiny.pth", payload)
    _Files.cut = {"tiny.pth"}
    with pytest.raises(MissingWeightsError, match="run the same command again to resume"):
        weights.fetch("test_tiny", tmp_path, progress=False)
    part = tmp_path / "tiny.pth.part"
    assert 0 < part.stat().st_size < len(payload) and not (tmp_path / "tiny.pth").exists()
    path = weights.fetch("test_tiny", tmp_path, progress=False)
    assert path.read_bytes() == payload and not part.exists()
    assert _Files.ranges == [None, f"bytes={len(payload) // 2}-"]


def test_corrupted_download_is_refused_and_removed(server, payload, tmp_path):
    _register("test_bad", "bad.pth", f"{server}/bad.pth", payload)  # sha256 of the good file
    with pytest.raises(CheckpointError, match="does not have the registered sha256"):
        weights.fetch("test_bad", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_source_and_page_sources_are_one_line(tmp_path):
    _register("test_gone", "gone.pth", "http://127.0.0.1:9/gone.pth", b"")
    with pytest.raises(MissingWeightsError, match="cannot download 'gone.pth'"):
        weights.fetch("test_gone", tmp_path, progress=False)
    with pytest.raises(MissingWeightsError, match="no direct download link"):
        weights.fetch("wav2lip", tmp_path, progress=False)
    with pytest.raises(OptionError):
        fetch([])


def test_official_restoration_sources_are_direct_links():
    for name, tail in [
        ("gfpgan_v1.3", "TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth"),
        ("gfpgan_v1.4", "TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth"),
        ("codeformer", "sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth"),
    ]:
        ckpt = weights.get_checkpoint(name)
        assert weights.download_url(ckpt) == f"https://github.com/{tail}"
    assert "NON-COMMERCIAL" in weights.get_checkpoint("codeformer").description


@pytest.fixture(autouse=True)
def _forget_test_entries() -> Iterator[None]:
    yield
    for name in [n for n in weights.CHECKPOINTS.names() if n.startswith("test_")]:
        weights.unregister(name)


def test_fetch_writes_into_the_cache_by_default(server, payload, tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "cache"))
    _register("test_tiny", "tiny.pth", f"{server}/tiny.pth", payload)
    (path,) = fetch(["test_tiny"], FetchOptions(progress=False))
    assert path == Path(tmp_path / "cache" / "tiny.pth")
    assert weights.resolve("test_tiny") == path
