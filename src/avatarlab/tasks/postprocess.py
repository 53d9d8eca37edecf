"""Stages run on every generated frame: face restoration, then background replacement.

``speak``, ``dub`` and ``reenact`` take ``post=PostOptions(...)``; the live server's
:class:`~avatarlab.serve.ServeOptions` carries the background fields only
(:class:`BackgroundOptions`), since a restoration network is far slower than a stream's
40 ms per frame on a CPU::

    from avatarlab.tasks import EnhanceOptions, PostOptions, speak
    speak("me.jpg", text="Hello", out="hello.mp4",
          post=PostOptions(enhance="codeformer", enhancer=EnhanceOptions(fidelity=0.7),
                           background="#00ff00"))

Order: the face is restored first, on the frame as the engine made it (the network sees
the surroundings it was trained with; its paste touches only the face hull), then the
background is replaced, so what is outside the person is exactly the chosen background.
Everything is checked when :class:`Postprocessor` is built, before any rendering: the
checkpoint is found and loaded (a missing file is one line naming it and where it is
published) and the background is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from avatarlab.errors import OptionError
from avatarlab.tasks.enhance import EnhanceModel, EnhanceOptions, make_restorer

if TYPE_CHECKING:
    import numpy as np

    from avatarlab.body.masks import Background
    from avatarlab.engines.enhance import Restorer

DEFAULT_MASK_SMOOTHING = 0.5
"""Weight of the previous frame's person mask: a step in the mask settles to 6 % in 4 frames."""


def _check_background(value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise OptionError("background is empty: give a colour, an image file or blur")
    from avatarlab.body.masks import parse_background

    parse_background(value)  # reads an image file now, so a bad one fails before any work


@dataclass(frozen=True, kw_only=True)
class BackgroundOptions:
    """What replaces the background of generated frames (MediaPipe selfie segmentation).

    Attributes:
        background: replace everything but the person: a colour (green, blue, black, white,
            grey, a CSS name, #RRGGBB or R,G,B), an image file (scaled to cover the frame)
            or blur (the frame's own background, blurred); default: keep it.
        mask_smoothing: weight in [0, 1) of the previous frame's person mask blended into
            this frame's (steadier edges, lags fast motion; 0 = off).
    """

    background: str | None = None
    mask_smoothing: float = DEFAULT_MASK_SMOOTHING

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_smoothing < 1.0:
            raise OptionError(f"mask_smoothing must be in [0, 1), got {self.mask_smoothing}")
        _check_background(self.background)


@dataclass(frozen=True, kw_only=True)
class PostOptions(BackgroundOptions):
    """Post-processing of ``speak``, ``dub`` and ``reenact`` frames (off by default).

    Attributes:
        enhance: restore the face of every frame with gfpgan or codeformer (only the aligned
            face crop; pixels outside the face hull stay as rendered); default: off.
        enhancer: the restorer's settings (fidelity, checkpoint, temporal, ...; on the
            command line ``--enhance-fidelity`` and so on); ``enhance`` names the model
            and the frame size is kept, so its ``model`` is not used and ``upscale`` must be 1.
    """

    enhance: EnhanceModel | None = None
    enhancer: EnhanceOptions = field(default_factory=EnhanceOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.enhance is not None and self.enhance not in ("gfpgan", "codeformer"):
            raise OptionError(f"enhance must be gfpgan or codeformer, got {self.enhance!r}")
        if self.enhancer.upscale != 1:
            raise OptionError(
                "enhance keeps the frame size: upscale must be 1 here (use avatarlab enhance "
                "--upscale 2 on the finished video)"
            )

    @property
    def active(self) -> bool:
        """Whether any stage runs."""
        return self.enhance is not None or self.background is not None


class Postprocessor:
    """The stages of ``options``, loaded and checked at construction (before rendering).

    ``restorer`` replaces the network ``options.enhance`` names (tests, callers holding a
    model). Call :meth:`run` once per clip; it streams, holding one batch of frames.

    Raises:
        MissingWeightsError, CheckpointError: the restorer's checkpoint is absent or wrong.
        OptionError, MediaError: the background is no colour or readable image.
    """

    def __init__(self, options: BackgroundOptions, restorer: Restorer | None = None) -> None:
        self.options = options
        self.restorer: Restorer | None = None
        self.background: Background | None = None
        if isinstance(options, PostOptions) and options.enhance is not None:
            settings = replace(options.enhancer, model=options.enhance)
            self.restorer = restorer or make_restorer(settings)
        if options.background is not None:
            from avatarlab.body.masks import parse_background

            self.background = parse_background(options.background)

    def run(self, frames: Iterable[np.ndarray], fps: float) -> Iterator[np.ndarray]:
        """The processed frames (RGB uint8 ``(H, W, 3)``, same size) of one clip at ``fps``."""
        out: Iterator[np.ndarray] = iter(frames)
        if self.restorer is not None:
            out = self._enhance(out, fps)
        if self.background is not None:
            out = self._replace_background(out)
        return out

    def _enhance(self, frames: Iterator[np.ndarray], fps: float) -> Iterator[np.ndarray]:
        from avatarlab.engines.enhance import FaceEnhancer, enhance_tracked

        assert self.restorer is not None and isinstance(self.options, PostOptions)
        settings = self.options.enhancer
        enhancer = FaceEnhancer(self.restorer, feather=settings.feather, temporal=settings.temporal)
        timed = ((frame, i / fps) for i, frame in enumerate(frames))
        yield from enhance_tracked(timed, enhancer, settings.batch_size)

    def _replace_background(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        from avatarlab.body.masks import BackgroundReplacer

        assert self.background is not None
        with BackgroundReplacer(self.background, self.options.mask_smoothing) as replacer:
            for frame in frames:
                yield replacer(frame)


__all__ = ["BackgroundOptions", "PostOptions", "Postprocessor"]
