"""RTMP push and MP4 recording of live ticks (avatarlab.serve.outputs), against FFmpeg's
own RTMP listener on loopback: what arrives is decoded and its flashes and beeps timed."""

from __future__ import annotations

import contextlib
import datetime
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from avatarlab.errors import MediaError, OptionError
from avatarlab.serve.outputs import OutputSink, _parse_rtmp, check_target

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")

FPS = 25
RATE = 48_000
SPT = RATE // FPS
SIZE = (128, 96)  # small: the encoder's speed is measured elsewhere, not here
FLASHES = (12, 37, 62, 87)  # ticks with a white frame and a beep starting with it
TICKS = 100  # 4 s


def synthetic_tick(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tick ``n``: a dark frame (white on a flash tick) and silence (a 1 kHz beep of
    two ticks starting at a flash tick)."""
    w, h = SIZE
    frame = np.full((h, w, 3), 255 if n in FLASHES else 16, np.uint8)
    audio = np.zeros(SPT, np.float32)
    for k in FLASHES:
        if n in (k, k + 1):
            t = (np.arange(SPT) + (n - k) * SPT) / RATE
            audio = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return frame, audio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_listening(port: int) -> bool:
    """Whether a server listens on ``port``, or has accepted on it (FFmpeg's ``-listen 1``
    stops listening once it accepts). Read from /proc: a probe connection would use up
    FFmpeg's single accept."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    # state 0A: listening, 01: established (on the server side when the local port is ours)
    return any(int(r[1].split(":")[1], 16) == port and r[3] in ("0A", "01") for r in rows)


@contextlib.contextmanager
def rtmp_listener(port: int, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """FFmpeg receiving one RTMP stream on ``port`` and copying it to ``out`` (FLV)."""
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-listen", "1", "-f", "flv"]
    cmd += ["-i", f"rtmp://127.0.0.1:{port}/live/test", "-c", "copy", "-f", "flv", str(out)]
    log = out.with_suffix(".log")
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(
            lambda: is_listening(port) or proc.poll() is not None,
            10.0,
            "the ffmpeg listener did not start",
        )
        assert proc.poll() is None, f"the ffmpeg listener ended: {log.read_text()}"
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)  # it ends by itself once the stream is closed
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.02)


def onsets(values: np.ndarray, threshold: float, gap: int) -> list[int]:
    """Indices where ``values`` rises above ``threshold`` after ``gap`` quiet entries."""
    loud = np.flatnonzero(values > threshold)
    return [int(i) for j, i in enumerate(loud) if j == 0 or i - loud[j - 1] > gap]


@dataclass(frozen=True)
class Received:
    """What a file holds: codecs, durations (s) and flash/beep onsets (s, file clock)."""

    codecs: tuple[str, str]
    video_s: float
    audio_s: float
    flashes: list[float]
    beeps: list[float]


def analyse(path: Path) -> Received:
    """Decode ``path`` and time its flashes (bright frames) and beeps (loud audio)."""
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        codecs = (str(vs.codec_context.name), str(aus.codec_context.name))
        video = [(float(f.time), float(f.to_ndarray(format="gray").mean())) for f in c.decode(vs)]
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        start = frames[0].time
        assert start is not None
        audio = np.concatenate([f.to_ndarray()[0] for f in frames])
    times = np.array([t for t, _ in video])
    flashes = [times[i] for i in onsets(np.array([m for _, m in video]), 128, 1)]
    beeps = [start + i / RATE for i in onsets(np.abs(audio), 0.1, RATE // 20)]
    return Received(codecs, len(video) / FPS, len(audio) / RATE, flashes, beeps)


def check_media(info: Received, seconds: float, flashes: int) -> None:
    assert info.codecs == ("h264", "aac")
    assert abs(info.video_s - seconds) < 0.2
    assert abs(info.audio_s - seconds) < 0.2
    f, b = np.array(info.flashes), np.array(info.beeps)
    assert len(f) == len(b) == flashes
    assert np.abs(b - f).max() < 0.040  # A/V offset, flash vs beep


def push_all(sink: OutputSink, ticks: range, realtime: bool = False) -> float:
    """Push ``ticks`` (paced at 25/s when ``realtime``); returns the longest push (s)."""
    longest = 0.0
    t0 = time.monotonic()
    for n in ticks:
        if realtime:
            time.sleep(max(0.0, t0 + (n - ticks.start) / FPS - time.monotonic()))
        frame, audio = synthetic_tick(n)
        started = time.perf_counter()
        sink.push(frame, audio)
        longest = max(longest, time.perf_counter() - started)
    return longest


def test_rtmp_push_arrives_in_sync(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "received.flv"
    with rtmp_listener(port, out) as proc:
        sink = OutputSink(f"rtmp://127.0.0.1:{port}/live/test", SIZE, queue_s=TICKS / FPS)
        push_all(sink, range(TICKS))
        sink.close(timeout=10.0)
        stats = sink.stats()
        assert proc.wait(10.0) == 0
    assert stats["state"] == "closed" and stats["last_error"] is None
    assert stats["frames_sent"] == TICKS and stats["frames_dropped"] == 0
    check_media(analyse(out), TICKS / FPS, len(FLASHES))


def test_mp4_recording_is_in_sync_and_atomic(tmp_path: Path) -> None:
    target = tmp_path / "session.mp4"
    sink = OutputSink(target, SIZE, queue_s=TICKS / FPS)
    push_all(sink, range(TICKS))
    assert not target.exists()  # only a temporary file while recording
    sink.close(timeout=10.0)
    assert sink.stats()["state"] == "closed" and sink.stats()["frames_sent"] == TICKS
    assert [p.name for p in tmp_path.iterdir()] == ["session.mp4"]  # no temporary left
    check_media(analyse(target), TICKS / FPS, len(FLASHES))


def test_full_queue_drops_oldest_and_counts(tmp_path: Path) -> None:
    sink = OutputSink(tmp_path / "s.mp4", SIZE, queue_s=1 / FPS)  # room for one tick
    push_all(sink, range(60))
    sink.close(timeout=10.0)
    stats = sink.stats()
    assert stats["frames_dropped"] > 0
    assert stats["frames_sent"] + stats["frames_dropped"] == 60


def test_check_target(tmp_path: Path) -> None:
    assert check_target("rtmp://a.rtmp.youtube.com/live2/KEY") == (
        "rtmp://a.rtmp.youtube.com/live2/KEY"
    )
    assert check_target(str(tmp_path / "a.MP4")) == str(tmp_path / "a.MP4")
    assert not list(tmp_path.iterdir())  # the writability probe is removed
    (tmp_path / "file.txt").write_text("x")
    bad = [
        tmp_path / "missing" / "a.mp4",  # no such folder
        tmp_path / "file.txt" / "a.mp4",  # the "folder" is a file
        Path("/proc/avatarlab-test.mp4"),  # a folder nobody can create files in
        tmp_path / "a.mkv",
        tmp_path,
    ]
    for target in [*map(str, bad), "srt://host:9000", "rtmp://host/onlyapp", "rtmp:///live/k"]:
        with pytest.raises(OptionError):
            check_target(target)


def test_rtmp_url_split_like_ffmpeg() -> None:
    url = _parse_rtmp("rtmps://live.example.com/app/inst/key?a=1")
    assert (url.port, url.app, url.key) == (443, "app/inst", "key?a=1")
    url = _parse_rtmp("rtmp://h:1940/live/test")
    assert (url.port, url.app, url.key, url.tc_url) == (1940, "live", "test", "rtmp://h:1940/live")


def test_push_rejects_wrong_shapes(tmp_path: Path) -> None:
    sink = OutputSink(tmp_path / "s.mp4", SIZE)
    frame, audio = synthetic_tick(0)
    with pytest.raises(MediaError):
        sink.push(frame[:, :-2], audio)
    with pytest.raises(MediaError):
        sink.push(frame, audio[:-1])
    sink.close()
    assert sink.stats()["state"] == "failed"  # nothing was recorded
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_rtmp_reconnects_after_the_server_goes_away(tmp_path: Path) -> None:
    port = free_port()
    first, second = tmp_path / "first.flv", tmp_path / "second.flv"
    sink = OutputSink(f"rtmp://127.0.0.1:{port}/live/test", SIZE)
    n = 0
    longest = 0.0
    with rtmp_listener(port, first) as proc:
        longest = push_all(sink, range(n, n + 30), realtime=True)
        n += 30
        assert sink.stats()["state"] == "live"
        proc.kill()  # the server goes away mid-stream
    with rtmp_listener(port, second) as proc:
        deadline = time.monotonic() + 10.0
        while not (sink.stats()["state"] == "live" and sink.stats()["reconnects"] >= 1):
            assert time.monotonic() < deadline, f"no reconnection: {sink.stats()}"
            longest = max(longest, push_all(sink, range(n, n + 5), realtime=True))
            n += 5
        longest = max(longest, push_all(sink, range(n, n + 25), realtime=True))
        n += 25
        started = time.monotonic()
        sink.close(timeout=5.0)
        assert time.monotonic() - started < 5.5
        assert proc.wait(10.0) == 0
    stats = sink.stats()
    assert stats["reconnects"] >= 1 and stats["state"] == "closed"
    assert stats["frames_dropped"] > 0  # the outage's ticks
    assert stats["frames_sent"] + stats["frames_dropped"] == n
    assert longest < 0.05, f"push blocked for {longest * 1000:.0f} ms"
    with av.open(str(second)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) >= 20


def test_close_returns_in_time_when_the_server_is_unreachable(tmp_path: Path) -> None:
    refused = OutputSink(f"rtmp://127.0.0.1:{free_port()}/live/SECRETKEY", SIZE)
    with socket.socket() as silent:  # accepts TCP but never answers the RTMP handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        hung = OutputSink(f"rtmp://127.0.0.1:{port}/live/test", SIZE)
        frame, audio = synthetic_tick(0)
        for sink in (refused, hung):
            sink.push(frame, audio)
        wait_for(lambda: refused.stats()["connect_failures"] >= 1, 5.0, "no attempt failed")
        stats = refused.stats()
        assert stats["state"] == "connecting" and "refused" in str(stats["last_error"])
        time.sleep(0.2)  # the hung sink now waits inside the handshake
        for sink in (refused, hung):
            started = time.monotonic()
            sink.close(timeout=1.0)
            assert time.monotonic() - started < 1.2
            assert sink.stats()["state"] == "closed"
            assert not sink._thread.is_alive()  # no attempts after close
    failures = refused.stats()["connect_failures"]
    time.sleep(0.6)  # longer than the first backoff
    assert refused.stats()["connect_failures"] == failures
    assert "SECRETKEY" not in str(refused.stats())


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextlib.contextmanager
def tls_proxy(cert: Path, key: Path, upstream: int) -> Iterator[int]:
    """TLS on a free loopback port, relayed in clear to ``upstream`` (one connection)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10.0)
    stop = threading.Event()

    def relay() -> None:
        with contextlib.suppress(OSError):
            raw, _ = server.accept()
            tls = context.wrap_socket(raw, server_side=True)
            plain = socket.create_connection(("127.0.0.1", upstream), timeout=5)
            with tls, plain:
                deadline = time.monotonic() + 20.0
                while not stop.is_set() and time.monotonic() < deadline:
                    ready, _, _ = select.select([tls, plain], [], [], 0.1)
                    for src, dst in ((tls, plain), (plain, tls)):
                        if src in ready or (src is tls and tls.pending()):
                            data = src.recv(65536)
                            if not data:
                                return
                            dst.sendall(data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5.0)
        server.close()


def test_rtmps_push_verifies_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path)
    port, out = free_port(), tmp_path / "received.flv"
    with tls_proxy(cert, key, port) as tls_port:  # fails in the handshake: no upstream
        untrusted = OutputSink(f"rtmps://localhost:{tls_port}/live/test", SIZE, reconnect=False)
        wait_for(lambda: untrusted.stats()["state"] == "failed", 5.0, "the handshake passed")
        untrusted.close(timeout=1.0)
        assert "certificate" in str(untrusted.stats()["last_error"])
    with rtmp_listener(port, out) as proc, tls_proxy(cert, key, port) as tls_port:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the proxy's certificate is trusted
        sink = OutputSink(f"rtmps://localhost:{tls_port}/live/test", SIZE, queue_s=2.0)
        push_all(sink, range(50))
        sink.close(timeout=10.0)
        assert sink.stats()["state"] == "closed", sink.stats()
        assert proc.wait(10.0) == 0
    check_media(analyse(out), 50 / FPS, 2)


@pytest.mark.slow
def test_a_live_session_is_pushed_and_recorded(tmp_path: Path) -> None:
    """The server with --rtmp and --record: a session watched over WebRTC speaks; the
    local FFmpeg listener receives H.264 + AAC and the recording appears when it ends."""
    import asyncio

    from avatarlab.serve import ServeOptions
    from avatarlab.serve.client import AvatarClient
    from tests.serve._serve_fakes import FakeBackend, png_bytes
    from tests.serve.conftest import live_server

    avatar = tmp_path / "face.png"
    avatar.write_bytes(png_bytes(64, 48))
    port = free_port()
    received = tmp_path / "received.flv"
    (tmp_path / "recs").mkdir()
    options = ServeOptions(
        avatars=(avatar,),
        camera=False,
        rtmp=f"rtmp://127.0.0.1:{port}/live/test",
        record=tmp_path / "recs",
    )

    async def session(url: str) -> dict:
        async with AvatarClient(url) as client:
            await client.start()
            await client.wait_frames(10)
            assert (await client.say("Hello there, this goes to the media server.")).is_success
            await asyncio.sleep(3.0)
            return await client.status()

    with rtmp_listener(port, received), live_server(options, FakeBackend()) as url:
        status = asyncio.run(session(url))
        wait_for(lambda: any((tmp_path / "recs").glob("*.mp4")), 10.0, "no recording")
    outputs = {o["target"].split(":")[0]: o for o in status["outputs"]}
    assert outputs["rtmp"]["state"] == "live" and outputs["rtmp"]["frames_sent"] > 50
    assert "test" not in outputs["rtmp"]["target"]  # the stream key stays secret
    recording = next((tmp_path / "recs").glob("*.mp4"))
    assert outputs[recording.name]["frames_sent"] > 50
    for path in (received, recording):
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio[0].codec_context.name == "aac"
            assert float(c.duration or 0) / 1e6 > 2.0
