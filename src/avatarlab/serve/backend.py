"""The shipped backend: any registered engine's streaming form behind :class:`AvatarStream`.

:class:`EngineBackend` prepares avatars and opens streams with the engine named in
:class:`~avatarlab.serve.options.ServeOptions` (``warp`` by default); nothing here
names an engine.

Streams are :class:`~avatarlab.serve.render.EngineStream` (in a thread) or
:class:`~avatarlab.serve.worker.ProcessStream` (the same, in a worker process).

With a ``motion_engine`` (``reenact`` by default in the server) the backend also
drives avatars with a camera: :meth:`EngineBackend.prepare_motion` analyses a
portrait for that engine and :meth:`EngineBackend.open_camera` runs it over live
camera frames (``engine.render(avatar, MotionDriver(live=...))``).

With a ``background`` (:class:`~avatarlab.tasks.postprocess.BackgroundOptions`) every frame
handed out, speech- or camera-driven, goes through its own
:class:`~avatarlab.body.masks.BackgroundReplacer` (one per stream, so mask smoothing follows
that session's frames), after it is scaled to the stream size.

With ``processes`` (the default) each stream renders in a worker process of its own
(:class:`~avatarlab.serve.worker.ProcessStream`), so sessions use every core instead of
taking turns behind the GIL; ``processes=False`` keeps them in the server's threads.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarlab.body.masks import BackgroundReplacer, parse_background
from avatarlab.engines.base import Engine
from avatarlab.errors import OptionError
from avatarlab.serve.render import EngineStream, fit_frame, stream_size
from avatarlab.serve.stream import AvatarStream
from avatarlab.tasks.postprocess import BackgroundOptions

if TYPE_CHECKING:
    from avatarlab.serve.worker import RenderPool

log = logging.getLogger("avatarlab.serve")


class EngineBackend:
    """Avatars and streams of one registered engine at the server's frame rate and size.

    Args:
        engine: a registered engine name whose class has ``render_stream``.
        options: the engine's ``Options`` (or a dict of its fields; ``None``: defaults).
        max_side: longest side of the streamed frames; portraits are shrunk to it
            before they are analysed, so rendering stays cheap.

        motion_engine: a registered motion engine (``drives == "motion"``) that camera
            driving uses, with its default options; ``None``: no camera driving.
        background: what replaces the background of every streamed frame (read here,
            once); ``None`` or no ``background`` set: frames as the engine made them.
        processes: render each stream in a worker process (:mod:`avatarlab.serve.worker`);
            ``False``: in the calling thread (:class:`EngineStream`). A stream whose engine
            or avatar cannot go to a process (it does not pickle) renders in a thread.

    Each stream gets a fresh ``seed`` (the options' seed plus the stream number) when
    the engine's options have one, so sessions do not blink and sway in step.

    Raises:
        OptionError: unknown engine, bad options, an engine that cannot stream, or a
            ``motion_engine`` that is not a motion engine. MediaError: an unreadable
            background image.
    """

    def __init__(
        self,
        engine: str = "warp",
        options: object = None,
        max_side: int = 512,
        motion_engine: str | None = None,
        background: BackgroundOptions | None = None,
        processes: bool = True,
    ) -> None:
        from avatarlab.engines import ENGINES, engine_drives, list_engines, resolve_engine_options
        from avatarlab.engines.base import option_fields

        cls = ENGINES.get(engine)
        if engine_drives(engine) != "speech":
            raise OptionError(f"engine {engine!r} follows a driving face: it cannot speak live")
        self.name = engine
        self.max_side = max_side
        self.options = resolve_engine_options(engine, options)
        self._cls = cls
        self._reseed = "seed" in option_fields(type(self.options))
        self._streams = 0
        self.processes = processes
        self._pool: RenderPool | None = None
        self.engine: Engine = cls(self.options)
        wanted = background.background if background is not None else None
        self._background = None if wanted is None else parse_background(wanted)
        self._smoothing = background.mask_smoothing if background is not None else 0.0
        self.motion_engine = motion_engine
        self._motion: Engine | None = None
        self._motion_warm = False
        if motion_engine is not None:
            motion_cls = ENGINES.get(motion_engine)
            if engine_drives(motion_engine) != "motion":
                raise OptionError(
                    f"engine {motion_engine!r} speaks: a camera drives a motion engine "
                    f"({', '.join(list_engines('motion')) or 'none registered'})"
                )
            self._motion = motion_cls(resolve_engine_options(motion_engine, None))

    def _prepare_with(self, engine: Engine, source: Path) -> Any:
        from avatarlab.media import is_image_path, read_image

        if is_image_path(source):
            image = read_image(source)
            h, w = image.shape[:2]
            return engine.prepare(
                np.ascontiguousarray(fit_frame(image, stream_size(w, h, self.max_side)))
            )
        return engine.prepare(source)

    def prepare(self, source: Path) -> Any:
        """Analyse a portrait (shrunk to ``max_side`` first, so rendering stays cheap) or video."""
        return self._prepare_with(self.engine, source)

    def prepare_motion(self, source: Path) -> Any:
        """:meth:`prepare` for the motion engine (camera driving).

        Raises:
            OptionError: the backend has no motion engine.
        """
        if self._motion is None:
            raise OptionError("camera driving is off on this server (no motion engine)")
        avatar = self._prepare_with(self._motion, source)
        if not self._motion_warm:  # one-time set-up (models, caches): ~0.7 s off the 1st frame
            frame = self._first_frame(source)
            for _ in self.open_camera(avatar, (64, 64), iter([(frame, 0.0), (frame, 0.04)])):
                pass
            self._motion_warm = True
        return avatar

    def _first_frame(self, source: Path) -> np.ndarray:
        from avatarlab.media import is_image_path, iter_frames, read_image

        if is_image_path(source):
            image = read_image(source)
            h, w = image.shape[:2]
            return np.ascontiguousarray(fit_frame(image, stream_size(w, h, self.max_side)))
        frame, _ = next(iter(iter_frames(source, end=0.2)))
        return frame

    def open_camera(
        self, avatar: Any, size: tuple[int, int], frames: Iterator[tuple[np.ndarray, float]]
    ) -> Generator[np.ndarray, None, None]:
        """The motion engine over live camera ``(frame, t)`` pairs: one frame at ``size`` each.

        Motion is relative to the first frame with a face; frames without one hold the
        last motion (the engine's live mode).
        """
        from avatarlab.engines.reenact.driver import MotionDriver

        if self._motion is None:
            raise OptionError("camera driving is off on this server (no motion engine)")
        finish = self._finish()
        try:
            for frame in self._motion.render(avatar, MotionDriver(live=frames)):  # type: ignore[arg-type]
                fitted = fit_frame(frame, size)
                yield fitted if finish is None else finish(fitted)
        finally:
            if finish is not None:
                finish.close()

    def _finish(self) -> BackgroundReplacer | None:
        """A fresh background replacer for one stream, or ``None`` without a background."""
        if self._background is None:
            return None
        return BackgroundReplacer(self._background, self._smoothing)

    def open_stream(self, avatar: Any) -> AvatarStream:
        """A stream with its own timing (a fresh seed per session when the engine has one),
        in a worker process when the backend has ``processes``."""
        self._streams += 1
        engine = self.engine
        if self._reseed:
            seed = self.options.seed + self._streams
            engine = self._cls(replace(self.options, seed=seed))
        if self.processes:
            from avatarlab.serve.worker import RenderPool, WorkerError

            if self._pool is None:
                self._pool = RenderPool()
            try:
                return self._pool.open(engine, avatar, self.max_side, self._finish())
            except WorkerError as exc:
                log.warning("%s; this session renders in a thread", exc)
        return EngineStream(engine, avatar, self.max_side, self._finish())

    def close(self) -> None:
        """Stop the idle render workers (open streams keep theirs until they close)."""
        if self._pool is not None:
            self._pool.close()
