"""Wav2Lip: the published lip-sync generator and its SyncNet_color expert.

Importing this package registers the official checkpoints (``wav2lip.pth``,
``wav2lip_gan.pth``, ``lipsync_expert.pth``) without importing torch; the networks
(:mod:`.model`) and the engine (:mod:`.engine`) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports
from avatarlab.engines.wav2lip.checkpoints import (
    LIPSYNC_EXPERT,
    WAV2LIP,
    WAV2LIP_GAN,
    load_syncnet_color,
    load_wav2lip,
)

if TYPE_CHECKING:
    from avatarlab.engines.wav2lip.engine import (
        Wav2LipAvatar,
        Wav2LipEngine,
        wav2lip_dub,
    )
    from avatarlab.engines.wav2lip.model import SyncNetColor, Wav2Lip
    from avatarlab.engines.wav2lip.options import Wav2LipOptions

_LAZY = {
    "Wav2Lip": ".model",
    "SyncNetColor": ".model",
    "Wav2LipAvatar": ".engine",
    "Wav2LipEngine": ".engine",
    "Wav2LipOptions": ".options",
    "wav2lip_dub": ".engine",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "LIPSYNC_EXPERT",
    "WAV2LIP",
    "WAV2LIP_GAN",
    "SyncNetColor",
    "Wav2Lip",
    "Wav2LipAvatar",
    "Wav2LipEngine",
    "Wav2LipOptions",
    "load_syncnet_color",
    "load_wav2lip",
    "wav2lip_dub",
]
