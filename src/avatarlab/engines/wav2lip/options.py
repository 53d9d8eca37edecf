"""Options of the Wav2Lip engine, kept free of heavy imports (no torch, no OpenCV).

The command line builds its ``speak``/``dub``/``serve`` flags from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError

DEFAULT_PADS = (0, 10, 0, 0)
"""Wav2Lip's ``--pads``: pixels added to the face box at top, bottom, left, right."""


@dataclass(frozen=True)
class Wav2LipOptions:
    """Which checkpoint runs where, and how faces are cut out and pasted back.

    Attributes:
        checkpoint: ``wav2lip.pth`` / ``wav2lip_gan.pth`` (or a compatible state dict);
            ``None`` uses the cached ``wav2lip.pth`` and says where to get it when absent.
        device: torch device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:N"``.
        batch_size: frames per network call (memory grows linearly; 16-128 suit a GPU).
        pads: pixels added to the tracker's face box (top, bottom, left, right); Wav2Lip's
            default adds 10 below so the chin is inside the crop.
        blend: ``"lower"`` pastes only the lower face (from ~35 % of the box height down),
            keeping the source's sharp eyes; ``"box"`` pastes the whole box.
        feather: width of the soft mask edge as a fraction of the box side (0 gives the
            reference's hard rectangle).
        still_fps: frame rate of the output for a still portrait.
        max_gap: frames without a tracked face that borrow the nearest frame's box (brief
            misses on blur or occlusion); in longer gaps frames pass through unchanged
            (the reference stops with an error instead).
    """

    checkpoint: str | None = None
    device: str = "auto"
    batch_size: int = 16
    pads: tuple[int, int, int, int] = DEFAULT_PADS
    blend: Literal["lower", "box"] = "lower"
    feather: float = 0.1
    still_fps: float = DEFAULT_FPS
    max_gap: int = 5

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise OptionError(f"batch_size must be at least 1, got {self.batch_size}")
        if len(self.pads) != 4:
            raise OptionError(f"pads needs 4 values (top, bottom, left, right), got {self.pads}")
        if self.blend not in ("lower", "box"):
            raise OptionError(f"blend must be 'lower' or 'box', got {self.blend!r}")
        if not 0.0 <= self.feather <= 0.5:
            raise OptionError(f"feather must be in [0, 0.5], got {self.feather}")
        if not 0 < self.still_fps <= 120:
            raise OptionError(f"still_fps must be in (0, 120], got {self.still_fps}")
        if self.max_gap < 0:
            raise OptionError(f"max_gap must be >= 0, got {self.max_gap}")
