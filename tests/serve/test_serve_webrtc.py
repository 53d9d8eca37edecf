"""An aiortc client on loopback watches the real warp engine speak."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from avatarlab.face import face_mesh
from avatarlab.face.landmarks68 import mesh_to_68
from avatarlab.metrics.lipsync import mouth_opening
from avatarlab.serve.client import AvatarClient

SENTENCE = "Hello there! How are you doing on this fine day?"


def _opening(frame: np.ndarray) -> float:
    mesh = face_mesh(frame)
    assert mesh is not None, "the received frame shows no face"
    return float(mouth_opening(mesh_to_68(mesh)[None, :, :2])[0])


@pytest.mark.slow
def test_client_receives_speaking_video_and_audio(warp_server: str) -> None:
    async def scenario() -> tuple[AvatarClient, float, float, dict]:
        async with AvatarClient(warp_server, keep_every=2) as client:
            session = await client.start()
            await client.wait_frames(30)
            t_say = time.monotonic()
            response = await client.say(SENTENCE)
            assert response.status_code == 202, response.text
            await asyncio.sleep(1.2)
            # Barge-in: a new sentence interrupts the one being spoken.
            again = await client.say("And now something else.")
            assert again.json()["interrupted"] == response.json()["utterance"]
            await asyncio.sleep(2.3)
            t_end = time.monotonic()
            return client, t_say, t_end, session

    client, t_say, t_end, session = asyncio.run(scenario())
    rec = client.received
    assert session["width"] <= 512 and session["height"] <= 512
    video_t = np.array(rec.video_times)
    fps = (len(video_t) - 1) / (video_t[-1] - video_t[0])
    assert 20 < fps < 30
    # Frames are 25 fps pts-spaced (90 kHz clock / 3600 = one tick).
    steps = np.diff(rec.video_pts)
    assert np.median(steps) == pytest.approx(0.04, abs=1e-6)
    frames = {i: f for i, f in rec.frames}
    assert next(iter(frames.values())).shape == (session["height"], session["width"], 3)
    idle = [f for i, f in frames.items() if video_t[i] < t_say]
    speaking = [f for i, f in frames.items() if t_say + 0.4 < video_t[i] < t_say + 2.5]
    # Idle is alive (blinks, sway), not a frozen picture.
    assert max(np.abs(f.astype(int) - idle[0]).mean() for f in idle) > 0.05
    idle_open = [_opening(f) for f in idle[-8:]]
    speak_open = [_opening(f) for f in speaking]
    assert max(speak_open) > max(idle_open) + 0.03, (idle_open, speak_open)
    assert np.std(speak_open) > 0.01  # the mouth moves, it does not just hang open
    # Audio: 48 kHz, 20 ms frames, silent while idle, speech after say.
    audio_t = np.array(rec.audio_times)
    rms = np.array([np.sqrt(np.mean(a**2)) for a in rec.audio])
    assert rec.audio_rate == 48_000 and len(rec.audio[0]) == 960
    assert rms[audio_t < t_say].max() < 0.003
    assert rms[(audio_t > t_say) & (audio_t < t_say + 2.5)].max() > 0.03
    assert len(rec.audio) / len(rec.video_times) == pytest.approx(2.0, rel=0.1)
