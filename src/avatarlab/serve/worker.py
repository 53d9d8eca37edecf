"""Render processes for live sessions: each session's engine runs in a worker process of its own.

Sessions that render in threads of the server take turns on one core: the engine's
Python parts (mouth analysis, rig maths, numpy glue between OpenCV calls) hold the GIL.
A :class:`ProcessStream` moves a session's :class:`~avatarlab.serve.render.EngineStream`
(speech queue, ``render_stream`` generator, background finish) into a worker process,
so sessions render on as many cores as there are.

The worker renders ahead: once it has made tick ``n`` it goes on to the next ones, up to
``lead`` ticks past the last one handed out, so ``next_tick`` usually returns at once. A
``speak`` or ``stop`` thus shows at most ``lead`` ticks later than it would in a thread.
Rendering starts when the stream opens, so the first ticks (slow: each stream loads its
voice-activity model) overlap the viewer's call set-up.

Frames come back through a shared-memory ring of ``lead + 1`` frame slots (no pickling per
frame); small messages (credits, speech, each tick's 1920 audio samples) go through a pipe.
The avatar (what ``engine.prepare`` returned) is prepared once in the server and pickled
to the worker once per session (1.7 MB and ~4 ms for a 512 px portrait, against ~1 s to
analyse it again there).

Workers start from a ``forkserver`` (``spawn`` where there is none) that has imported the
engine modules once, and a :class:`RenderPool` keeps a spare worker waiting, so opening a
session does not wait for Python, OpenCV and the engine to import.

Faults stay with their session: a worker that dies makes ``next_tick`` raise
:class:`WorkerError`, and an engine error in it comes back with the same type and message.
A worker exits when the server goes (its pipe closes; on Linux also the parent-death
signal); the shared memory is unlinked when the stream closes, when it is collected, at
interpreter exit, and (multiprocessing's resource tracker) when the server is killed.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
import weakref
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from avatarlab.serve.stream import TICK_SAMPLES, Tick

log = logging.getLogger("avatarlab.serve")

LEAD_TICKS = 1
"""Ticks a worker renders past the last one handed out (latency added to speak/stop)."""
SPARE_WORKERS = 1
"""Idle workers a pool keeps started, so a new session need not wait for one."""
PRELOAD = (
    "avatarlab.serve.worker",
    "avatarlab.serve.render",
    "avatarlab.speech",
    "silero_vad",  # torch: the streaming mouth's voice-activity model
    "mediapipe",  # face-mesh tables the warp render reads
)
"""Modules the forkserver imports once (those missing are skipped), so every worker starts
with them loaded and shares their memory; a spare worker's warm-up covers the rest."""
START_TIMEOUT_S = 60.0
"""Longest wait for a worker to start and take its session (spawn imports everything)."""
TICK_TIMEOUT_S = 30.0
"""Longest wait for one tick before the worker is declared hung."""
CLOSE_TIMEOUT_S = 2.0
"""Longest wait for a worker to exit after it was told to, before it is killed."""
WARM_TICKS = 3
"""Ticks a spare worker renders of the last session's kind while it waits."""
BULKY_BYTES = 64 * 1024
"""Speech larger than this (~0.3 s) goes to the worker from a thread of its own."""


class WorkerError(RuntimeError):
    """A session's render worker process died, hung, or could not take the session."""


def start_method() -> str:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn``; never plain
    ``fork``, which would copy the server's threads' locks mid-use."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


_preloaded = False


def _context() -> multiprocessing.context.BaseContext:
    """The start context; a forkserver preloads :data:`PRELOAD` (not ``__main__``, which
    would run a script's top level again) when it starts."""
    global _preloaded
    method = start_method()
    context = multiprocessing.get_context(method)
    if method == "forkserver" and not _preloaded:
        context.set_forkserver_preload(list(PRELOAD))  # type: ignore[attr-defined]
        _preloaded = True
    return context


# -- the worker process ------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    """Worker process: wait for one session, render it, exit (the process target).

    Ctrl-C in the terminal reaches the whole process group: the server decides when
    its workers stop, so they ignore it.
    """
    from avatarlab._pool import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(os.getppid())  # the forkserver, which exits with the server
    conn.send(("ready", os.getpid()))
    try:
        while (message := conn.recv())[0] == "warm":
            _warm_up(message[1])
        if message[0] == "open":
            _render_session(conn, *message[1:])
    except (EOFError, OSError):  # the server went: nothing to tell
        pass
    finally:
        conn.close()


def _warm_up(payload: bytes) -> None:
    """Render a few ticks of a session of the same kind and drop them: imports, models
    and first-call set-up (Silero VAD, the selfie segmenter) happen before a viewer waits."""
    from avatarlab.serve.render import EngineStream

    with contextlib.suppress(Exception):  # the real session reports its own errors
        stream = EngineStream(*pickle.loads(payload))
        try:
            for _ in range(WARM_TICKS):
                stream.next_tick()
        finally:
            stream.close()


def _render_session(conn: Connection, payload: bytes, shm_name: str, slots: int) -> None:
    """Run one :class:`EngineStream` until told to close, rendering ticks as credits allow.

    Messages in: ``("speak", audio, utterance, append)``, ``("stop",)``, ``("credit", k)``
    (render ``k`` more ticks), ``("close",)``. Out: ``("opened",)`` or ``("error", ...)``
    once, then ``("tick", n, audio, utterance)`` per tick (its frame in slot ``n % slots``)
    until an ``("error", ...)``.
    """
    from avatarlab.serve.render import EngineStream

    try:
        engine, avatar, max_side, finish = pickle.loads(payload)
        stream = EngineStream(engine, avatar, max_side, finish)
    except Exception as exc:
        conn.send(_error_message(exc))
        return
    shm = SharedMemory(name=shm_name)
    ring = _ring(shm, slots, stream.size)
    conn.send(("opened",))
    credits = 0
    n = 0
    failed = False
    try:
        while True:
            if credits == 0 or failed or conn.poll(0):
                message = conn.recv()
                kind = message[0]
                if kind == "close":
                    return
                if kind == "speak":
                    stream.speak(message[1], message[2], append=message[3])
                elif kind == "stop":
                    stream.stop()
                elif kind == "credit":
                    credits += message[1]
                continue  # apply every message that came in before rendering on
            try:
                tick = stream.next_tick()
            except Exception as exc:  # the session ends; the server hears why
                conn.send(_error_message(exc))
                failed = True
                continue
            ring[n % slots] = tick.frame
            conn.send(("tick", n, tick.audio, tick.utterance))
            n += 1
            credits -= 1
    finally:
        del ring
        stream.close()
        shm.close()


def _ring(shm: SharedMemory, slots: int, size: tuple[int, int]) -> np.ndarray:
    """The frame slots in ``shm``: uint8 ``(slots, H, W, 3)`` for ``size`` = ``(W, H)``."""
    width, height = size
    return np.ndarray((slots, height, width, 3), np.uint8, buffer=shm.buf)


def _error_message(exc: BaseException) -> tuple[str, str, str, bytes | None]:
    """``("error", "Type: message", traceback, pickled exception or None)`` for the server."""
    blob: bytes | None
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)  # some exceptions pickle but do not load (required arguments)
    except Exception:
        blob = None
    trace = "".join(traceback.format_exception(exc))
    return ("error", f"{type(exc).__name__}: {exc}", trace, blob)


# -- the server side ---------------------------------------------------------------------


class _Worker:
    """A started worker process and the server's end of its pipe."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        here, there = context.Pipe(duplex=True)
        process = context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(there,), name="avatarlab-render", daemon=True
        )
        process.start()
        there.close()  # only the worker holds it now: its death closes our end
        self.process: BaseProcess = process
        self.conn: Connection = here
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if not self.ready:
            if not self.conn.poll(timeout):
                raise WorkerError(f"the render worker did not start within {timeout:.0f} s")
            try:
                self.conn.recv()
            except (EOFError, OSError):
                self.process.join(CLOSE_TIMEOUT_S)
                code = self.process.exitcode
                raise WorkerError(f"the render worker exited as it started (exit {code})") from None
            self.ready = True

    def stop(self, tell: bool = True) -> None:
        """Tell the worker to exit (unless told already), wait a little, then kill it;
        reap it (no zombie)."""
        if tell:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(("close",))
        self.process.join(CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(CLOSE_TIMEOUT_S)
        self.conn.close()


class RenderPool:
    """Starts render workers and keeps ``spare`` of them idle for the next session.

    A spare renders a few ticks of the last session opened (its engine, avatar and
    finish) while it waits, so the next session's first tick is not slow.

    Args:
        spare: idle workers kept started (0: each session starts its own).
    """

    def __init__(self, spare: int = SPARE_WORKERS) -> None:
        self.spare = spare
        self._idle: list[_Worker] = []
        self._starting = 0
        self._payload: bytes | None = None  # the last session's, to warm spares with
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._idle)

    def warm(self) -> None:
        """Start spare workers until there are ``spare`` (waits for their start only)."""
        while True:
            with self._lock:
                if self._closed or len(self._idle) + self._starting >= self.spare:
                    return
                self._starting += 1
                payload = self._payload
            worker: _Worker | None = None
            try:
                worker = _Worker(_context())
                if payload is not None:
                    worker.conn.send(("warm", payload))
            except Exception as exc:  # sessions start their own worker instead
                log.warning("could not start a spare render worker: %s", exc)
                if worker is not None:
                    worker.stop(tell=False)
                with self._lock:
                    self._starting -= 1
                return
            with self._lock:
                self._starting -= 1
                keep = not self._closed
                if keep:
                    self._idle.append(worker)
            if not keep:
                worker.stop()

    def take(self, payload: bytes) -> _Worker:
        """A started worker for a session of ``payload``; a spare starts in its place."""
        with self._lock:
            if self._closed:
                raise WorkerError("the render pool is closed")
            self._payload = payload
            worker = self._idle.pop(0) if self._idle else None
        if worker is not None and not worker.process.is_alive():  # died while it waited
            worker.stop(tell=False)
            worker = None
        if worker is None:
            worker = _Worker(_context())
        if self.spare:
            threading.Thread(target=self.warm, name="render-spare", daemon=True).start()
        return worker

    def open(
        self,
        engine: Any,
        avatar: Any,
        max_side: int,
        finish: Any = None,
        lead: int = LEAD_TICKS,
    ) -> ProcessStream:
        """A :class:`ProcessStream` of ``EngineStream(engine, avatar, max_side, finish)``.

        Raises:
            WorkerError: the arguments do not pickle, or the worker cannot load them
                (a class defined in ``__main__`` or in a function), or it did not start.
        """
        return ProcessStream(self, engine, avatar, max_side, finish, lead)

    def close(self) -> None:
        """Stop the idle workers (streams already open keep theirs until they close)."""
        with self._lock:
            self._closed = True
        self._finalizer()


def _stop_all(workers: list[_Worker]) -> None:
    while workers:
        workers.pop().stop()


class _Resources:
    """What one :class:`ProcessStream` holds outside Python: a process, a pipe, a segment."""

    def __init__(self, worker: _Worker, shm: SharedMemory, ring: np.ndarray) -> None:
        self.worker = worker
        self.shm = shm
        self.ring: np.ndarray | None = ring  # frame slots, a view of ``shm``
        self.outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._pending = 0  # messages in the outbox or being sent by the sender thread
        self._lock = threading.Lock()
        self.sender = threading.Thread(target=self._send, name="render-send", daemon=True)
        self.sender.start()

    def post(self, message: tuple[Any, ...], bulky: bool = False) -> None:
        """Send ``message`` to the worker, after every message posted before it.

        Small messages go out at once from the calling thread (a thread hop per tick
        costs milliseconds on a busy machine); ``bulky`` ones (megabytes of speech, which
        would block until the worker reads them) and any behind them go through the
        sender thread, so the event loop never waits for the worker.
        """
        with self._lock:
            if bulky or self._pending:
                self._pending += 1
                self.outbox.put(message)
                return
            with contextlib.suppress(OSError, ValueError):  # gone: next_tick says so
                self.worker.conn.send(message)

    def _send(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.worker.conn.send(message)
            except (OSError, ValueError):  # the worker is gone: next_tick says so
                return
            with self._lock:
                self._pending -= 1

    def release(self) -> None:
        """Stop the worker (reaped), the sender, and unlink the shared memory; once."""
        self.post(("close",))
        self.outbox.put(None)
        self.sender.join(CLOSE_TIMEOUT_S)
        self.worker.stop(tell=False)
        self.ring = None  # the segment cannot close while an array views it
        self.shm.close()
        with contextlib.suppress(FileNotFoundError):
            self.shm.unlink()


class ProcessStream:
    """An :class:`~avatarlab.serve.stream.AvatarStream` rendered by a worker process.

    Frames and speech are those of ``EngineStream(engine, avatar, max_side, finish)`` in
    the worker; ``speak``/``stop`` reach frames at most ``lead`` ticks later than there.
    Open it with :meth:`RenderPool.open`.

    Raises:
        WorkerError: (``next_tick``) the worker died or hung; the stream is then broken.
        Engine errors raised by the worker's ``next_tick`` come back with their own type
        and message (a traceback of the worker in the exception's notes).
    """

    def __init__(
        self,
        pool: RenderPool,
        engine: Any,
        avatar: Any,
        max_side: int,
        finish: Any = None,
        lead: int = LEAD_TICKS,
    ) -> None:
        from avatarlab.serve.render import stream_size

        if lead < 0:
            raise ValueError(f"lead must be >= 0, got {lead}")
        try:
            payload = pickle.dumps((engine, avatar, max_side, finish), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise WorkerError(f"the session cannot go to a worker process: {exc}") from None
        width, height = avatar.frame_size
        self._size = stream_size(width, height, max_side)
        self._lead = lead
        self._slots = lead + 1
        frame_bytes = self._size[0] * self._size[1] * 3
        shm = SharedMemory(create=True, size=self._slots * frame_bytes)
        try:
            worker = pool.take(payload)
        except BaseException:
            shm.close()
            shm.unlink()
            raise
        ring = _ring(shm, self._slots, self._size)
        self._res = _Resources(worker, shm, ring)
        self._finalizer = weakref.finalize(self, self._res.release)
        self._lock = threading.Lock()
        self._tick = 0
        self._closed = False
        self._broken: BaseException | None = None
        try:
            worker.wait_ready(START_TIMEOUT_S)
            self._res.post(("open", payload, shm.name, self._slots), bulky=True)
            reply = self._receive(START_TIMEOUT_S)
            if reply[0] != "opened":
                raise WorkerError(f"the render worker could not take the session: {reply[1]}")
            if lead:  # start now: the first ticks (slow: models warm up) overlap the call set-up
                self._res.post(("credit", lead))
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def pid(self) -> int | None:
        """The worker's process id (for monitoring and tests)."""
        return self._res.worker.process.pid

    def _receive(self, timeout: float) -> tuple[Any, ...]:
        """The worker's next message; ``WorkerError`` when it died or did not answer."""
        worker = self._res.worker
        try:
            if not worker.conn.poll(timeout):
                raise WorkerError(f"the render worker did not answer within {timeout:.0f} s")
            message: tuple[Any, ...] = worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(CLOSE_TIMEOUT_S)
            code = worker.process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
            raise WorkerError(f"the render worker stopped ({how})") from None
        return message

    def speak(self, audio: np.ndarray, utterance: int, append: bool = False) -> None:
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        self._res.post(("speak", audio, utterance, append), bulky=audio.nbytes > BULKY_BYTES)

    def stop(self) -> None:
        self._res.post(("stop",))

    def next_tick(self) -> Tick:
        with self._lock:
            if self._closed:
                raise RuntimeError("the stream is closed")
            if self._broken is not None:
                raise self._broken
            n = self._tick
            self._res.post(("credit", 1))
            try:
                message = self._receive(TICK_TIMEOUT_S)
            except WorkerError as exc:
                self._broken = exc
                raise
            if message[0] == "error":
                self._broken = _rebuild(message)
                raise self._broken
            _, index, audio, utterance = message
            ring = self._res.ring
            if index != n or audio.shape != (TICK_SAMPLES,) or ring is None:
                self._broken = WorkerError(f"the render worker sent tick {index} for tick {n}")
                raise self._broken
            frame = ring[n % self._slots].copy()
            self._tick = n + 1
            return Tick(frame, audio, utterance)

    def close(self) -> None:
        """Stop the worker and free the shared memory (idempotent; waits for a tick
        still being received)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finalizer()


def _rebuild(message: tuple[Any, ...]) -> BaseException:
    """The worker's exception (same type and message where it unpickles), its traceback
    in the notes."""
    _, text, trace, blob = message
    exc: BaseException = RuntimeError(text)
    if blob is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(blob)
    exc.add_note(f"raised in the render worker:\n{trace}")
    return exc
