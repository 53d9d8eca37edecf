"""Full-reference pixel metrics: MAE, MSE, PSNR and SSIM.

Conventions (the defaults reproduce scikit-image; the options reproduce mmagic/BasicSR):

- colour space: RGB, every channel (default), or ``y_channel=True``: BT.601 luma
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` in [16, 235], computed in float32
  as mmcv's ``rgb2ycbcr(img / 255., y_only=True) * 255.`` (the super-resolution papers'
  "PSNR-Y/SSIM-Y");
- data range: 255 for PSNR and SSIM (``data_range`` option); MAE and MSE are on
  intensities scaled to [0, 1] (``x / 255``), as mmagic reports them;
- crop: ``crop_border`` pixels dropped on each side after the Y conversion (mmagic's
  ``crop_border``; SR papers use the scale factor); 0 by default;
- PSNR: ``10 log10(data_range^2 / MSE)`` per frame, +inf for identical frames;
  equals ``skimage.metrics.peak_signal_noise_ratio``;
- SSIM: Wang et al. 2004: 11x11 Gaussian window, sigma 1.5 (scipy's kernel truncated
  at 3.5 sigma), population covariance, K1 = 0.01, K2 = 0.03, statistics on the 'valid'
  region only (the 5-pixel border where the window leaves the image is excluded), mean
  over that region, then over channels. This equals
  ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)`` (which filters with
  reflected borders and then crops the same 5 pixels) and mmagic/BasicSR's
  ``_ssim`` (``cv2.filter2D`` with ``[5:-5, 5:-5]``). mmagic runs it in float32 on
  float32 images, so its numbers differ from ours and scikit-image's by up to ~1e-5;
  BasicSR computes in float64 and agrees to ~1e-12.

Clip scores are the mean over frames of the per-frame values (as mmagic averages
images); ``per_frame()`` returns the frames of the last ``update`` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatarlab.errors import OptionError
from avatarlab.metrics._frames import check_crop, check_pair, prepare
from avatarlab.metrics.base import (
    HIGHER,
    LOWER,
    NEUTRAL,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)

#: SSIM constants of Wang et al. 2004 and their Gaussian window (scikit-image's settings).
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5


@dataclass(frozen=True)
class PixelOptions:
    """Conventions of the pixel metrics: colour space, border crop, data range."""

    y_channel: bool = False
    crop_border: int = 0
    data_range: float = 255.0

    def __post_init__(self) -> None:
        check_crop(self.crop_border)
        if not self.data_range > 0:
            raise OptionError(f"data_range must be > 0, got {self.data_range}")

    def describe(self) -> str:
        space = "Y (BT.601, float32 as mmcv)" if self.y_channel else "RGB"
        return f"{space}, crop {self.crop_border} px"


@lru_cache(maxsize=8)
def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian (``exp(-x^2 / 2 sigma^2)`` normalised), radius ``int(truncate sigma + .5)``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def _sq_and_abs_error(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame sum of squared and of absolute differences, exact for uint8 input."""
    n = p.shape[0]
    sq = np.empty(n)
    ab = np.empty(n)
    if p.dtype == np.uint8:
        for i in range(n):
            sq[i] = cv2.norm(p[i], r[i], cv2.NORM_L2SQR)
            ab[i] = cv2.norm(p[i], r[i], cv2.NORM_L1)
    else:
        d = p.astype(np.float64) - r.astype(np.float64)
        flat = d.reshape(n, -1)
        sq = np.einsum("ij,ij->i", flat, flat)
        ab = np.abs(flat).sum(axis=1)
    return sq, ab


def pixel_errors(
    pred: np.ndarray, ref: np.ndarray, options: PixelOptions = PixelOptions()
) -> dict[str, np.ndarray]:
    """Per-frame ``mse255`` (0..255 scale), ``mse`` and ``mae`` ([0, 1] scale), ``psnr``.

    ``pred``/``ref``: RGB uint8 ``(H, W, 3)`` or ``(N, H, W, 3)``. Returns ``(N,)`` float64
    arrays.
    """
    p, r = check_pair(pred, ref)
    p = prepare(p, options.y_channel, options.crop_border)
    r = prepare(r, options.y_channel, options.crop_border)
    count = p[0].size
    sq, ab = _sq_and_abs_error(p, r)
    mse255 = sq / count
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10((options.data_range**2) / mse255)
    return {
        "mse255": mse255,
        "mse": mse255 / 255.0**2,
        "mae": ab / count / 255.0,
        "psnr": psnr,
    }


def psnr(pred: np.ndarray, ref: np.ndarray, options: PixelOptions = PixelOptions()) -> np.ndarray:
    """Per-frame PSNR in dB ``(N,)`` (+inf where the frames are identical)."""
    return pixel_errors(pred, ref, options)["psnr"]


def ssim(pred: np.ndarray, ref: np.ndarray, options: PixelOptions = PixelOptions()) -> np.ndarray:
    """Per-frame mean SSIM ``(N,)`` of RGB uint8 frames under ``options`` (see module doc)."""
    from avatarlab.metrics._kernels import ssim_channel

    p, r = check_pair(pred, ref)
    p = np.ascontiguousarray(prepare(p, options.y_channel, options.crop_border))
    r = np.ascontiguousarray(prepare(r, options.y_channel, options.crop_border))
    if p.dtype != np.uint8:
        p = p.astype(np.float64)
        r = r.astype(np.float64)
    w = gaussian_window()  # 11 taps: the compiled kernel is specialised for them
    if min(p.shape[1:3]) < w.size:
        raise OptionError(
            f"SSIM needs frames of at least {w.size}x{w.size} pixels after the crop, "
            f"got {p.shape[2]}x{p.shape[1]}"
        )
    c1 = (SSIM_K1 * options.data_range) ** 2
    c2 = (SSIM_K2 * options.data_range) ** 2
    out = np.empty(p.shape[0])
    for i in range(p.shape[0]):
        chans = [ssim_channel(p[i], r[i], c, w, c1, c2) for c in range(p.shape[3])]
        out[i] = float(np.mean(chans))
    return out


class _FrameMetric(Metric):
    """Per-frame values accumulated over ``update`` calls; ``compute`` is their mean."""

    requires = Requirements(reference=True)
    #: Per-frame series accumulated (``compute`` returns their means unless overridden).
    series: tuple[str, ...] = ()

    def __init__(self, y_channel: bool = False, crop_border: int = 0, data_range: float = 255.0):
        self.options = PixelOptions(y_channel, crop_border, data_range)
        self.conventions = f"{type(self).conventions}; {self.options.describe()}"
        self.reset()

    def reset(self) -> None:
        self._values: dict[str, list[np.ndarray]] = {k: [] for k in self.series}
        self._last: dict[str, np.ndarray] = {}

    def _frame_values(self, pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if ref is None:
            raise OptionError(f"the {self.name} metric needs a reference video: pass one (ref)")
        vals = self._frame_values(pred, ref)
        self._last = {k: vals[k] for k in self.series}
        for k in self.series:
            self._values[k].append(vals[k])

    def per_frame(self) -> dict[str, np.ndarray]:
        """Values of the frames of the last ``update`` call, ``(N,)`` each."""
        return dict(self._last)

    def compute(self) -> dict[str, float]:
        out = {}
        for k in self.series:
            vals = np.concatenate(self._values[k]) if self._values[k] else np.zeros(0)
            out[k] = float(np.mean(vals)) if vals.size else math.nan
        return out


@register_metric("mae")
class MAEMetric(_FrameMetric):
    """Mean absolute error on intensities scaled to [0, 1], per frame then averaged."""

    name = "mae"
    keys = {"mae": LOWER}
    series = ("mae",)
    conventions = "MAE: mean |pred - ref| / 255 over pixels and channels, per-frame mean"

    def _frame_values(self, pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        return pixel_errors(pred, ref, self.options)


@register_metric("mse")
class MSEMetric(_FrameMetric):
    """Mean squared error on intensities scaled to [0, 1], per frame then averaged."""

    name = "mse"
    keys = {"mse": LOWER}
    series = ("mse",)
    conventions = "MSE: mean ((pred - ref) / 255)^2 over pixels and channels, per-frame mean"

    def _frame_values(self, pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        return pixel_errors(pred, ref, self.options)


@register_metric("psnr")
class PSNRMetric(_FrameMetric):
    """PSNR in dB per frame (scikit-image's definition), averaged over frames.

    Identical frames give +inf, which makes the mean +inf; ``compute`` therefore also
    reports ``psnr_pooled`` (PSNR of the MSE pooled over all frames, finite unless the
    whole clip is identical) and ``psnr_identical_frames``.
    """

    name = "psnr"
    keys = {"psnr": HIGHER, "psnr_pooled": HIGHER, "psnr_identical_frames": NEUTRAL}
    series = ("psnr", "mse255")
    conventions = "PSNR = 10 log10(data_range^2 / MSE) per frame (skimage), data range 255"

    def __init__(self, y_channel: bool = False, crop_border: int = 0, data_range: float = 255.0):
        super().__init__(y_channel, crop_border, data_range)
        self.conventions += f", data range {self.options.data_range:g}"

    def _frame_values(self, pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        return pixel_errors(pred, ref, self.options)

    def per_frame(self) -> dict[str, np.ndarray]:
        return {"psnr": self._last["psnr"]} if self._last else {}

    def compute(self) -> dict[str, float]:
        if not self._values["psnr"]:
            return {"psnr": math.nan, "psnr_pooled": math.nan, "psnr_identical_frames": 0.0}
        vals = np.concatenate(self._values["psnr"])
        mse = np.mean(np.concatenate(self._values["mse255"]))  # numpy: 1/0 -> inf, not an error
        with np.errstate(divide="ignore"):
            pooled = float(10 * np.log10(self.options.data_range**2 / mse))
        return {
            "psnr": float(np.mean(vals)),
            "psnr_pooled": pooled,
            "psnr_identical_frames": float(np.count_nonzero(np.isinf(vals))),
        }

    def notes(self, values: dict[str, float]) -> list[str]:
        identical = values.get("psnr_identical_frames", 0.0)
        if not identical > 0:
            return []
        return [
            f"psnr is +inf because {identical:.0f} frames equal the reference exactly; "
            "psnr_pooled (PSNR of the MSE pooled over the clip) is finite unless every "
            "frame is identical"
        ]


@register_metric("ssim")
class SSIMMetric(_FrameMetric):
    """Mean SSIM per frame (scikit-image / mmagic definition, see module doc), averaged."""

    name = "ssim"
    keys = {"ssim": HIGHER}
    series = ("ssim",)
    conventions = (
        "SSIM (Wang 2004): Gaussian 11x11 sigma 1.5, population covariance, K1 0.01, K2 0.03, "
        "valid region (5 px border excluded), mean over channels = skimage"
    )

    def _frame_values(self, pred: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        return {"ssim": ssim(pred, ref, self.options)}


__all__ = [
    "MAEMetric",
    "MSEMetric",
    "PSNRMetric",
    "PixelOptions",
    "SSIMMetric",
    "gaussian_window",
    "pixel_errors",
    "psnr",
    "ssim",
]
