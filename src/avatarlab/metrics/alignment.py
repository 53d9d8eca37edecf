"""Putting a prediction on its reference's timeline and pixel grid; the pair's audio.

For each reference frame, the prediction frame with the nearest timestamp is taken
and resized to the reference's size (area filter when shrinking, bicubic when
enlarging). Audio for metrics is the given audio file, else the prediction's own
track, else the reference's, at 16 kHz.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarlab.errors import MediaError
from avatarlab.media import SPEECH_RATE
from avatarlab.metrics.pairing import Pair


@dataclass
class AlignedFrame:
    """One step of the reference timeline: the frames compared and where they came from.

    ``pred``/``ref``: ``(H, W, 3)`` uint8 RGB on the reference's grid (``ref`` None
    without a reference); ``index``/``t``: the reference frame and its time (s);
    ``pred_index``/``pred_t``: the prediction frame shown and its time (s).
    """

    index: int
    t: float
    pred: np.ndarray
    ref: np.ndarray | None
    pred_index: int
    pred_t: float


def resize_to(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize RGB ``frame`` to ``size`` (W, H): area filter shrinking, bicubic enlarging."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == size:
        return frame
    shrink = size[0] * size[1] < w * h
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def aligned_frames(
    pred: Path, ref: Path | None, pred_fps: float, size: tuple[int, int] | None
) -> Iterator[AlignedFrame]:
    """Stream the pair on the reference's timeline (nearest prediction timestamp).

    ``size``: (W, H) the prediction is resized to (None: as decoded). Without a
    reference the prediction's own frames are yielded. The stream stops at the
    reference's end, or when the reference runs more than half a prediction frame
    interval past the prediction's last frame.
    """
    from avatarlab.media import iter_frames

    if ref is None:
        for i, (frame, t) in enumerate(iter_frames(pred)):
            yield AlignedFrame(i, t, frame, None, i, t)
        return
    preds = iter_frames(pred)
    first = next(preds, None)
    if first is None:
        raise MediaError(f"{pred} has no frames")
    cur, cur_t, cur_i = first[0], first[1], 0
    nxt = next(preds, None)
    half = 0.5 / pred_fps if pred_fps > 0 else 0.02
    resized: np.ndarray | None = None
    for i, (ref_frame, t) in enumerate(iter_frames(ref)):
        while nxt is not None and abs(nxt[1] - t) < abs(cur_t - t):
            cur, cur_t = nxt
            cur_i += 1
            resized = None
            nxt = next(preds, None)
        if nxt is None and t - cur_t > half + 1e-6:
            return
        if resized is None:
            resized = resize_to(cur, size) if size is not None else cur
        yield AlignedFrame(i, t, resized, ref_frame, cur_i, cur_t)


def audio_envelope(audio: np.ndarray, rate: int, times: np.ndarray, fps: float) -> np.ndarray:
    """RMS of ``audio`` in a one-frame window centred on each time ``(N,)``; 0 outside."""
    x = np.asarray(audio, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    half = 0.5 * rate / fps
    lo = np.clip(np.round(times * rate - half).astype(np.int64), 0, len(x))
    hi = np.clip(np.round(times * rate + half).astype(np.int64), 0, len(x))
    span = np.maximum(hi - lo, 1)
    return np.sqrt(np.maximum(csum[hi] - csum[lo], 0.0) / span)


def load_audio(pair: Pair) -> tuple[np.ndarray | None, str]:
    """``(S,)`` float32 audio at 16 kHz for the pair's metrics and where it came from:
    the pair's audio file, else the prediction's track, else the reference's."""
    from avatarlab.errors import NoAudioError
    from avatarlab.media import read_audio

    if pair.audio is not None:
        return read_audio(pair.audio, SPEECH_RATE), f"audio file {pair.audio.name}"
    for role, path in (("prediction", pair.pred), ("reference", pair.ref)):
        if path is None:
            continue
        with contextlib.suppress(NoAudioError):
            return read_audio(path, SPEECH_RATE), f"{role}'s audio track"
    return None, "none"


__all__ = ["AlignedFrame", "aligned_frames", "audio_envelope", "load_audio", "resize_to"]
