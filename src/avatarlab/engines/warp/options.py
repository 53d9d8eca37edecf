"""Options of the ``warp`` engine, kept free of heavy imports (no OpenCV, no numpy).

The command line builds its ``speak``/``dub``/``serve`` flags from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError

TeethMode = Literal["auto", "source", "synthetic"]
LoopMode = Literal["pingpong", "loop"]


@dataclass(frozen=True)
class WarpOptions:
    """How the warp engine renders.

    Attributes:
        crop_size: the face is processed at about this resolution (pixels across a
            square crop twice the face width); larger faces are warped through a
            coarser grid, so the cost does not grow with the source resolution.
        fps: output frame rate for portraits (videos keep their own rate).
        head_motion: idle head sway, speech nods, brow raises on pitch accents and a
            slowly changing smile for portraits, 0 (still face) .. 1.
        blink_rate: blinks per minute for portraits (0: none); real people 15-20.
        expressiveness: scales the jaw opening (1 = natural, up to 2).
        seed: seeds blinks and head motion; the same seed gives the same video.
        teeth: mouth interior for portraits: ``"auto"`` reuses the portrait's own
            when it shows teeth, ``"source"`` forces it, ``"synthetic"`` paints one.
        loop: how a video source repeats when the speech is longer:
            ``"pingpong"`` (forwards then backwards, no jump) or ``"loop"``.
    """

    crop_size: int = 256
    fps: float = DEFAULT_FPS
    head_motion: float = 0.5
    blink_rate: float = 17.0
    expressiveness: float = 1.0
    seed: int = 0
    teeth: TeethMode = "auto"
    loop: LoopMode = "pingpong"

    def __post_init__(self) -> None:
        if not 64 <= self.crop_size <= 1024:
            raise OptionError(f"crop_size must be in 64..1024 pixels, got {self.crop_size}")
        if not 1.0 <= self.fps <= 120.0:
            raise OptionError(f"fps must be in 1..120, got {self.fps}")
        if not 0.0 <= self.head_motion <= 1.0:
            raise OptionError(f"head_motion must be in 0..1, got {self.head_motion}")
        if not 0.0 <= self.blink_rate <= 60.0:
            raise OptionError(f"blink_rate must be in 0..60 per minute, got {self.blink_rate}")
        if not 0.0 <= self.expressiveness <= 2.0:
            raise OptionError(f"expressiveness must be in 0..2, got {self.expressiveness}")
        if self.teeth not in ("auto", "source", "synthetic"):
            raise OptionError(f"teeth must be auto, source or synthetic, got {self.teeth!r}")
        if self.loop not in ("pingpong", "loop"):
            raise OptionError(f"loop must be pingpong or loop, got {self.loop!r}")
