"""End to end in headless Chromium: the page connects, speaks a sentence, plays video and audio.

Uses the Debian ``chromium`` package (installed here with apt-get when missing and we
are root; otherwise skipped with the reason) driven by Playwright's Python package
with ``executable_path`` (never ``playwright install``). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from avatarlab.face import face_mesh
from avatarlab.face.landmarks68 import mesh_to_68
from avatarlab.metrics.lipsync import mouth_opening

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    # Real host candidates instead of mDNS names (resolving those would use multicast).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
SENTENCE = "Good morning! I am the avatar, and I can talk to you."

# JavaScript helpers evaluated in the page.
COUNT_FRAMES = """() => {
  const v = document.getElementById('avatar');
  window.__frames = [];
  const tick = (now, meta) => { window.__frames.push(meta.presentedFrames); v.requestVideoFrameCallback(tick); };
  v.requestVideoFrameCallback(tick);
}"""
SNAPSHOT = """() => {
  const v = document.getElementById('avatar');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  return c.toDataURL('image/png');
}"""
INBOUND = """async () => {
  const stats = await window.avatarApp.pc.getStats();
  const out = {};
  stats.forEach((r) => { if (r.type === 'inbound-rtp') out[r.kind] = r; });
  return out;
}"""


def _chromium() -> str:
    if not Path(CHROMIUM).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], env=env, timeout=900, check=False
        )
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def _opening(data_url: str) -> float:
    from PIL import Image

    png = base64.b64decode(data_url.split(",", 1)[1])
    frame = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    mesh = face_mesh(frame)
    assert mesh is not None, "no face in the video element's frame"
    return float(mouth_opening(mesh_to_68(mesh)[None, :, :2])[0])


@pytest.mark.slow
def test_page_plays_a_speaking_avatar(
    warp_server: str, artifacts_dir: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, args=FLAGS, headless=True
        )
        try:
            page = context.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            page.goto(f"{warp_server}/")
            page.wait_for_function("document.getElementById('avatar-select').options.length > 0")
            page.click("#start")
            page.wait_for_function(
                "document.getElementById('avatar').videoWidth > 0", timeout=20_000
            )
            session = page.evaluate("window.avatarApp.session")
            size = page.evaluate("[avatar.videoWidth, avatar.videoHeight]")
            assert size == [session["width"], session["height"]]
            page.evaluate(COUNT_FRAMES)
            time.sleep(1.0)
            idle = [_opening(page.evaluate(SNAPSHOT)) for _ in range(4)]
            before = page.evaluate(INBOUND)
            page.fill("#text", SENTENCE)
            page.click("#say")
            page.wait_for_function(
                "window.avatarApp.events.some((e) => e.type === 'speech_start')", timeout=10_000
            )
            started = time.monotonic()
            speaking = []
            while time.monotonic() - started < 2.5:
                speaking.append(_opening(page.evaluate(SNAPSHOT)))
                time.sleep(0.1)
            page.screenshot(path=str(artifacts_dir / "serve_browser.png"))
            after = page.evaluate(INBOUND)
            frames = page.evaluate("window.__frames")
            playing = page.evaluate("!avatar.paused && avatar.readyState >= 2")
        finally:
            context.close()
    assert not failed, failed
    assert playing
    # The video element presents frames steadily (about 25 a second over ~4.5 s).
    assert len(frames) > 60 and frames[-1] > frames[0]
    # The mouth is closed while idle and moves while speaking.
    assert max(idle) < 0.03, idle
    assert max(speaking) > max(idle) + 0.03, (idle, speaking)
    assert np.std(speaking) > 0.01, speaking
    # An audio track arrives, and it carries sound once the avatar speaks.
    audio0, audio1 = before["audio"], after["audio"]
    assert audio1["packetsReceived"] > audio0["packetsReceived"] > 0
    assert audio1["totalSamplesReceived"] - audio0["totalSamplesReceived"] > 48_000
    assert audio1["totalAudioEnergy"] - audio0["totalAudioEnergy"] > 10 * max(
        audio0["totalAudioEnergy"], 1e-4
    )
    assert after["video"]["framesDecoded"] > 60
    assert (artifacts_dir / "serve_browser.png").stat().st_size > 10_000


def _write_y4m(clip: Path, out: Path) -> int:
    """``clip`` as a raw Y4M file (4:2:0), what Chromium's fake camera reads; returns frames."""
    import cv2

    from avatarlab.media import iter_frames

    count = 0
    with out.open("wb") as f:
        for frame, _ in iter_frames(clip):
            h, w = frame.shape[:2]
            if count == 0:
                f.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode())
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
            count += 1
    return count


@pytest.mark.slow
def test_page_drives_the_avatar_with_a_fake_camera(
    warp_server: str, artifacts_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Chromium's fake camera plays ``expressions_silent.mp4``; "Drive with my camera"
    makes the page's video follow it (frames that differ over time), then stops."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = _chromium()
    y4m = tmp_path / "camera.y4m"
    assert _write_y4m(data_dir / "video" / "expressions_silent.mp4", y4m) == 78
    flags = [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, args=flags, headless=True
        )
        try:
            page = context.new_page()
            failed: list[str] = []
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            page.goto(f"{warp_server}/")
            page.wait_for_function("!document.getElementById('camera-controls').hidden")
            page.wait_for_function("document.getElementById('avatar-select').options.length > 0")
            page.click("#start")
            page.wait_for_function(
                "document.getElementById('avatar').videoWidth > 0", timeout=20_000
            )
            page.wait_for_function("!document.getElementById('camera').disabled")
            page.click("#camera")
            # The first switch analyses the portrait for the reenact engine (seconds).
            page.wait_for_function(
                "window.avatarApp.events.some((e) => e.type === 'status' && e.drive === 'camera'"
                " && e.camera.state === 'live')",
                timeout=90_000,
            )
            page.evaluate(COUNT_FRAMES)
            started = time.monotonic()
            shots = []
            while time.monotonic() - started < 4.0 and len(shots) < 40:
                shots.append(page.evaluate(SNAPSHOT))
                time.sleep(0.15)
            elapsed = time.monotonic() - started
            frames = page.evaluate("window.__frames")
            page.screenshot(path=str(artifacts_dir / "serve_camera.png"))
            status = page.evaluate(
                "window.avatarApp.events.filter((e) => e.type === 'status' && e.drive === 'camera')"
                ".pop()"
            )
            label = page.text_content("#camera")
            page.click("#camera")
            page.wait_for_function(
                "window.avatarApp.events.some((e) => e.type === 'drive' && e.mode === 'speech')",
                timeout=10_000,
            )
            back = page.text_content("#camera")
            say_enabled = page.evaluate("!document.getElementById('say').disabled")
        finally:
            context.close()
    assert not failed, failed
    assert label == "Stop camera" and back == "Drive with my camera" and say_enabled
    openings = [_opening(s) for s in shots]
    images = [_image(s).astype(np.int16) for s in shots]
    changes = [float(np.abs(b - a).mean()) for a, b in zip(images, images[1:], strict=False)]
    fps = (frames[-1] - frames[0]) / elapsed if len(frames) > 1 else 0.0
    camera = status["camera"]
    print(
        f"\nbrowser camera driving: {len(shots)} snapshots, mouth opening "
        f"{min(openings):.3f}..{max(openings):.3f}, video element {fps:.1f} fps presented; "
        f"server: latency p50 {camera['latency_ms_p50']} ms, p90 {camera['latency_ms_p90']} ms, "
        f"render {camera['render_ms']} ms, {camera['frames_rendered']} frames rendered, "
        f"{camera['frames_dropped']} of {camera['frames_received']} camera frames dropped"
    )
    # The page's video follows the camera: the frames change over time and the mouth
    # opens and closes with the clip's.
    assert sum(c > 0.5 for c in changes) >= len(changes) // 3, changes
    assert max(openings) - min(openings) > 0.03, openings
    assert camera["frames_rendered"] > 10 and camera["latency_ms_p50"] is not None
    assert (artifacts_dir / "serve_camera.png").stat().st_size > 10_000


def _image(data_url: str) -> np.ndarray:
    from PIL import Image

    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _write_mic_wav(data_dir: Path, out: Path) -> None:
    """Speech as Chromium's fake microphone plays it (looped): 0.5 s of silence, 3 s of
    English speech, 1 s of silence, 48 kHz mono 16-bit."""
    import wave

    from avatarlab.media import read_audio

    rate = 48_000
    speech = read_audio(data_dir / "audio" / "english_radio_8s.wav", sample_rate=rate)
    clip = np.concatenate(
        [np.zeros(rate // 2, np.float32), speech[: 3 * rate], np.zeros(rate, np.float32)]
    )
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(clip, -1, 1) * 32767).astype(np.int16).tobytes())


@pytest.mark.slow
def test_page_listens_echoes_chats_and_is_interrupted(
    artifacts_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    """Chromium's fake microphone plays English speech in a loop. Echo mode: the page shows
    what was heard and the avatar says it; the looped speech then interrupts the avatar
    (barge-in by voice). Chat mode: the fake model's reply is shown and spoken."""
    from avatarlab.serve import ServeOptions
    from tests.serve._fake_llm import running_fake_llm
    from tests.serve._serve_fakes import FakeBackend
    from tests.serve.conftest import live_server

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = _chromium()
    wav = tmp_path / "mic.wav"
    _write_mic_wav(data_dir, wav)
    flags = [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    reply = "That is a good question. Let me think about it for a moment."
    portrait = data_dir / "image" / "painting.jpg"
    with running_fake_llm(reply=reply) as llm:
        options = ServeOptions(avatars=(portrait,), camera=False, llm=llm.base())
        with live_server(options, FakeBackend()) as url, sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=executable, args=flags, headless=True
            )
            try:
                page = context.new_page()
                failed: list[str] = []
                page.on(
                    "response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}")
                )
                page.goto(f"{url}/")
                page.wait_for_function("document.getElementById('voice').options.length > 10")
                page.wait_for_function("document.getElementById('avatar').poster !== ''")
                page.select_option("#listen", "echo")
                page.click("#start")
                page.wait_for_function(
                    "window.avatarApp.events.some((e) => e.type === 'heard' && e.text)",
                    timeout=30_000,
                )
                page.wait_for_function(
                    "window.avatarApp.events.some((e) => e.type === 'speech_start')",
                    timeout=10_000,
                )
                page.wait_for_function(
                    "window.avatarApp.events.some((e) => e.type === 'barge_in')", timeout=20_000
                )
                heard = page.evaluate("window.avatarApp.heard.slice()")
                page.select_option("#listen", "chat")
                page.wait_for_function(
                    f"window.avatarApp.replies.includes({reply.split('. ')[0] + '.'!r})",
                    timeout=30_000,
                )
                page.screenshot(path=str(artifacts_dir / "serve_talk.png"))
                events = page.evaluate("window.avatarApp.events")
            finally:
                context.close()
    assert not failed, failed
    assert heard and len(heard[0].split()) >= 3, heard
    replies = [e["text"] for e in events if e["type"] == "reply"]
    assert replies[:2] == ["That is a good question.", "Let me think about it for a moment."]
    latencies = [e["seconds"] for e in events if e["type"] == "reply_latency"]
    print(f"\nbrowser talk: heard {heard[0]!r}; reply latency (server clock) {latencies}")
    assert latencies and min(latencies) <= 1.0, latencies
    assert llm.requests and llm.requests[-1].messages[-1]["role"] == "user"


@pytest.mark.slow
def test_page_explains_a_blocked_microphone(tmp_path: Path, data_dir: Path) -> None:
    from avatarlab.serve import ServeOptions
    from tests.serve._serve_fakes import FakeBackend
    from tests.serve.conftest import live_server

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = _chromium()
    options = ServeOptions(avatars=(data_dir / "image" / "painting.jpg",), camera=False)
    deny = (
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    with live_server(options, FakeBackend()) as url, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, args=FLAGS, headless=True
        )
        try:
            page = context.new_page()
            page.add_init_script(deny)
            page.goto(f"{url}/")
            page.wait_for_function("document.getElementById('avatar-select').options.length > 0")
            page.click("#start")
            page.wait_for_function("!document.getElementById('say').disabled", timeout=20_000)
            page.select_option("#listen", "echo")
            page.wait_for_function(
                "document.getElementById('log').textContent.includes('microphone is blocked')",
                timeout=10_000,
            )
            mode = page.evaluate("document.getElementById('listen').value")
            sid = page.evaluate("window.avatarApp.session.id")
            status = page.evaluate(f"fetch('/sessions/{sid}').then((r) => r.json())")
        finally:
            context.close()
    assert mode == "off" and status["listen"]["mode"] == "off"
