"""LivePortrait (human model): the published portrait-animation networks, ported exactly.

Importing this package registers the five official checkpoints
(:mod:`.checkpoints`) without importing torch; the networks (:mod:`.networks`), the
keypoint algebra (:mod:`.keypoints`), the crop convention (:mod:`.crop`) and the
``liveportrait`` reenact engine (:mod:`.engine`) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports
from avatarlab.engines.liveportrait.checkpoints import CHECKPOINTS, load_part, load_stitching
from avatarlab.engines.liveportrait.options import LivePortraitOptions

if TYPE_CHECKING:
    from avatarlab.engines.liveportrait.engine import LivePortraitAvatar, LivePortraitEngine
    from avatarlab.engines.liveportrait.model import LivePortraitModels

_LAZY = {
    "LivePortraitAvatar": ".engine",
    "LivePortraitEngine": ".engine",
    "LivePortraitModels": ".model",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "CHECKPOINTS",
    "LivePortraitAvatar",
    "LivePortraitEngine",
    "LivePortraitModels",
    "LivePortraitOptions",
    "load_part",
    "load_stitching",
]
