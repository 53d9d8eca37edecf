"""Frame-batch plumbing shared by the image-quality metrics.

Metrics take one RGB uint8 frame ``(H, W, 3)`` or a batch ``(N, H, W, 3)``; these
helpers turn either into a batch, check that a prediction and its reference match,
and apply the conventions options (BT.601 Y channel, border crop).
"""

from __future__ import annotations

import numpy as np

from avatarlab.errors import OptionError

#: BT.601 studio-swing luma weights for RGB in [0, 1] -> Y in [16, 235] (MATLAB ``rgb2ycbcr``).
BT601_Y = (65.481, 128.553, 24.966)


def as_batch(frames: np.ndarray, what: str = "frames", channels: int | None = 3) -> np.ndarray:
    """``(N, H, W, C)`` view of one frame ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    ``channels``: required channel count (``None`` accepts any). Gray frames ``(H, W)``
    are accepted when ``channels`` is ``None`` and returned as ``(1, H, W, 1)``.
    """
    arr = np.asarray(frames)
    if arr.ndim == 2 and channels is None:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or (channels is not None and arr.shape[-1] != channels):
        want = f"(H, W, {channels}) or (N, H, W, {channels})" if channels else "(H, W[, C])"
        raise OptionError(f"{what} must be {want} arrays, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise OptionError(f"{what} is empty: pass at least one frame")
    return arr


def check_pair(pred: np.ndarray, ref: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Batches of a prediction and its reference, which must have the same shape and dtype."""
    if ref is None:
        raise OptionError("this metric compares with a reference video: pass one (ref)")
    p = as_batch(pred, "pred")
    r = as_batch(ref, "ref")
    if p.shape != r.shape:
        raise OptionError(
            f"pred {p.shape} and ref {r.shape} differ in shape: resample the prediction to the "
            "reference's size and frame count first (the eval runner does this)"
        )
    if p.dtype != r.dtype:
        raise OptionError(f"pred is {p.dtype} but ref is {r.dtype}: pass both as uint8 RGB")
    return p, r


def check_crop(crop_border: int) -> int:
    """Validate a border crop width in pixels."""
    if crop_border < 0:
        raise OptionError(f"crop_border must be >= 0 pixels, got {crop_border}")
    return int(crop_border)


def crop(frames: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` pixels on each side of ``(N, H, W, C)`` frames."""
    if border == 0:
        return frames
    if 2 * border >= min(frames.shape[1:3]):
        raise OptionError(
            f"crop_border={border} leaves nothing of {frames.shape[2]}x{frames.shape[1]} frames"
        )
    return frames[:, border:-border, border:-border]


def rgb_to_y(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB uint8 ``(N, H, W, 3)`` as ``(N, H, W, 1)`` float32 in [16, 235].

    Replays mmcv/BasicSR's ``rgb2ycbcr(img / 255., y_only=True) * 255.`` on float32
    input, including its float32 roundings, so Y-channel PSNR/SSIM/NIQE see the same
    numbers as mmagic and BasicSR.
    """
    img = frames.astype(np.float32) / np.float32(255.0)
    y = (np.dot(img, np.asarray(BT601_Y)) + 16.0) / 255.0
    return (y.astype(np.float32) * np.float32(255.0))[..., None]


def prepare(frames: np.ndarray, y_channel: bool, crop_border: int) -> np.ndarray:
    """Apply the colour-space and crop conventions to a batch (Y first, then the crop)."""
    out = rgb_to_y(frames) if y_channel else frames
    return crop(out, crop_border)
