"""What drives a reenactment: a driving video, one expression image, or live frames.

A :class:`MotionDriver` only *describes* the driving face; engines read it with
:meth:`MotionDriver.frames` (RGB uint8 frames with their times in seconds), so a
file, a portrait and a webcam feed reach every reenact engine the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError

Frames = Iterable[np.ndarray] | Iterable[tuple[np.ndarray, float]]
"""Live frames: RGB uint8 ``(H, W, 3)`` arrays, or ``(frame, t_seconds)`` pairs."""


@dataclass(frozen=True)
class MotionDriver:
    """The driving face: exactly one of ``video``, ``image`` or ``live``.

    Attributes:
        video: a driving video file; one output frame per driving frame, at its rate.
        image: an image file or RGB uint8 array whose expression is applied and held
            (``duration`` seconds at ``fps``), with natural blinks.
        live: frames as they arrive (a webcam): arrays or ``(frame, t)`` pairs; each is
            answered with one output frame as soon as it is rendered.
        fps: frame rate of ``image`` output and of ``live`` frames without times.
        duration: seconds of output for ``image``.
    """

    video: str | os.PathLike[str] | None = None
    image: str | os.PathLike[str] | np.ndarray | None = None
    live: Frames | None = None
    fps: float = DEFAULT_FPS
    duration: float = 4.0

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.video, self.image, self.live))
        if given != 1:
            raise OptionError("a motion driver needs exactly one of video, image or live")
        if not 1.0 <= self.fps <= 120.0:
            raise OptionError(f"fps must be in 1..120, got {self.fps}")

    @staticmethod
    def from_path(
        path: str | os.PathLike[str] | np.ndarray, fps: float = DEFAULT_FPS, duration: float = 4.0
    ) -> MotionDriver:
        """A video or image driver, by what ``path`` holds (an array is an image)."""
        if isinstance(path, np.ndarray):
            return MotionDriver(image=path, fps=fps, duration=duration)
        from avatarlab.media import probe

        info = probe(path)
        if info.is_image:
            return MotionDriver(image=path, fps=fps, duration=duration)
        if not info.has_video:
            raise OptionError(f"{path} has no video: drive with a video or an image of a face")
        return MotionDriver(video=path, fps=fps, duration=duration)

    @property
    def is_image(self) -> bool:
        return self.image is not None

    def frame_rate(self) -> float:
        """Frames per second of the output (the driving video's own rate)."""
        if self.video is not None:
            from avatarlab.media import probe

            return float(probe(self.video).fps)
        return float(self.fps)

    def n_frames(self) -> int | None:
        """Output length in frames when known in advance (``None`` for live frames)."""
        if self.video is not None:
            from avatarlab.media import probe

            return int(probe(self.video).n_frames)
        if self.image is not None:
            return max(1, round(self.duration * self.fps))
        return None

    def image_frame(self) -> np.ndarray:
        """The driving image, RGB uint8 ``(H, W, 3)``."""
        if self.image is None:
            raise OptionError("this driver is not an image")
        if isinstance(self.image, np.ndarray):
            from avatarlab.face.boxes import check_frame

            return check_frame(self.image)
        from avatarlab.media import read_image

        return read_image(self.image)

    def image_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """The driving image and its 478-point face mesh (:func:`avatarlab.face.face_mesh`).

        Raises:
            NoFaceError: no face in the image.
        """
        from avatarlab.errors import NoFaceError
        from avatarlab.face import face_mesh

        image = self.image_frame()
        mesh = face_mesh(image)
        if mesh is None:
            raise NoFaceError(
                "no face found in the driving image: use a picture where one face is visible"
            )
        return image, mesh

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """``(frame, t)`` of every driving video or live frame, in order."""
        if self.video is not None:
            from avatarlab.media import iter_frames

            yield from iter_frames(Path(os.fspath(self.video)))
            return
        if self.live is None:
            raise OptionError("an image driver has no frames: use its image_frame()")
        for i, item in enumerate(self.live):
            if isinstance(item, tuple):
                frame, t = item
                yield np.asarray(frame), float(t)
            else:
                yield np.asarray(item), i / self.fps
