"""Hostile and malformed input to the server: bounded memory, no stalls, clean messages."""

from __future__ import annotations

import logging
import socket
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import avatarlab.media
from avatarlab.serve import ServeOptions, create_app
from tests.media._media_helpers import huge_png, long_opus
from tests.serve._serve_fakes import FakeBackend, png_bytes, wav_bytes
from tests.serve.conftest import live_server

BASE = "http://127.0.0.1:8010"
PRIVATE = "avatarlab-serve-"  # the server's upload folder name prefix: never in a message


def _options(tmp_path: Path, **kw: Any) -> ServeOptions:
    portrait = tmp_path / "portrait.png"
    portrait.write_bytes(png_bytes())
    return ServeOptions(avatars=(portrait,), max_sessions=3, **kw)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_options(tmp_path), backend=FakeBackend()), base_url=BASE) as c:
        yield c


def _session(client: TestClient) -> str:
    r = client.post("/sessions", json={})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


class PeakRss:
    """Samples this process's resident size every 5 ms while the block runs."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.start


def _timed_say(client: TestClient, sid: str, **kw: Any) -> tuple[int, float]:
    start = time.perf_counter()
    r = client.post(f"/sessions/{sid}/say", **kw)
    return r.status_code, time.perf_counter() - start


@pytest.mark.parametrize(
    ("name", "fmt", "stated", "message"),
    [
        ("speech.ogg", "ogg", True, "speech.ogg is 3600.0 s long; at most 120 s"),  # header
        ("live.webm", "webm", False, "live.webm is longer than 120 s"),  # no header: cut off
    ],
)
def test_hour_long_opus_upload_is_refused_with_bounded_memory(
    client: TestClient, tmp_path: Path, name: str, fmt: str, stated: bool, message: str
) -> None:
    upload = long_opus(tmp_path / name, 3600, fmt=fmt, stated=stated).read_bytes()
    assert len(upload) < 4_000_000  # 2.9-3.7 MB: under the 10 MiB upload limit
    hostile, other = _session(client), _session(client)
    assert _timed_say(client, other, json={"text": "Warm up."})[0] == 202
    kind = "audio/ogg" if fmt == "ogg" else "audio/webm"
    with PeakRss() as rss, ThreadPoolExecutor(1) as pool:
        sent = pool.submit(
            client.post, f"/sessions/{hostile}/say", files={"audio": (name, upload, kind)}
        )
        others = [_timed_say(client, other, json={"text": "Still here."}) for _ in range(3)]
        r = sent.result(30)
    assert r.status_code == 422, r.text
    assert rss.growth < 200, f"RSS grew {rss.growth:.0f} MB"  # 690 MB decoded whole
    assert all(code == 202 and seconds < 1.0 for code, seconds in others), others
    detail = r.json()["detail"]
    assert message in detail and "\n" not in detail and PRIVATE not in detail


def test_slow_decode_of_one_session_does_not_delay_another(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads decode per session: one stuck decode leaves other sessions' say unaffected."""
    read_audio = avatarlab.media.read_audio
    entered, release = threading.Event(), threading.Event()

    def slow_for_long_files(path: Path, *args: Any, **kw: Any) -> Any:
        with wave.open(str(path)) as w:
            if w.getnframes() > 2 * w.getframerate():  # the hostile session's 3 s upload
                entered.set()
                release.wait(10)
        return read_audio(path, *args, **kw)

    monkeypatch.setattr(avatarlab.media, "read_audio", slow_for_long_files)
    hostile, other = _session(client), _session(client)
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(
            client.post,
            f"/sessions/{hostile}/say",
            files={"audio": ("long.wav", wav_bytes(3.0), "audio/wav")},
        )
        try:
            assert entered.wait(10)
            audio = _timed_say(
                client, other, files={"audio": ("short.wav", wav_bytes(0.5), "audio/wav")}
            )
            text = _timed_say(client, other, json={"text": "Hello."})
        finally:
            release.set()
        assert stuck.result(10).status_code == 202
    assert audio[0] == 202 and audio[1] < 1.0, audio
    assert text[0] == 202 and text[1] < 1.0, text


@pytest.mark.parametrize(
    ("size", "shown"), [(16_000, "256 megapixels"), (12_000, "12000x12000 (144 megapixels)")]
)
def test_huge_png_avatar_is_refused_before_decoding(
    client: TestClient, tmp_path: Path, size: int, shown: str
) -> None:
    data = huge_png(tmp_path / "x.png", size, size).read_bytes()
    with PeakRss() as rss:
        r = client.post("/avatars", files={"file": ("big.png", data, "image/png")})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("cannot use big.png: big.png: the image is")
    assert shown in detail and "at most 50 megapixels" in detail and PRIVATE not in detail
    assert rss.growth < 100, f"RSS grew {rss.growth:.0f} MB"
    assert [a["name"] for a in client.get("/avatars").json()] == ["portrait.png"]


def test_messages_name_uploads_by_their_client_file_name(client: TestClient) -> None:
    sid = _session(client)
    junk = b"OggS" + b"\x00" * 60 + b"not really audio" * 20
    r = client.post(f"/sessions/{sid}/say", files={"audio": ("voice.ogg", junk, "audio/ogg")})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("cannot decode the audio upload: cannot open voice.ogg:")
    assert PRIVATE not in detail and "Errno" not in detail and "/" not in detail
    raw = client.post(f"/sessions/{sid}/say", content=junk, headers={"content-type": "audio/ogg"})
    assert raw.status_code == 422
    assert "cannot open the audio upload:" in raw.json()["detail"]
    noface = client.post(
        "/avatars", files={"file": ("me.png", png_bytes(marker=b"NOFACE"), "image/png")}
    )
    assert noface.status_code == 422
    assert noface.json()["detail"] == (
        "cannot use me.png: no face found in me.png: use a picture with a face"
    )


def test_openapi_schema_needs_the_token(tmp_path: Path) -> None:
    token = "s3cret-token-1234"
    app = create_app(_options(tmp_path, token=token), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/openapi.json")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "/sessions/{session_id}/say" in r.json()["paths"]
        assert "/openapi.json" not in r.json()["paths"]
        for page in ("/docs", "/redoc"):  # not served at all (they load scripts from a CDN)
            assert c.get(page, headers={"Authorization": f"Bearer {token}"}).status_code == 404


@pytest.mark.parametrize("body", [b'{"avatar": ', b"{avatar: 1}", b"\x00"])
def test_malformed_json_on_sessions_is_400(client: TestClient, body: bytes) -> None:
    r = client.post("/sessions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail.startswith("request body is not valid JSON") and "\n" not in detail
    wrong_type = client.post("/sessions", json={"avatar": 5})
    assert wrong_type.status_code == 422 and "avatar" in wrong_type.json()["detail"]


@pytest.mark.parametrize("text", ["!!!", "... ?", "\u2014 \u00bf?", "()[]{}", "***"])
def test_text_without_words_is_422(client: TestClient, text: str) -> None:
    sid = _session(client)
    for kw in ({"json": {"text": text}}, {"data": {"text": text}}):
        r = client.post(f"/sessions/{sid}/say", **kw)  # type: ignore[arg-type]
        assert r.status_code == 422 and "no words" in r.json()["detail"]
    r = client.post(f"/sessions/{sid}/say", json={"text": f"Hello. {text} Bye."})
    assert r.status_code == 202 and r.json()["sentences"] == 2  # the wordless piece is dropped


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_client_that_hangs_up_mid_upload_logs_one_line(tmp_path: Path) -> None:
    with live_server(_options(tmp_path), FakeBackend()) as url:
        sid = httpx.post(f"{url}/sessions", json={}).json()["id"]
        records = _Records()
        loggers = [logging.getLogger(n) for n in ("uvicorn.error", "avatarlab.serve")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.addHandler(records)
            lg.setLevel(logging.INFO)
        try:
            host, port = url.removeprefix("http://").split(":")
            for _ in range(3):
                with socket.create_connection((host, int(port))) as sock:
                    sock.sendall(
                        f"POST /sessions/{sid}/say HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        "Content-Type: audio/wav\r\nContent-Length: 500000\r\n\r\n".encode()
                        + wav_bytes(1.0)[:20_000]
                    )
                    time.sleep(0.2)
            deadline = time.monotonic() + 5
            while len(records.records) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # anything logged late would show up now
            assert httpx.get(f"{url}/health").status_code == 200
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(records)
                lg.setLevel(level)
    lines = [r.getMessage() for r in records.records]
    assert lines == [f"client disconnected during POST /sessions/{sid}/say"] * 3, lines
    assert not any(r.exc_info for r in records.records)


def test_body_cut_off_by_the_limit_is_413_not_a_hang_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = _options(tmp_path, max_audio_bytes=100_000, max_avatar_bytes=100_000)
    app = create_app(options, backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        sid = _session(c)

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for _ in range(40):
                yield b" " * 10_000

        with caplog.at_level(logging.INFO, logger="avatarlab.serve"):
            r = c.post(
                f"/sessions/{sid}/offer",
                content=chunked(),
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 413 and "at most 0.2 MB" in r.json()["detail"]
        assert not [rec for rec in caplog.records if "disconnected" in rec.getMessage()]
