"""avatarlab: talking avatars in one toolkit.

Analyse faces and speech, make a portrait or a video speak, stream it live,
prepare the field's datasets, and evaluate results with the field's metrics.
"""

from __future__ import annotations

__version__ = "0.1.0"

from avatarlab.errors import (
    AvatarLabError,
    MediaError,
    MissingWeightsError,
    NoAudioError,
    NoFaceError,
    NoVideoError,
)

__all__ = [
    "AvatarLabError",
    "MediaError",
    "MissingWeightsError",
    "NoAudioError",
    "NoFaceError",
    "NoVideoError",
    "__version__",
]
