"""The HTTP API with bad and good input (placeholder backend: no engine, no WebRTC)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from avatarlab.serve import ServeOptions, create_app
from tests.serve._serve_fakes import FakeBackend, png_bytes, wav_bytes

AUDIO_LIMIT = 200_000
BASE = "http://127.0.0.1:8010"


def _options(tmp_path: Path, **kw: object) -> ServeOptions:
    portrait = tmp_path / "portrait.png"
    portrait.write_bytes(png_bytes())
    defaults: dict[str, object] = {
        "avatars": (portrait,),
        "max_audio_bytes": AUDIO_LIMIT,
        "max_avatar_bytes": AUDIO_LIMIT,
        "max_sessions": 3,
    }
    defaults.update(kw)
    return ServeOptions(**defaults)  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_options(tmp_path), backend=FakeBackend()), base_url=BASE) as c:
        yield c


def _session(client: TestClient) -> str:
    r = client.post("/sessions", json={})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_page_health_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<video" in page.text
    for name in ("app.js", "style.css"):
        static = client.get(f"/static/{name}")
        assert static.status_code == 200
        # Offline: the page loads nothing from other hosts.
        assert "http://" not in static.text and "https://" not in static.text
    assert "http://" not in page.text and "https://" not in page.text
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["engine"] == "fake" and health["ready"]
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/sessions",
        "/sessions/{session_id}/say",
        "/sessions/{session_id}/offer",
        "/health",
    ):
        assert path in paths
    assert set(paths["/sessions/{session_id}/say"]["post"]["requestBody"]["content"]) >= {
        "application/json",
        "multipart/form-data",
        "text/plain",
    }


def test_session_lifecycle_and_unknown_ids(client: TestClient) -> None:
    sid = _session(client)
    status = client.get(f"/sessions/{sid}").json()
    assert (status["width"], status["height"], status["fps"]) == (64, 48, 25)
    assert client.post("/sessions/nope/say", json={"text": "hi"}).status_code == 404
    assert client.post("/sessions", json={"avatar": "nobody"}).status_code == 404
    assert client.delete(f"/sessions/{sid}").status_code == 204
    r = client.post(f"/sessions/{sid}/say", json={"text": "hello"})
    assert r.status_code == 404 and "create a new one" in r.json()["detail"]


def test_say_text_forms(client: TestClient) -> None:
    sid = _session(client)
    first = client.post(f"/sessions/{sid}/say", json={"text": "Hello there. How are you?"})
    assert first.status_code == 202 and first.json()["sentences"] == 2
    plain = client.post(
        f"/sessions/{sid}/say", content=b"Plain words", headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 202 and plain.json()["utterance"] == first.json()["utterance"] + 1
    form = client.post(f"/sessions/{sid}/say", data={"text": "From a form"})
    assert form.status_code == 202
    multipart = client.post(f"/sessions/{sid}/say", files={"text": (None, "From multipart")})
    assert multipart.status_code == 202
    sid = _session(client)  # a fresh rate-limit budget
    voice = client.post(f"/sessions/{sid}/say", json={"text": "Hi", "voice": "xx-none"})
    assert voice.status_code == 422 and "voice" in voice.json()["detail"]
    odd = client.post(f"/sessions/{sid}/say", json={"text": "Hi", "voice": "../../x"})
    assert odd.status_code == 422
    stop = client.post(f"/sessions/{sid}/stop")
    assert stop.status_code == 204


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ("x" * 10_000, None, 422, "at most 2000"),
        ("   ", None, 422, "empty"),
        (b'{"text": "caf\xe9"}', {"content-type": "application/json"}, 400, "UTF-8"),
        (b"caf\xe9 \xff", {"content-type": "text/plain"}, 400, "UTF-8"),
        (b"text=caf%E9", {"content-type": "application/x-www-form-urlencoded"}, 400, "UTF-8"),
        (b'{"text": ', {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'["a list"]', {"content-type": "application/json"}, 422, "JSON object"),
        (b'{"text": 5}', {"content-type": "application/json"}, 422, "text"),
        (b"<say>hi</say>", {"content-type": "application/xml"}, 415, "Content-Type"),
        (b"hi", {}, 415, "Content-Type"),
    ],
)
def test_say_rejects_bad_text(
    client: TestClient, body: str | bytes, headers: dict[str, str] | None, status: int, words: str
) -> None:
    sid = _session(client)
    if isinstance(body, str):
        r = client.post(f"/sessions/{sid}/say", json={"text": body})
    else:
        r = client.post(
            f"/sessions/{sid}/say", content=body, headers=headers or {"content-type": ""}
        )
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_non_utf8_form_field_is_rejected(client: TestClient) -> None:
    sid = _session(client)
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'.encode()
        + b"caf\xe9\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    r = client.post(
        f"/sessions/{sid}/say",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and "form field 'text' is not valid UTF-8" in r.json()["detail"]


def test_audio_uploads(client: TestClient, tmp_path: Path) -> None:
    sid = _session(client)
    ok = client.post(
        f"/sessions/{sid}/say", files={"audio": ("hello.wav", wav_bytes(1.5), "audio/wav")}
    )
    assert ok.status_code == 202, ok.text
    assert ok.json()["seconds"] == pytest.approx(1.5, abs=0.01)
    raw = client.post(
        f"/sessions/{sid}/say", content=wav_bytes(0.5), headers={"content-type": "audio/wav"}
    )
    assert raw.status_code == 202
    # Declared audio, but the bytes are a text file: 415 without touching a decoder.
    fake = client.post(
        f"/sessions/{sid}/say", files={"audio": ("x.wav", b"#!/bin/sh\necho hi\n" * 4, "audio/wav")}
    )
    assert fake.status_code == 415 and ".wav" in fake.json()["detail"]
    # A WAV file declared as an image.
    wrong = client.post(
        f"/sessions/{sid}/say", files={"audio": ("x.png", wav_bytes(0.2), "image/png")}
    )
    assert wrong.status_code == 415
    # WAV magic but a broken body: decoding fails cleanly.
    broken = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40
    bad = client.post(f"/sessions/{sid}/say", files={"audio": ("b.wav", broken, "audio/wav")})
    assert bad.status_code == 422 and "decode" in bad.json()["detail"]
    both = client.post(
        f"/sessions/{sid}/say",
        data={"text": "hi"},
        files={"audio": ("a.wav", wav_bytes(0.2), "audio/wav")},
    )
    assert both.status_code == 422 and "not both" in both.json()["detail"]


def test_oversized_uploads_are_413(client: TestClient) -> None:
    sid = _session(client)
    big = wav_bytes(AUDIO_LIMIT / 32_000 + 1.0)  # 16 kHz 16-bit: 32 kB a second
    assert len(big) > AUDIO_LIMIT
    r = client.post(f"/sessions/{sid}/say", files={"audio": ("big.wav", big, "audio/wav")})
    assert r.status_code == 413 and "MB" in r.json()["detail"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = client.post(
        f"/sessions/{sid}/say", content=chunked(), headers={"content-type": "audio/wav"}
    )
    assert r.status_code == 413
    huge = b"x" * (2 * AUDIO_LIMIT)
    r = client.post(
        f"/sessions/{sid}/offer", content=huge, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert client.get("/health").status_code == 200


def test_audio_too_long(tmp_path: Path) -> None:
    app = create_app(_options(tmp_path, max_audio_s=1.0), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        sid = _session(c)
        r = c.post(f"/sessions/{sid}/say", files={"audio": ("l.wav", wav_bytes(2.0), "audio/wav")})
        assert r.status_code == 422 and "at most 1 s" in r.json()["detail"]


def test_say_storm_is_rate_limited(client: TestClient) -> None:
    sid = _session(client)
    other = _session(client)
    started = time.monotonic()
    codes = [
        client.post(f"/sessions/{sid}/say", json={"text": f"word {i}"}).status_code
        for i in range(200)
    ]
    elapsed = time.monotonic() - started
    assert set(codes) <= {202, 429}
    accepted = codes.count(202)
    # burst 5, then 2 per second: never more than the bucket allows.
    assert 5 <= accepted <= 5 + 2 * elapsed + 1
    limited = client.post(f"/sessions/{sid}/say", json={"text": "again"})
    if limited.status_code == 429:
        assert int(limited.headers["retry-after"]) >= 1
        assert "retry in" in limited.json()["detail"]
    # The other session and the server are unaffected.
    assert client.post(f"/sessions/{other}/say", json={"text": "still here"}).status_code == 202
    assert client.get("/health").json()["sessions"] == 2


def test_malformed_offer_keeps_session_usable(client: TestClient) -> None:
    sid = _session(client)
    r = client.post(
        f"/sessions/{sid}/offer", json={"sdp": "v=0\r\nthis is not sdp", "type": "offer"}
    )
    assert r.status_code == 400 and "SDP" in r.json()["detail"]
    assert client.post(f"/sessions/{sid}/offer", json={"type": "offer"}).status_code == 422
    assert client.post(f"/sessions/{sid}/say", json={"text": "fine"}).status_code == 202


def test_session_limit(client: TestClient) -> None:
    ids = [_session(client) for _ in range(3)]
    r = client.post("/sessions", json={})
    assert r.status_code == 503 and "3 sessions" in r.json()["detail"]
    client.delete(f"/sessions/{ids[0]}")
    assert client.post("/sessions", json={}).status_code == 201


def test_silent_sessions_time_out(tmp_path: Path) -> None:
    app = create_app(_options(tmp_path, session_timeout_s=0.3), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        sid = _session(c)
        keep = _session(c)
        deadline = time.monotonic() + 3.0
        while c.get(f"/sessions/{sid}").status_code == 200 and time.monotonic() < deadline:
            c.post(f"/sessions/{keep}/say", json={"text": "still talking"})
            time.sleep(0.1)
        assert c.get(f"/sessions/{sid}").status_code == 404
        assert c.get(f"/sessions/{keep}").status_code == 200


def test_events_socket_and_page_close(client: TestClient) -> None:
    sid = _session(client)
    with client.websocket_connect(f"ws://127.0.0.1:8010/sessions/{sid}/events") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "status" and hello["id"] == sid
        client.post(f"/sessions/{sid}/say", json={"text": "Hi."})
        assert ws.receive_json() == {"type": "queued", "utterance": 1, "sentences": 1}
        ws.send_text(json.dumps({"type": "ping"}))
        assert ws.receive_json() == {"type": "pong"}
        ws.send_text("not json at all")  # ignored, not fatal
        ws.send_text(json.dumps({"type": "ping"}))
        assert ws.receive_json() == {"type": "pong"}
    # Closing the page's socket ends its session.
    deadline = time.monotonic() + 3.0
    while client.get(f"/sessions/{sid}").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get(f"/sessions/{sid}").status_code == 404


def test_token_host_and_origin_guards(tmp_path: Path) -> None:
    token = "s3cret-token"
    app = create_app(_options(tmp_path, token=token), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/").status_code == 200 and c.get("/health").status_code == 200
        r = c.post("/sessions", json={})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert (
            c.post("/sessions", json={}, headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        auth = {"Authorization": f"Bearer {token}"}
        r = c.post("/sessions", json={}, headers=auth)
        assert r.status_code == 201
        sid = r.json()["id"]
        with (
            pytest.raises(WebSocketDisconnect),
            c.websocket_connect(f"ws://127.0.0.1:8010/sessions/{sid}/events") as ws,
        ):
            ws.receive_json()
        with c.websocket_connect(f"ws://127.0.0.1:8010/sessions/{sid}/events?token={token}") as ws:
            assert ws.receive_json()["type"] == "status"
        # DNS rebinding: a foreign Host header is refused.
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 400
        # CSRF: another site's page cannot post here.
        r = c.post("/sessions", json={}, headers={**auth, "origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/sessions", json={}, headers={**auth, "origin": "http://127.0.0.1:8010"})
        assert r.status_code == 201


def test_non_ascii_tokens_are_refused_not_crashed(tmp_path: Path) -> None:
    """A wrong non-ASCII token is a 401 / policy close (not a 500); a non-ASCII one works."""
    from urllib.parse import quote

    token = "sécret-tökén"
    app = create_app(_options(tmp_path, token=token), backend=FakeBackend())
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        for wrong in ("wrông", "sécret-tökén!", "é"):
            headers = {"Authorization": f"Bearer {wrong}".encode()}
            r = c.post("/sessions", json={}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = c.post("/sessions", json={}, headers={"Authorization": f"Bearer {token}".encode()})
        assert r.status_code == 201
        sid = r.json()["id"]
        url = f"ws://127.0.0.1:8010/sessions/{sid}/events?token="
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            c.websocket_connect(url + quote("wrông")) as ws,
        ):
            ws.receive_json()
        assert closed.value.code == 1008
        with c.websocket_connect(url + quote(token)) as ws:
            assert ws.receive_json()["type"] == "status"


def test_avatar_upload(client: TestClient) -> None:
    r = client.post(
        "/avatars", files={"file": ("../../etc/passwd.png", png_bytes(16, 16), "image/png")}
    )
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["name"] == "passwd.png" and info["kind"] == "image" and info["ready"]
    catalog = client.app.state.catalog  # type: ignore[attr-defined]
    stored = catalog.get(info["id"]).path
    assert stored.parent.name.startswith("avatarlab-serve-")
    assert "passwd" not in stored.name and oct(stored.parent.stat().st_mode & 0o777) == "0o700"
    assert info["id"] in [a["id"] for a in client.get("/avatars").json()]
    r = client.post("/sessions", json={"avatar": info["id"]})
    assert r.status_code == 201
    noface = client.post(
        "/avatars", files={"file": ("blank.png", png_bytes(marker=b"NOFACE"), "image/png")}
    )
    assert noface.status_code == 422 and "no face" in noface.json()["detail"]
    text = client.post(
        "/avatars", files={"file": ("a.png", b"hello world, not an image", "image/png")}
    )
    assert text.status_code == 415
    wrong = client.post("/avatars", content=b"{}", headers={"content-type": "application/json"})
    assert wrong.status_code == 415


def test_long_avatar_video_is_refused(tmp_path: Path) -> None:
    import av

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(50):  # 2 s
            frame = np.full((64, 64, 3), i * 4, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    app = create_app(_options(tmp_path, max_avatar_s=1.0), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        data = video.read_bytes()
        r = c.post("/avatars", files={"file": ("clip.mp4", data, "video/mp4")})
        assert r.status_code == 422 and "at most 1 s" in r.json()["detail"]
        assert len(list(c.app.state.catalog.list())) == 1  # type: ignore[attr-defined]


def test_default_avatar_without_face(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(marker=b"NOFACE"))
    app = create_app(_options(tmp_path, avatars=(blank,)), backend=FakeBackend())
    with TestClient(app, base_url=BASE) as c:
        deadline = time.monotonic() + 3.0
        while not c.get("/health").json()["ready"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.get("/health").json()["ready"]
        r = c.post("/sessions", json={})
        assert r.status_code == 422 and "no face" in r.json()["detail"]
