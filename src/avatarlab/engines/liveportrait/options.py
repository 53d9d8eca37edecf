"""Options of the ``liveportrait`` reenactment engine, kept free of heavy imports.

The motion controls (region, multiplier, relative/absolute, eyes_open, lips_open,
lips_still, smoothing) are the reenact task's :class:`~avatarlab.engines.reenact.
ReenactOptions`, shared with the training-free ``reenact`` engine; these are the
engine's own settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarlab.errors import OptionError

CROP_SCALE = 2.3
"""``crop_config.scale``: crop side over the landmarks' extent (source portrait)."""
CROP_VX = 0.0
"""``crop_config.vx_ratio``: horizontal crop shift, share of the crop side."""
CROP_VY = -0.125
"""``crop_config.vy_ratio``: vertical crop shift, share of the crop side (negative: up)."""
DRIVING_SCALE = 2.2
"""``crop_config.scale_crop_driving_video``: crop side over the driving face's extent."""
DRIVING_VY = -0.1
"""``crop_config.vy_ratio_crop_driving_video``."""


@dataclass(frozen=True)
class LivePortraitOptions:
    """Which weights run where, and LivePortrait's own switches.

    Attributes:
        checkpoint: folder holding the five official files (directly, or as downloaded:
            ``base_models/`` and ``retargeting_models/``); ``None`` looks in the weights
            cache and says where to download each missing file.
        device: torch device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``
            or ``cuda:N``.
        batch_size: driving frames per network call (memory grows linearly; 1 keeps a
            live camera's latency lowest, 8-32 suit a GPU).
        stitching: apply the stitching MLP so the animated crop pastes back without
            seams (the reference's ``flag_stitching``).
        paste_back: blend the animated crop back into the whole portrait; off returns
            the 512x512 crop itself.
        normalize_lip: close the source's lips before animation when they are open
            (``flag_normalize_lip``), so the driving mouth starts from closed.
        crop_scale: crop side over the face's landmark extent (``crop_config.scale``).
        crop_vy: vertical crop shift, share of the crop side (negative moves the crop
            up to include the forehead; ``crop_config.vy_ratio``).
        threads: CPU threads torch uses (0: torch's default).
    """

    checkpoint: str | None = None
    device: str = "auto"
    batch_size: int = 1
    stitching: bool = True
    paste_back: bool = True
    normalize_lip: bool = True
    crop_scale: float = CROP_SCALE
    crop_vy: float = CROP_VY
    threads: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 256:
            raise OptionError(f"batch_size must be in 1..256, got {self.batch_size}")
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise OptionError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not 1.5 <= self.crop_scale <= 4.0:
            raise OptionError(f"crop_scale must be in 1.5..4, got {self.crop_scale}")
        if not -0.5 <= self.crop_vy <= 0.5:
            raise OptionError(f"crop_vy must be in -0.5..0.5, got {self.crop_vy}")
        if self.threads < 0:
            raise OptionError(f"threads must be 0 (default) or more, got {self.threads}")
