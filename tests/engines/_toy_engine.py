"""A toy engine defined in this one file, to show that adding an engine needs no edit elsewhere.

Frames are the source picture with a dark "mouth" bar whose height follows the speech
(jaw opening offline, loudness live) and a brightness offset of ``shade``. Register
it with ``register_engine("toy")(ToyEngine)`` (see ``toy_engine`` in the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from avatarlab.engines import Driver, Frame, Source
from avatarlab.errors import OptionError


@dataclass(frozen=True)
class ToyOptions:
    """How the toy engine draws.

    Attributes:
        shade: brightness added to every pixel, 0 .. 100.
        seed: varies the bar's column per stream (the server gives each session its own).
        fps: frame rate for still portraits.
    """

    shade: int = 0
    seed: int = 0
    fps: float = 25.0

    def __post_init__(self) -> None:
        if not 0 <= self.shade <= 100:
            raise OptionError(f"shade must be in 0..100, got {self.shade}")


@dataclass(frozen=True)
class ToyAvatar:
    """The source picture (first frame of a video) and its rate."""

    image: np.ndarray
    fps: float

    @property
    def frame_size(self) -> tuple[int, int]:
        return (int(self.image.shape[1]), int(self.image.shape[0]))

    def describe(self) -> list[str]:
        return [f"toy picture {self.frame_size[0]}x{self.frame_size[1]}"]


class ToyEngine:
    """Draws a mouth bar on the source; no face analysis, no weights."""

    name = "toy"
    Options = ToyOptions
    still_only = frozenset({"fps"})
    drives = "speech"

    def __init__(self, options: ToyOptions | None = None) -> None:
        self.options = options or ToyOptions()

    def prepare(self, source: Source) -> ToyAvatar:
        from avatarlab.media import iter_frames, probe, read_image

        if isinstance(source, np.ndarray):
            return ToyAvatar(source.copy(), self.options.fps)
        info = probe(source)
        if info.is_image:
            return ToyAvatar(read_image(source), self.options.fps)
        frame, _ = next(iter(iter_frames(source)))
        return ToyAvatar(frame, float(info.fps))

    def _frame(self, avatar: ToyAvatar, opening: float) -> Frame:
        out = np.clip(avatar.image.astype(np.int16) + self.options.shade, 0, 255).astype(np.uint8)
        h, w = out.shape[:2]
        rows = int(round(min(max(opening, 0.0), 1.0) * h / 4))
        x = (w // 4 + self.options.seed) % w
        if rows:
            out[h // 2 : h // 2 + rows, x : x + w // 2] = 0
        return out

    def render(self, avatar: ToyAvatar, driver: Driver) -> Iterator[Frame]:
        from avatarlab.speech import MOUTH_PARAMS

        jaw = MOUTH_PARAMS.index("jaw_open")
        for row in driver.analyse(avatar.fps).mouth.params:
            yield self._frame(avatar, float(row[jaw]))

    def render_stream(
        self, avatar: ToyAvatar, audio_chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[Frame]]:
        per_frame = sample_rate / avatar.fps
        pending = np.zeros(0, np.float32)
        for chunk in audio_chunks:
            pending = np.concatenate([pending, np.asarray(chunk, np.float32).reshape(-1)])
            frames = []
            while len(pending) >= per_frame:
                block, pending = pending[: int(per_frame)], pending[int(per_frame) :]
                frames.append(self._frame(avatar, 4.0 * float(np.sqrt(np.mean(block**2)))))
            yield frames
        yield [self._frame(avatar, 0.0)] if len(pending) else []
