"""Camera driving: the browser's camera frames in, the session's avatar reenacted out.

A :class:`CameraDrive` runs a motion engine (``reenact`` by default) over the live
camera in its own thread, so rendering never blocks the event loop. Frames are
pushed into a one-slot mailbox as they arrive: a frame that is still waiting when a
newer one comes is dropped, so the engine always reenacts the newest frame and the
latency stays bounded when rendering is slower than the camera. Each frame is scaled
down (longest side ``side``) before the engine tracks it: tracking needs a face of a
hundred-odd pixels, not a full camera picture.

Every output frame keeps the arrival time of the camera frame it came from
(:class:`~avatarlab.serve.stream.LiveFrame`); the video track reports when it hands
the frame to WebRTC (:meth:`CameraDrive.mark_sent`), and the difference is the
camera-frame-to-avatar-frame latency, kept for the last :data:`LATENCY_WINDOW` frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any

import av
import cv2
import numpy as np

from avatarlab.errors import AvatarLabError
from avatarlab.serve.render import stream_size
from avatarlab.serve.stream import LiveFrame

log = logging.getLogger("avatarlab.serve")

STALE_S = 1.0
"""No camera frame for this long: the camera counts as stopped (the speech stream shows)."""
START_S = 10.0
"""Camera driving that receives no frame for this long after it was switched on ends."""
LATENCY_WINDOW = 250
"""Output frames (10 s at 25 fps) whose latency the percentiles are taken over."""
JOIN_S = 5.0
"""Longest wait for the render thread to finish its frame when camera driving ends."""

Renderer = Callable[[Iterator[tuple[np.ndarray, float]]], Generator[np.ndarray, None, None]]
"""A motion engine over live frames: ``(RGB uint8 frame, t seconds)`` in, one frame out each."""


def camera_rgb(frame: av.VideoFrame | np.ndarray, side: int) -> np.ndarray:
    """A camera frame as RGB uint8 ``(H, W, 3)`` with its longest side at most ``side``."""
    if isinstance(frame, np.ndarray):
        h, w = frame.shape[:2]
        size = stream_size(w, h, side)
        if size == (w, h):
            return np.ascontiguousarray(frame)
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    w, h = stream_size(frame.width, frame.height, side)
    return frame.to_ndarray(format="rgb24", width=w, height=h)


class CameraDrive:
    """Reenacts the newest camera frame in a thread of its own; see the module docstring.

    Args:
        render: the motion engine over live frames (it pulls them as it needs them).
        side: longest side camera frames are scaled to before the engine tracks them.

    ``push`` and the readers run on the event loop; only the render thread calls the
    engine. :meth:`close` ends the thread (the engine's generator is closed with it).
    """

    def __init__(self, render: Renderer, side: int) -> None:
        self.side = side
        self.started = time.monotonic()
        self.latest: LiveFrame | None = None
        self.last_arrival: float | None = None
        self.received = 0
        self.dropped = 0
        self.rendered = 0
        self.render_s = 0.0
        self.error: BaseException | None = None
        self._latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._sent = -1  # seq of the last frame handed to WebRTC
        self._mailbox: tuple[Any, float] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._taken: tuple[float, float] = (
            0.0,
            0.0,
        )  # (arrival, perf_counter) of the frame in render
        self._render = render
        self._thread = threading.Thread(target=self._run, name="camera-drive", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the render thread is alive."""
        return self._thread.is_alive()

    def push(self, frame: av.VideoFrame | np.ndarray, arrived: float) -> None:
        """Hand over a camera frame that arrived at ``arrived`` (``time.monotonic``)."""
        with self._cond:
            if self._closed:
                return
            if self._mailbox is not None:
                self.dropped += 1  # never rendered: a newer frame replaces it
            self._mailbox = (frame, arrived)
            self.received += 1
            self.last_arrival = arrived
            self._cond.notify()

    def current(self, now: float) -> LiveFrame | None:
        """The newest output frame while the camera is live (a frame within :data:`STALE_S`)."""
        if self.last_arrival is None or now - self.last_arrival > STALE_S:
            return None
        return self.latest

    def mark_sent(self, frame: LiveFrame, now: float) -> None:
        """Record that ``frame`` went to WebRTC at ``now``; the first send counts for latency."""
        if frame.seq != self._sent:
            self._sent = frame.seq
            self._latency.append(now - frame.arrived)

    def latency_ms(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) of recent camera-to-avatar latencies (ms)."""
        if not self._latency:
            return None
        return round(1000.0 * float(np.percentile(np.asarray(self._latency), q)), 1)

    def stats(self) -> dict[str, Any]:
        """Counters for the session status (see ``CameraInfo`` in the API)."""
        return {
            "frames_received": self.received,
            "frames_dropped": self.dropped,
            "frames_rendered": self.rendered,
            "render_ms": round(1000.0 * self.render_s / self.rendered, 1) if self.rendered else 0.0,
            "latency_ms_p50": self.latency_ms(50),
            "latency_ms_p90": self.latency_ms(90),
            "latency_samples": len(self._latency),
        }

    def close(self) -> None:
        """Stop rendering and wait (at most :data:`JOIN_S`) for the frame in progress."""
        with self._cond:
            self._closed = True
            self._mailbox = None
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_S)

    # -- the render thread ------------------------------------------------------------

    def _frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """The newest waiting frame each time the engine asks, scaled down, with its time."""
        while True:
            with self._cond:
                while self._mailbox is None and not self._closed:
                    self._cond.wait(0.5)
                if self._closed or self._mailbox is None:
                    return
                frame, arrived = self._mailbox
                self._mailbox = None
            self._taken = (arrived, time.perf_counter())
            yield camera_rgb(frame, self.side), arrived - self.started

    def _run(self) -> None:
        outputs = self._render(self._frames())
        try:
            for out in outputs:
                if self._closed:
                    break
                arrived, taken = self._taken
                self.render_s += time.perf_counter() - taken
                self.latest = LiveFrame(np.ascontiguousarray(out), arrived, self.rendered)
                self.rendered += 1
        except AvatarLabError as exc:  # e.g. no face in any frame, once the camera stops
            if not self._closed:
                self.error = exc
        except Exception as exc:  # a broken renderer ends camera driving, not the session
            log.exception("camera driving failed")
            self.error = exc
        finally:
            outputs.close()
