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
