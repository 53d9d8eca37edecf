"""Sessions rendered in worker processes: the same frames as in a thread, speech on time,
faults kept to their session, nothing left behind (processes, shared memory)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatarlab.engines.warp import WarpEngine, WarpOptions
from avatarlab.errors import MediaError
from avatarlab.serve.backend import EngineBackend
from avatarlab.serve.options import AUDIO_RATE
from avatarlab.serve.render import EngineStream, fit_frame, stream_size
from avatarlab.serve.stream import Tick
from avatarlab.serve.worker import ProcessStream, RenderPool, WorkerError

SIDE = 192  # small frames keep each tick cheap
pytestmark = pytest.mark.slow  # the forkserver imports torch and MediaPipe once: ~5-10 s


@pytest.fixture(scope="module")
def avatar() -> Any:
    from avatarlab.assets import default_portrait

    image = default_portrait()
    size = stream_size(image.shape[1], image.shape[0], SIDE)
    return WarpEngine().prepare(np.ascontiguousarray(fit_frame(image, size)))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About a second of real speech at the stream rate (a voiced tone without the data)."""
    from tests.conftest import DATA

    path = DATA / "audio" / "english_60s.wav"
    if path.exists():
        from avatarlab.media import read_audio

        return read_audio(path, sample_rate=AUDIO_RATE, max_seconds=None)[
            AUDIO_RATE : 2 * AUDIO_RATE
        ]
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700), 1))
    return (0.3 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def pool() -> Iterator[RenderPool]:
    """One pool for the module: its spare, warmed on the last session, opens the next."""
    pool = RenderPool(spare=1)
    pool.warm()
    yield pool
    pool.close()


def _engine(seed: int = 3) -> Any:  # the Engine protocol, as the backend hands it out
    return WarpEngine(WarpOptions(seed=seed))


def _play(
    stream: Any, ticks: int, speech: np.ndarray, speak_at: int, stop_at: int | None = None
) -> list[Tick]:
    """``ticks`` ticks, utterance 1 said before tick ``speak_at``, stopped before ``stop_at``."""
    out = []
    for n in range(ticks):
        if n == speak_at:
            stream.speak(speech, 1)
        if n == stop_at:
            stream.stop()
        out.append(stream.next_tick())
    return out


def _assert_same(got: list[Tick], want: list[Tick]) -> None:
    assert len(got) == len(want)
    for n, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.frame.shape == b.frame.shape and a.frame.dtype == np.uint8
        assert np.array_equal(a.frame, b.frame), f"frame {n} differs"
        assert np.array_equal(a.audio, b.audio) and a.utterance == b.utterance, f"tick {n}"


def _said(ticks: list[Tick]) -> list[int]:
    return [n for n, t in enumerate(ticks) if t.utterance is not None]


def _shm_exists(name: str) -> bool:
    return Path("/dev/shm", name.lstrip("/")).exists()


def _gone(pid: int) -> bool:
    """No process ``pid``, not even a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "X"


def test_frames_and_speech_match_the_thread_bit_for_bit(
    avatar: Any, speech: np.ndarray, pool: RenderPool
) -> None:
    """With no lead, the worker sees each message before the tick after it: the same
    ticks as :class:`EngineStream`, speech, barge-in and stop included."""
    stream = pool.open(_engine(), avatar, SIDE, lead=0)
    reference = EngineStream(_engine(), avatar, SIDE)
    try:
        assert stream.size == reference.size
        for s in (stream, reference):
            s.speak(speech[: AUDIO_RATE // 2], 7)
        got = _play(stream, 24, speech, speak_at=10, stop_at=18)
        want = _play(reference, 24, speech, speak_at=10, stop_at=18)
    finally:
        stream.close()
        reference.close()
    _assert_same(got, want)
    assert {t.utterance for t in got} == {7, 1, None}
    mouth = [t.frame for t in got]
    assert max(np.abs(f.astype(int) - mouth[0]).max() for f in mouth) > 30  # it moved


def test_lead_delays_speak_and_stop_by_two_ticks_at_most(
    avatar: Any, speech: np.ndarray, pool: RenderPool
) -> None:
    """Rendering ahead (lead 2) makes ``speak`` and ``stop`` act as if called 0..2 ticks
    later, nothing else: the frames equal a thread's that got the calls that much later."""
    ticks, speak_at, stop_at = 24, 5, 12
    stream = pool.open(_engine(), avatar, SIDE)  # the default lead, 2
    try:
        time.sleep(0.3)  # let it render ahead as far as it may
        got = _play(stream, ticks, speech, speak_at, stop_at)
    finally:
        stream.close()

    def thread(late_speak: int, late_stop: int) -> list[Tick]:
        reference = EngineStream(_engine(), avatar, SIDE)
        return _play(reference, ticks, speech, speak_at + late_speak, stop_at + late_stop)

    def same(a: list[Tick], b: list[Tick]) -> bool:
        return all(
            np.array_equal(x.frame, y.frame) and x.utterance == y.utterance
            for x, y in zip(a, b, strict=True)
        )

    on_time = thread(0, 0)
    starts = [d for d in range(3) if same(got[:stop_at], thread(d, 0)[:stop_at])]
    matches = [(d, e) for d in starts for e in range(3) if same(got, thread(d, e))]
    assert matches, f"no delay of 0..2 ticks explains the worker's ticks {_said(got)}"
    # what a viewer sees: speech starts and ends at most a tick or so later than in a thread
    assert 0 <= _said(got)[0] - _said(on_time)[0] <= 3
    assert 0 <= _said(got)[-1] - _said(on_time)[-1] <= 3


class FailingEngine(WarpEngine):
    """Warp frames until the third tick, then the error a broken source raises."""

    def render_stream(
        self, avatar: Any, audio_chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[np.ndarray]]:
        for n, frames in enumerate(super().render_stream(avatar, audio_chunks, sample_rate)):
            if n == 3:
                raise MediaError("the source video went away: upload it again")
            yield frames


def test_engine_error_comes_back_with_its_type_and_message(avatar: Any, pool: RenderPool) -> None:
    stream = pool.open(FailingEngine(), avatar, SIDE)
    try:
        with pytest.raises(MediaError) as e:
            for _ in range(10):
                stream.next_tick()
        assert str(e.value) == "the source video went away: upload it again"
        assert any("raised in the render worker" in note for note in e.value.__notes__)
        with pytest.raises(MediaError):  # broken for good, same error
            stream.next_tick()
    finally:
        stream.close()


def test_killed_worker_is_a_clear_error_and_leaves_nothing(avatar: Any, pool: RenderPool) -> None:
    stream = pool.open(_engine(), avatar, SIDE)
    other = pool.open(_engine(4), avatar, SIDE)
    pid, shm = stream.pid, stream._res.shm.name
    assert pid is not None and _shm_exists(shm)
    stream.next_tick()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerError, match=r"render worker stopped \(killed by signal 9\)"):
        for _ in range(5):
            stream.next_tick()
    with pytest.raises(WorkerError):
        stream.next_tick()
    assert other.next_tick().frame.shape == (*reversed(other.size), 3)  # unaffected
    stream.close()
    stream.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        stream.next_tick()
    assert not _shm_exists(shm) and _gone(pid)
    other_pid, other_shm = other.pid, other._res.shm.name
    other.close()
    assert other_pid is not None and _gone(other_pid) and not _shm_exists(other_shm)


def test_two_streams_render_at_once(avatar: Any, pool: RenderPool) -> None:
    streams = [pool.open(_engine(seed), avatar, SIDE) for seed in (1, 2)]
    got: dict[int, list[Tick]] = {}

    def run(i: int) -> None:
        got[i] = [streams[i].next_tick() for _ in range(12)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        pids = [s.pid for s in streams]
        assert len(set(pids)) == 2 and os.getpid() not in pids
    finally:
        for s in streams:
            s.close()
    for i, seed in enumerate((1, 2)):
        _assert_same(got[i], _play(EngineStream(_engine(seed), avatar, SIDE), 12, np.zeros(0), -1))
    assert not np.array_equal(got[0][-1].frame, got[1][-1].frame)  # own seeds: own motion


def test_backend_chooses_processes_and_falls_back_to_a_thread(
    avatar: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(
        EngineBackend("warp", max_side=SIDE, processes=False).open_stream(avatar), EngineStream
    )
    backend = EngineBackend("warp", max_side=SIDE)
    try:
        stream = backend.open_stream(avatar)
        try:
            assert isinstance(stream, ProcessStream) and stream.next_tick().frame.ndim == 3
        finally:
            stream.close()

        class Local(WarpEngine):  # defined in a function: no worker can import it
            pass

        backend._cls = Local  # type: ignore[assignment]
        with caplog.at_level(logging.WARNING, "avatarlab.serve"):
            fallback = backend.open_stream(avatar)
        assert isinstance(fallback, EngineStream) and "renders in a thread" in caplog.text
        fallback.close()
    finally:
        backend.close()


def test_closing_a_pool_stops_its_spares() -> None:
    pool = RenderPool(spare=2)
    pool.warm()
    spares = [w.process for w in pool._idle]
    assert len(spares) == 2 and all(p.is_alive() for p in spares)
    pool.close()
    assert all(p.exitcode is not None for p in spares)
    with pytest.raises(WorkerError, match="closed"):
        pool.take(b"")


ORPHAN = """
import os, signal, numpy as np
from avatarlab.assets import default_portrait
from avatarlab.engines.warp import WarpEngine
from avatarlab.serve.render import fit_frame
from avatarlab.serve.worker import RenderPool

if __name__ == "__main__":
    avatar = WarpEngine().prepare(np.ascontiguousarray(fit_frame(default_portrait(), (128, 128))))
    pool = RenderPool(spare=1)
    pool.warm()
    stream = pool.open(WarpEngine(), avatar, 128)
    stream.next_tick()
    print(stream.pid, stream._res.shm.name, pool._idle[0].process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_and_shared_memory_go_with_a_killed_server(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "server.py"
    script.write_text(ORPHAN)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    worker, shm, spare = run.stdout.split()[-3:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        _gone(int(worker)) and _gone(int(spare)) and not _shm_exists(shm)
    ):
        time.sleep(0.1)
    assert _gone(int(worker)) and _gone(int(spare)) and not _shm_exists(shm)
