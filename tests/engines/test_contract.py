"""The contract every registered engine keeps: options, prepare, render, render_stream.

Parametrised over ``list_engines()``, so an engine is tested by being registered.
Engines that need weights get a tiny fill-rule checkpoint made here (``WEIGHTS``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatarlab.cli._options import field_docs
from avatarlab.engines import (
    ENGINES,
    Avatar,
    Driver,
    engine_drives,
    engine_options,
    get_engine,
    list_engines,
)
from avatarlab.errors import OptionError
from avatarlab.media import SPEECH_RATE, read_image


def _wav2lip_weights(folder: Path) -> dict[str, Any]:
    import torch

    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.wav2lip import Wav2Lip

    path = folder / "wav2lip_fill.pth"
    torch.save(fill_state_dict(Wav2Lip()).state_dict(), path)
    return {"checkpoint": str(path), "device": "cpu", "batch_size": 8}


def _liveportrait_weights(folder: Path) -> dict[str, Any]:
    from tests.engines._lp_weights import liveportrait_fill_weights

    return {"checkpoint": str(liveportrait_fill_weights()), "device": "cpu"}


WEIGHTS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "wav2lip": _wav2lip_weights,
    "liveportrait": _liveportrait_weights,
}
"""Engine name -> options that make it runnable without downloads (weights made by the test)."""

#: Engines whose test weights (a deterministic fill rule) draw no face: their frames are
#: checked for shape and count, not for looking like the source.
NO_FACE_WEIGHTS = {"liveportrait"}


def _speech(seconds: float) -> np.ndarray:
    """Voiced bursts at 16 kHz: loud enough to open a mouth, no recogniser needed to be right."""
    t = np.arange(int(seconds * SPEECH_RATE)) / SPEECH_RATE
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    return (0.3 * envelope * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def portrait(data_dir: Path) -> np.ndarray:
    return read_image(data_dir / "image" / "woman_photo.jpg")[::2, ::2].copy()


@pytest.mark.parametrize("name", list_engines())
def test_options_are_documented_frozen_dataclasses(name: str) -> None:
    cls = ENGINES.get(name)
    options = engine_options(name)
    assert options is cls.Options and cls.name == name
    assert dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen  # type: ignore[attr-defined]
    fields = [f.name for f in dataclasses.fields(options)]
    missing = [
        f.name
        for f in dataclasses.fields(options)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    assert missing == [], f"{name}: fields without a default"
    docs = field_docs(options)
    assert [f for f in fields if not docs.get(f)] == [], f"{name}: fields without a doc line"
    assert cls.still_only <= set(fields)
    with pytest.raises(OptionError, match="has no option"):
        get_engine(name, {"no_such_option": 1})


@pytest.mark.parametrize("name", list_engines())
def test_engine_declares_what_drives_it(name: str) -> None:
    assert ENGINES.get(name).drives == engine_drives(name) in ("speech", "motion")


@pytest.mark.parametrize("name", list_engines("motion"))
def test_motion_engine_follows_a_face(name: str, portrait: np.ndarray, tmp_path: Path) -> None:
    from avatarlab.engines.reenact import MotionDriver

    engine = get_engine(name, WEIGHTS[name](tmp_path) if name in WEIGHTS else None)
    avatar = engine.prepare(portrait)
    assert isinstance(avatar, Avatar)
    h, w = portrait.shape[:2]
    assert avatar.frame_size == (w, h)
    notes = avatar.describe()
    assert isinstance(notes, list) and all(isinstance(n, str) and n for n in notes)
    n = 1 if name in NO_FACE_WEIGHTS else 3  # full-size networks on a CPU: one frame
    frames = list(engine.render(avatar, MotionDriver(live=[portrait] * n)))
    assert len(frames) == n
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (h, w, 3)
    if name not in NO_FACE_WEIGHTS:  # driven by the source itself, frame 0 is the source
        diff = np.abs(frames[0].astype(np.int16) - portrait.astype(np.int16))
        assert float(diff.mean()) < 2.0
    with pytest.raises(OptionError):
        list(engine.render(avatar, Driver(audio=_speech(0.2), sample_rate=SPEECH_RATE)))


@pytest.mark.parametrize("name", list_engines("speech"))
def test_engine_renders_a_portrait(name: str, portrait: np.ndarray, tmp_path: Path) -> None:
    engine = get_engine(name, WEIGHTS[name](tmp_path) if name in WEIGHTS else None)
    avatar = engine.prepare(portrait)
    assert isinstance(avatar, Avatar)
    h, w = portrait.shape[:2]
    assert avatar.frame_size == (w, h)
    fps = float(avatar.fps)
    assert 1 <= fps <= 120
    notes = avatar.describe()
    assert isinstance(notes, list) and notes and all(isinstance(n, str) and n for n in notes)

    wav = _speech(0.6)
    frames = list(engine.render(avatar, Driver(audio=wav, sample_rate=SPEECH_RATE)))
    assert abs(len(frames) - math.ceil(0.6 * fps)) <= 1
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (h, w, 3)

    chunks = [wav[i : i + 1600] for i in range(0, len(wav), 1600)]
    lists = list(engine.render_stream(avatar, chunks, SPEECH_RATE))
    assert len(lists) == len(chunks) + 1 and all(isinstance(batch, list) for batch in lists)
    streamed = [frame for batch in lists for frame in batch]
    assert abs(len(streamed) - len(frames)) <= 1
    for frame in streamed:
        assert frame.dtype == np.uint8 and frame.shape == (h, w, 3)
