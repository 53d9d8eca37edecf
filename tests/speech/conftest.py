"""Fixtures shared by the speech tests: real English speech from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarlab.media import read_audio

#: The first sentence of english_radio_8s.wav (a pause follows at 2.7-3.0 s): what
#: PocketSphinx's trigram recogniser hears, and a sensible sentence.
RADIO_EXCERPT_S = 2.85
RADIO_EXCERPT_TEXT = "Holidays are a time of celebrating with loved ones"


@pytest.fixture(scope="session")
def radio_audio(data_dir: Path) -> np.ndarray:
    """english_radio_8s.wav, 16 kHz mono float32 (8 s, speech from start to end)."""
    return read_audio(data_dir / "audio" / "english_radio_8s.wav", sample_rate=16000)


@pytest.fixture(scope="session")
def english_20s(data_dir: Path) -> np.ndarray:
    """The first 20 s of english_60s.wav (3 s of silence, then speech), 16 kHz mono."""
    return read_audio(data_dir / "audio" / "english_60s.wav", sample_rate=16000)[: 20 * 16000]
