"""The ``reenact`` engine: a portrait or a video follows a driving face, training-free.

``prepare`` meshes the portrait (or tracks the source video) and lays out its warp
(:mod:`.render`); ``reenact`` tracks the driving face frame by frame
(:class:`avatarlab.face.FaceTracker`), turns its change into a target mesh for the
source (:mod:`.transfer`) and warps the source onto it, drawing a mouth interior
where the lips part. Causal and one frame in, one frame out, so the same code
serves a file and a live camera. No weights; real time on one core at 512x512.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from avatarlab.constants import DEFAULT_FPS
from avatarlab.engines.base import Driver, Frame, Source, register_engine
from avatarlab.engines.reenact import render
from avatarlab.engines.reenact.driver import MotionDriver
from avatarlab.engines.reenact.options import FaceReenactOptions, ReenactOptions
from avatarlab.engines.reenact.transfer import (
    FaceGeometry,
    Motion,
    MotionSignal,
    lids_delta,
    region_weights,
    target_mesh,
)
from avatarlab.engines.warp import topology as tp
from avatarlab.engines.warp.lids import LidLayer
from avatarlab.engines.warp.motion import BlinkSchedule
from avatarlab.engines.warp.mouth import (
    FaceColours,
    MouthGeometry,
    MouthTexture,
    portrait_texture,
    synthetic_texture,
)
from avatarlab.errors import MediaError, NoFaceError, OptionError

MAX_SOURCE_YAW = 50.0
"""A source face turned further than this (degrees) from the camera is refused."""
MAX_ASPECT = 4.0
"""Frames longer than this many times their height (or the reverse) are refused."""
RAMP_S = 0.6
"""An image driver's expression eases in over this many seconds."""


@dataclass
class SourceFrameFace:
    """One source frame's face: its geometry and warp layout."""

    geometry: FaceGeometry
    layout: render.SourceLayout
    gap: float
    lids: LidLayer | None = None

    def lid_layer(self, image: np.ndarray, target: np.ndarray) -> LidLayer | None:
        """The closed-lid layer of this face, built from ``image`` the first time ``target``
        ``(478, 2)`` closes an eye at all (``None`` while none has)."""
        if self.lids is None and render.lid_closure(self.layout, target)[1].any():
            self.lids = LidLayer(image, self.geometry.mesh[: tp.N_FACE, :2])
        return self.lids


@dataclass
class ReenactAvatar:
    """A source analysed by :meth:`ReenactEngine.prepare`.

    Attributes:
        fps: rate of a source video (a portrait renders at its driver's rate).
        frame_size: ``(width, height)`` of the source and every output frame.
        faces: per source frame its face (``None`` where a video frame has none).
        texture: the mouth interior drawn where the lips part beyond the source's.
        image: the portrait, RGB uint8; ``None`` for a video.
        video: the source video; ``None`` for a portrait.
        teeth_source: where the interior comes from (``source`` or ``synthetic``).
    """

    fps: float
    frame_size: tuple[int, int]
    faces: list[SourceFrameFace | None]
    texture: MouthTexture
    image: np.ndarray | None = None
    video: Path | None = None
    teeth_source: str = "synthetic"
    notes: list[str] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.video is not None

    def describe(self) -> list[str]:
        """What the engine chose."""
        return [f"mouth interior: {self.teeth_source}", *self.notes]


def _check_aspect(width: int, height: int, what: str) -> None:
    if max(width / max(height, 1), height / max(width, 1)) > MAX_ASPECT:
        raise MediaError(
            f"{what} is {width}x{height}: frames more than {MAX_ASPECT:g} times longer than "
            "wide are not faces to reenact; crop it around the face first"
        )


def _face(mesh: np.ndarray, crop_size: int, frame: np.ndarray, what: str) -> SourceFrameFace:
    geometry = FaceGeometry.from_mesh(mesh)
    if abs(geometry.yaw) > MAX_SOURCE_YAW:
        raise NoFaceError(
            f"the face in {what} is turned {abs(geometry.yaw):.0f} degrees from the camera: "
            f"reenactment needs one within {MAX_SOURCE_YAW:g} degrees (frontal or three-quarter)"
        )
    layout = render.SourceLayout.build(geometry.mesh, geometry.canon, geometry.frame, crop_size)
    gap = MouthGeometry.from_points(geometry.mesh, geometry.frame.scale).gap()
    return SourceFrameFace(geometry, layout, gap)


@register_engine("reenact")
class ReenactEngine:
    """Training-free reenactment: warp the source face onto the driving face's motion.

    >>> engine = ReenactEngine()
    >>> avatar = engine.prepare("portrait.jpg")                          # doctest: +SKIP
    >>> frames = engine.reenact(avatar, MotionDriver(video="drive.mp4"))  # doctest: +SKIP

    A motion engine: :meth:`render` takes a :class:`MotionDriver` (a speech
    :class:`~avatarlab.engines.Driver` is refused: use ``speak``), and
    :meth:`render_stream` takes camera frames instead of audio chunks.
    """

    name = "reenact"
    Options = FaceReenactOptions
    still_only: ClassVar[frozenset[str]] = frozenset({"teeth", "blink_rate"})
    drives: ClassVar[str] = "motion"

    def __init__(self, options: FaceReenactOptions | None = None) -> None:
        self.options = options or FaceReenactOptions()

    # -- prepare -----------------------------------------------------------------
    def prepare(self, source: Source) -> ReenactAvatar:
        """Analyse a portrait (image file or RGB array) or a source video.

        Raises:
            NoFaceError: no face (naming the frames of a video), or one turned too far.
            MediaError: unreadable source or a frame of extreme aspect ratio.
        """
        if isinstance(source, np.ndarray):
            return self._prepare_image(source, "the image")
        from avatarlab.media import probe

        if probe(source).is_image:
            from avatarlab.media import read_image

            return self._prepare_image(read_image(source), str(source))
        return self._prepare_video(Path(os.fspath(source)))

    def _prepare_image(self, image: np.ndarray, what: str) -> ReenactAvatar:
        from avatarlab.face import face_mesh
        from avatarlab.face.boxes import check_frame

        image = check_frame(image)
        _check_aspect(image.shape[1], image.shape[0], what)
        mesh = face_mesh(image)
        if mesh is None:
            raise NoFaceError(
                f"no face found in {what}: use a picture where one face is clearly visible "
                "(frontal or three-quarter, at least about 80 pixels wide)"
            )
        face = _face(mesh, self.options.crop_size, image, what)
        texture, kind = self._texture(image, face)
        return ReenactAvatar(
            fps=DEFAULT_FPS,
            frame_size=(image.shape[1], image.shape[0]),
            faces=[face],
            texture=texture,
            image=image,
            teeth_source=kind,
        )

    def _texture(self, image: np.ndarray, face: SourceFrameFace) -> tuple[MouthTexture, str]:
        return portrait_texture(
            image, face.geometry.mesh, face.geometry.frame.scale, self.options.teeth
        )

    def _prepare_video(self, path: Path) -> ReenactAvatar:
        from avatarlab.errors import describe_frames
        from avatarlab.face import FaceTracker
        from avatarlab.media import iter_frames, probe

        info = probe(path)
        _check_aspect(info.width, info.height, str(path))
        faces: list[SourceFrameFace | None] = []
        colours: FaceColours | None = None
        first: SourceFrameFace | None = None
        with FaceTracker() as tracker:
            for i, (frame, t) in enumerate(iter_frames(path)):
                state = tracker.update(frame, t)
                if state is None:
                    faces.append(None)
                    continue
                face = _face(state.landmarks, self.options.crop_size, frame, f"frame {i} of {path}")
                faces.append(face)
                if colours is None:
                    colours, first = FaceColours.sample(frame, state.landmarks), face
        if not faces:
            raise MediaError(f"{path} has no frames: pass a video with a face")
        missing = [i for i, f in enumerate(faces) if f is None]
        if colours is None or first is None:
            raise NoFaceError(
                f"no face found in any of the {len(faces)} frames of {path}: use a video where "
                "the face is visible",
                missing,
            )
        notes = []
        if missing:
            notes.append(
                f"no face in source frames {describe_frames(missing)}: they are copied unchanged"
            )
        half = MouthGeometry.from_points(first.geometry.mesh, first.geometry.frame.scale)
        return ReenactAvatar(
            fps=float(info.fps),
            frame_size=(int(info.width), int(info.height)),
            faces=faces,
            texture=synthetic_texture(colours, half.half_width()),
            video=path,
            notes=notes,
        )

    # -- reenact -----------------------------------------------------------------
    def reenact(
        self,
        avatar: ReenactAvatar,
        driver: MotionDriver,
        options: ReenactOptions | None = None,
        notes: list[str] | None = None,
    ) -> Iterator[Frame]:
        """Frames (RGB uint8, source size): one per driving frame, at the driver's rate.

        Frame 0 reproduces the source (motion is relative to the driving clip's first
        frame; a mouth open wider there than the source's is taken relative to it
        closed, :func:`~avatarlab.engines.reenact.transfer.mouth_reference`). ``notes``
        (if given) receives what happened: driving frames without a face (the last pose
        is held there), clamped rotations.

        Raises:
            NoFaceError: no face in the driving image, or in any driving frame.
        """
        options = options or ReenactOptions()
        if driver.is_image:
            yield from self._hold_expression(avatar, driver, options)
            return
        from avatarlab.face import FaceTracker

        session = _Session(self, avatar, options)
        signal = MotionSignal(options, self.options.max_angle, session.first.geometry)
        count = 0
        try:
            with FaceTracker() as tracker:
                for frame, t in driver.frames():
                    if count == 0:
                        _check_aspect(frame.shape[1], frame.shape[0], "the driving clip")
                    state = tracker.update(frame, t)
                    face = None if state is None else FaceGeometry.from_mesh(state.landmarks)
                    motion = signal.update(face, t)
                    if session.exhausted(options):
                        break
                    yield session.frame(motion)
                    count += 1
        finally:
            session.close()
        if signal.reference is None:
            raise NoFaceError(
                f"no face in any of the {count} frames of the driving clip: drive with a clip "
                "where a face is visible",
                list(range(count)),
            )
        if notes is not None:
            notes.extend(signal.notes())

    def _hold_expression(
        self, avatar: ReenactAvatar, driver: MotionDriver, options: ReenactOptions
    ) -> Iterator[Frame]:
        """An image driver: ease into its expression, hold it, blink now and then."""
        _, mesh = driver.image_mesh()
        target = FaceGeometry.from_mesh(mesh)
        session = _Session(self, avatar, options)
        source = session.first.geometry
        # The driver's expression over the source's: its shape where faces move, not the rest.
        change = (target.canon - source.canon) * _expressive_weights()[:, None]
        blinks = BlinkSchedule(self.options.blink_rate, driver.fps, self.options.seed)
        n = driver.n_frames() or 1
        try:
            for i in range(n):
                ease = min(1.0, (i / driver.fps) / RAMP_S)
                ease = ease * ease * (3.0 - 2.0 * ease)
                delta = ease * change
                closure = blinks.closure(i)
                if closure > 0:
                    delta = delta + lids_delta(source.canon + delta, closure)
                if session.exhausted(options):
                    break
                yield session.frame(Motion(delta))
        finally:
            session.close()

    # -- the engine protocol -------------------------------------------------------
    def render(self, avatar: ReenactAvatar, driver: Driver | MotionDriver) -> Iterator[Frame]:
        """:meth:`reenact` with default controls; a speech driver is refused.

        Raises:
            OptionError: ``driver`` is speech (audio or text).
        """
        if not isinstance(driver, MotionDriver):
            raise OptionError(
                "the reenact engine follows a driving face, not speech: use reenact "
                "(--driving VIDEO), or speak with the warp engine"
            )
        return self.reenact(avatar, driver)

    def render_stream(
        self, avatar: ReenactAvatar, chunks: Iterable[np.ndarray], sample_rate: int = 0
    ) -> Iterator[list[Frame]]:
        """Camera frames in (RGB uint8, each a chunk), one rendered frame out per frame.

        ``sample_rate`` is ignored (the protocol's audio signature); audio chunks
        (1-D arrays) are refused with an ``OptionError``.
        """

        def frames() -> Iterator[np.ndarray]:
            for chunk in chunks:
                if np.ndim(chunk) != 3:
                    raise OptionError(
                        "the reenact engine streams camera frames (H, W, 3), not audio: "
                        "speak with the warp engine"
                    )
                yield chunk

        for frame in self.reenact(avatar, MotionDriver(live=frames())):
            yield [frame]


@lru_cache(maxsize=1)
def _expressive_weights() -> np.ndarray:
    """``(478,)`` 1 on the lips, lids, brows and irises, 0 on the rigid points and outline.

    An image driver has no neutral frame to subtract, so its expression is its shape
    where faces move with expression, spread smoothly (harmonic) in between.
    """
    from avatarlab.engines.warp import topology as tp
    from avatarlab.engines.warp.rig import LIP_HANDLES
    from avatarlab.face import topology as T
    from avatarlab.face.canonical import RIGID_POINTS

    ones = set(LIP_HANDLES) | set(T.RIGHT_EYEBROW) | set(T.LEFT_EYEBROW)
    ones |= {i for eye in tp.EYES for i in eye} | set(tp.RIGHT_LID_ABOVE) | set(tp.LEFT_LID_ABOVE)
    zeros = (set(RIGID_POINTS.tolist()) | set(T.FACE_OVAL)) - ones
    handles = sorted(ones)
    w = tp.harmonic_operator(handles, sorted(zeros)) @ np.ones(len(handles))
    return np.concatenate([np.clip(w, 0.0, 1.0), np.ones(T.NUM_MESH_POINTS - tp.N_FACE)])


class _Session:
    """Per-run state: the source frame order (a video's own frames, looped or not)."""

    def __init__(
        self, engine: ReenactEngine, avatar: ReenactAvatar, options: ReenactOptions
    ) -> None:
        self.avatar = avatar
        self.options = options
        self.first = next(f for f in avatar.faces if f is not None)
        self._frames: Iterator[tuple[np.ndarray, int]] | None = (
            self._video_frames() if avatar.is_video else None
        )
        self._current: tuple[np.ndarray, SourceFrameFace | None] | None = None
        self._done = False

    def _video_frames(self) -> Iterator[tuple[np.ndarray, int]]:
        from avatarlab.media import iter_frames

        assert self.avatar.video is not None
        n = len(self.avatar.faces)
        while True:
            for j, (frame, _) in enumerate(iter_frames(self.avatar.video)):
                if j >= n:
                    break
                yield frame, j
            if self.options.loop == "stop":
                return

    def exhausted(self, options: ReenactOptions) -> bool:
        """Fetch the next source frame; True when a source video ended with ``stop``."""
        if self._frames is None:
            assert self.avatar.image is not None
            self._current = (self.avatar.image, self.avatar.faces[0])
            return False
        try:
            frame, j = next(self._frames)
        except StopIteration:
            return True
        self._current = (frame, self.avatar.faces[j])
        return False

    def frame(self, motion: Motion) -> np.ndarray:
        """The current source frame moved by ``motion``."""
        assert self._current is not None
        image, face = self._current
        if face is None:
            return image.copy()
        geometry = face.geometry
        target = target_mesh(geometry, motion, self.options, keep_pose=self.avatar.is_video)
        lids = face.lid_layer(image, target[:, :2])
        out = render.warp_face(image, face.layout, target[:, :2], target[:, 2], lids)
        moved = self.options.moves_head and not self.avatar.is_video
        scale = geometry.frame.scale * (motion.scale if moved else 1.0)
        if (
            self.options.multiplier > 0
            and region_weights(self.options.region)[14] > 0
            or (self.options.lips_open > 0)
        ):
            render.draw_mouth(
                out,
                target[:, :2],
                scale,
                self.avatar.texture,
                face.gap,
                face.layout,
            )
        return out

    def close(self) -> None:
        if self._frames is not None and hasattr(self._frames, "close"):
            self._frames.close()
