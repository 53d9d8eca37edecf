"""Built-in defaults that need no files from the user: a portrait and a sentence."""

from __future__ import annotations

import numpy as np

DEFAULT_SENTENCE = (
    "Hello! I am a talking avatar made by avatarlab. "
    "I can speak any text, move my lips in time, and blink while I talk."
)
DEFAULT_VOICE = "en-us"


def default_portrait() -> np.ndarray:
    """The bundled public-domain portrait (NASA's astronaut Eileen Collins, shipped
    inside scikit-image as ``skimage.data.astronaut``): RGB uint8 ``(512, 512, 3)``."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
