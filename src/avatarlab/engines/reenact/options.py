"""Options of reenactment, kept free of heavy imports (no OpenCV, no numpy).

:class:`ReenactOptions` holds what every reenact engine honours (the motion
controls LivePortrait offers, plus the output's audio, length and quality): the
``reenact`` task and its command-line flags are built from it.
:class:`FaceReenactOptions` holds the ``reenact`` engine's own settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from avatarlab._util import check_crf
from avatarlab.errors import OptionError

Region = Literal["all", "expression", "pose", "lips", "eyes"]
LengthMode = Literal["loop", "stop"]
TeethMode = Literal["auto", "source", "synthetic"]

MAX_ANGLE_DEG = 30.0
"""Head rotation (relative to the driving clip's first frame) beyond which it is clamped."""


@dataclass(frozen=True)
class ReenactOptions:
    """How the source follows the driving face (any reenact engine).

    Attributes:
        engine: reenact engine name (``reenact``: training-free warp on a CPU).
        region: what is animated: ``all`` (head pose and expression), ``expression``
            (the whole face, no head motion), ``pose`` (head only), ``lips`` (mouth and
            jaw) or ``eyes`` (lids, blinks and gaze).
        multiplier: scales the expression change (1 = as driven; 0 .. 3).
        relative: motion relative to the driving clip's first frame (off: absolute,
            the driving face's own rotation and shape replace the source's).
        eyes_open: eye retargeting: hold the eyes at this share of the source's own
            opening (0 closed .. 1.5); negative follows the driving eyes.
        lips_open: lip retargeting: hold the lips at this opening, in centimetres of
            inner-lip gap (0 .. 3); negative follows the driving mouth.
        lips_still: keep the source's own mouth (no lip or jaw motion at all).
        smoothing: extra temporal smoothing of the driving signal, 0 (none) .. 1
            (steady; slower expressions lag).
        audio: sound of the output: ``driving`` (the driving clip's, if any), ``none``,
            or the path of an audio or video file.
        loop: a source video shorter than the driving clip ``loop``s; ``stop`` ends the
            output with the shorter of the two.
        duration: seconds of output for an image driver (one held expression).
        crf: H.264 quality (0 lossless .. 51 worst; 18 visually lossless).
    """

    engine: str = "reenact"
    region: Region = "all"
    multiplier: float = 1.0
    relative: bool = True
    eyes_open: float = -1.0
    lips_open: float = -1.0
    lips_still: bool = False
    smoothing: float = 0.0
    audio: str = "driving"
    loop: LengthMode = "loop"
    duration: float = 4.0
    crf: int = 18

    def __post_init__(self) -> None:
        if self.region not in ("all", "expression", "pose", "lips", "eyes"):
            raise OptionError(
                f"region must be all, expression, pose, lips or eyes, got {self.region!r}"
            )
        if not 0.0 <= self.multiplier <= 3.0:
            raise OptionError(f"multiplier must be in 0..3, got {self.multiplier}")
        if self.eyes_open > 1.5:
            raise OptionError(
                f"eyes_open must be at most 1.5 (or negative to follow), got {self.eyes_open}"
            )
        if self.lips_open > 3.0:
            raise OptionError(
                f"lips_open must be at most 3 cm (or negative to follow), got {self.lips_open}"
            )
        if self.lips_still and self.lips_open >= 0:
            raise OptionError("lips_still and lips_open exclude each other: give one")
        if not 0.0 <= self.smoothing <= 1.0:
            raise OptionError(f"smoothing must be in 0..1, got {self.smoothing}")
        if self.loop not in ("loop", "stop"):
            raise OptionError(f"loop must be loop or stop, got {self.loop!r}")
        if not 0.2 <= self.duration <= 600.0:
            raise OptionError(f"duration must be in 0.2..600 seconds, got {self.duration}")
        check_crf(self.crf)
        if self.audio not in ("driving", "none") and not os.path.isfile(self.audio):
            raise OptionError(
                f"audio must be driving, none or an existing audio file, got {self.audio!r}"
            )

    @property
    def moves_head(self) -> bool:
        """Whether the head pose follows the driving face."""
        return self.region in ("all", "pose")


@dataclass(frozen=True)
class FaceReenactOptions:
    """Settings of the training-free ``reenact`` engine.

    Attributes:
        crop_size: the face is warped through a grid of about this resolution across
            twice its width; larger faces use a coarser grid, so the cost does not
            grow with the source resolution.
        max_angle: head rotation (degrees, relative to the driving clip's first frame)
            beyond which yaw, pitch and roll are clamped, with a note (5 .. 45).
        teeth: mouth interior for a portrait: ``auto`` reuses the portrait's own when
            it shows teeth, ``source`` forces it, ``synthetic`` paints one.
        blink_rate: blinks per minute added for an image driver (0: none).
        seed: seeds those blinks; the same seed gives the same video.
    """

    crop_size: int = 256
    max_angle: float = MAX_ANGLE_DEG
    teeth: TeethMode = "auto"
    blink_rate: float = 17.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 64 <= self.crop_size <= 1024:
            raise OptionError(f"crop_size must be in 64..1024 pixels, got {self.crop_size}")
        if not 5.0 <= self.max_angle <= 45.0:
            raise OptionError(f"max_angle must be in 5..45 degrees, got {self.max_angle}")
        if self.teeth not in ("auto", "source", "synthetic"):
            raise OptionError(f"teeth must be auto, source or synthetic, got {self.teeth!r}")
        if not 0.0 <= self.blink_rate <= 60.0:
            raise OptionError(f"blink_rate must be in 0..60 per minute, got {self.blink_rate}")
