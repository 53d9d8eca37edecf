"""Speech queue, sentence splitting, rate limiting, engine pairing and real-time playout."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from avatarlab.serve.options import AUDIO_RATE, FPS
from avatarlab.serve.render import EngineStream, fit_frame, stream_size
from avatarlab.serve.sentences import split_sentences
from avatarlab.serve.session import RateLimiter
from avatarlab.serve.stream import TICK_SAMPLES, SpeechQueue
from avatarlab.serve.tracks import (
    AUDIO_FRAME_SAMPLES,
    AvatarAudioTrack,
    AvatarVideoTrack,
    MediaPump,
)
from tests.serve._serve_fakes import FakeStream


def test_speech_queue_takes_ticks_and_barges_in() -> None:
    q = SpeechQueue()
    q.put(np.arange(3000, dtype=np.float32), utterance=1)
    a, u = q.take()
    assert u == 1 and np.array_equal(a, np.arange(TICK_SAMPLES, dtype=np.float32))
    q.put(np.full(100, 7.0, np.float32), utterance=1, append=True)
    b, u = q.take()
    assert u == 1
    assert np.array_equal(b[: 3000 - TICK_SAMPLES], np.arange(TICK_SAMPLES, 3000))
    assert np.all(b[3000 - TICK_SAMPLES : 3000 - TICK_SAMPLES + 100] == 7.0)
    assert np.all(b[3000 - TICK_SAMPLES + 100 :] == 0)
    assert q.take()[1] is None
    q.put(np.ones(5000, np.float32), utterance=2)
    q.take()
    q.put(np.full(10, 3.0, np.float32), utterance=3)  # barge-in drops the rest of 2
    c, u = q.take()
    assert u == 3 and np.all(c[:10] == 3.0) and np.all(c[10:] == 0)
    assert q.pending_s == 0.0


def test_split_sentences() -> None:
    assert split_sentences("Hello there. How are you?\nFine!  ") == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]
    long = " ".join(["word"] * 100)
    pieces = split_sentences(long, max_chars=50)
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces) == long
    assert split_sentences("  \n ") == []


def test_rate_limiter() -> None:
    limiter = RateLimiter(burst=3, per_s=2.0)
    assert [limiter.consume() for _ in range(4)] == [True, True, True, False]
    assert 0.4 < limiter.retry_after() <= 0.5
    time.sleep(0.55)
    assert limiter.consume() and not limiter.consume()


def test_stream_size_and_fit() -> None:
    assert stream_size(1024, 768, 512) == (512, 384)
    assert stream_size(437, 301, 512) == (436, 300)
    assert stream_size(999, 333, 100) == (100, 32)
    frame = np.zeros((301, 437, 3), np.uint8)
    assert fit_frame(frame, (436, 300)).shape == (300, 436, 3)
    assert fit_frame(np.zeros((768, 1024, 3), np.uint8), (512, 384)).shape == (384, 512, 3)


class _LookaheadEngine:
    """Emits frame j once it has seen chunk j + LOOKAHEAD; the frame encodes j and the
    mean of the chunk that covers its time, so pairing can be checked exactly."""

    LOOKAHEAD = 2

    def render_stream(
        self, avatar: object, chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[np.ndarray]]:
        assert sample_rate == AUDIO_RATE
        seen: list[np.ndarray] = []
        emitted = 0
        f = avatar.fps  # type: ignore[attr-defined]
        for chunk in chunks:
            seen.append(chunk)
            out = []
            # Frame j covers [j/f, (j+1)/f); ready when audio reaches its end + lookahead.
            while (emitted + 1) / f + self.LOOKAHEAD / FPS <= len(seen) / FPS + 1e-9:
                source = seen[min(int((emitted + 0.5) / f * FPS), len(seen) - 1)]
                frame = np.zeros((4, 4, 3), np.uint8)
                frame[0, 0, 0] = emitted % 256
                frame[0, 0, 1] = int(round(float(source.mean()) * 100))
                out.append(frame)
                emitted += 1
            yield out


@pytest.mark.parametrize("engine_fps", [25.0, 30.0, 12.5])
def test_engine_stream_pairs_frames_with_their_audio(engine_fps: float) -> None:
    avatar = SimpleNamespace(fps=engine_fps, frame_size=(4, 4))
    stream = EngineStream(_LookaheadEngine(), avatar, max_side=64)  # type: ignore[arg-type]
    # Speech whose level steps up every tick: tick k carries the value k / 100.
    speech = np.concatenate([np.full(TICK_SAMPLES, k / 100, np.float32) for k in range(1, 41)])
    stream.speak(speech, utterance=7)
    ticks = [stream.next_tick() for _ in range(40)]
    first = next(i for i, t in enumerate(ticks) if t.utterance == 7)
    assert first <= _LookaheadEngine.LOOKAHEAD + 1  # speech was queued after some silence was fed
    for n, tick in enumerate(ticks):
        want = math.floor((n + 0.5) * engine_fps / FPS)
        assert tick.frame[0, 0, 0] == want % 256
        if engine_fps == FPS:  # the frame was made from exactly the audio it plays with
            assert tick.frame[0, 0, 1] == int(round(float(tick.audio.mean()) * 100))
    stream.close()


def test_engine_stream_barge_in_replaces_speech_within_lookahead() -> None:
    avatar = SimpleNamespace(fps=25.0, frame_size=(4, 4))
    stream = EngineStream(_LookaheadEngine(), avatar, max_side=64)  # type: ignore[arg-type]
    stream.speak(np.full(AUDIO_RATE * 2, 0.5, np.float32), utterance=1)
    ticks = [stream.next_tick() for _ in range(10)]
    stream.speak(np.full(AUDIO_RATE, 0.2, np.float32), utterance=2)
    after = [stream.next_tick().utterance for _ in range(10)]
    assert ticks[-1].utterance == 1
    # What was already fed to the engine still plays, then the new utterance.
    assert after.index(2) <= _LookaheadEngine.LOOKAHEAD + 1
    assert set(after[after.index(2) :]) == {2}
    stream.stop()
    tail = [stream.next_tick().utterance for _ in range(6)]
    assert tail[-1] is None


def test_pump_plays_video_and_audio_in_real_time_and_in_sync() -> None:
    async def scenario() -> tuple[list, list, float]:
        stream = FakeStream()
        stream.speak(np.zeros(TICK_SAMPLES * 10, np.float32), utterance=1)  # 10 silent ticks
        stream.speak(np.full(AUDIO_RATE, 0.3, np.float32), utterance=1, append=True)
        with ThreadPoolExecutor(1) as pool:
            pump = MediaPump(stream, pool)
            video, audio = AvatarVideoTrack(pump), AvatarAudioTrack(pump)
            started = time.monotonic()
            frames = []
            chunks = []

            async def read_video() -> None:
                for _ in range(FPS):
                    frames.append(await video.recv())

            async def read_audio() -> None:
                for _ in range(2 * FPS):
                    chunks.append(await audio.recv())

            await asyncio.gather(read_video(), read_audio())
            elapsed = time.monotonic() - started
            await pump.close()
        return frames, chunks, elapsed

    frames, chunks, elapsed = asyncio.run(scenario())
    assert 0.9 < elapsed < 1.5  # one second of media takes about one second
    assert [f.pts for f in frames] == [n * 3600 for n in range(FPS)]
    assert [c.pts for c in chunks] == [k * AUDIO_FRAME_SAMPLES for k in range(2 * FPS)]
    assert all(c.sample_rate == AUDIO_RATE and c.samples == AUDIO_FRAME_SAMPLES for c in chunks)
    # Sound starts with tick 10 (audio frame 20); the fake draws its mouth in the same tick.
    loud = [k for k, c in enumerate(chunks) if np.abs(c.to_ndarray()).max() > 1000]
    mouth = [n for n, f in enumerate(frames) if (f.to_ndarray(format="rgb24")[30, 32] < 40).all()]
    assert loud[0] == 20 and mouth[0] == 10
    assert frames[mouth[0]].pts / 90_000 == pytest.approx(chunks[loud[0]].pts / AUDIO_RATE)
