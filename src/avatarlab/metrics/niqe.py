"""NIQE: Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik 2013), no reference.

Follows the official MATLAB release (``computequality.m``) as BasicSR ports it
(``basicsr/metrics/niqe.py``, the version the super-resolution and talking-head papers
run), with the official pristine model (package data ``data/niqe_pristine.npz``, see
:func:`pristine_model`):

- input: BT.601 luma Y in [16, 235] computed as BasicSR/mmcv do (float32), then rounded
  to integers ("necessary for being consistent with MATLAB's result", BasicSR), then
  ``crop_border`` pixels dropped on each side (0 by default);
- the image is cut to whole 96x96 blocks from the top-left, no overlap;
- two scales: the image and its half-size version by MATLAB's ``imresize(im, 0.5)``
  (bicubic, a = -0.5, antialiasing kernel of width 8, symmetric padding), computed in
  float64 here (MATLAB works in double; BasicSR's port resizes in float32);
- MSCN coefficients ``(I - mu) / (sigma + 1)`` with a 7x7 Gaussian (sigma 7/6,
  ``fspecial``), 'replicate' borders, ``sigma = sqrt(|G * I^2 - mu^2|)``; coefficients
  below 1e-9 in magnitude are set to 0. In flat neighbourhoods the exact value is 0, but
  floating-point filters leave +-1e-14 residues whose signs enter the AGGD fits, so every
  implementation (MATLAB, BasicSR, ours) gets its own rounding-dependent value on frames
  with flat areas; zeroing them makes the result depend on the image only;
- per block and scale 18 features: GGD shape and scale of the MSCN values, and AGGD
  shape, mean, left and right scale of the products with the right, lower,
  lower-right and lower-left neighbours (circular shift inside the block); shapes are
  picked on the grid 0.2:0.001:10 as ``estimateaggdparam.m`` does;
- score: ``sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu))`` with the block
  features' mean (NaN-ignoring) and covariance (rows without NaN).

Lower is better. Tolerance (tests): on an image without flat areas we give 64.5256432
where a float64 port that reproduces MATLAB R2021a on BasicSR's ``baboon.png`` to 5e-7
(5.7295739 vs 5.72957338) froze 64.525643, and we equal a loop-by-loop float64 port of
BasicSR to 1e-9 once both zero the flat-area residues. Real compressed frames always hold
flat 7x7 neighbourhoods; there the references disagree among themselves through their
rounding residues, and our value lies within 0.5 % of that port without zeroing
(0.001 % to 0.2 % on the shared clips).
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import cv2
import numpy as np
from scipy.special import gamma

from avatarlab.errors import OptionError
from avatarlab.metrics._frames import as_batch, check_crop
from avatarlab.metrics.base import LOWER, EvalContext, Metric, Requirements, register_metric

#: Block side of the official model and its Gaussian (``fspecial('gaussian', 7, 7/6)``).
BLOCK = 96
WINDOW_SIZE = 7
WINDOW_SIGMA = 7 / 6
#: Shape grid of ``estimateaggdparam.m`` (``0.2:0.001:10``, 9801 values).
_GAM = np.arange(0.2, 10.001, 0.001)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
#: MSCN magnitudes below this are rounding residues of an exact 0 (see the module doc).
MSCN_ZERO = 1e-9
_local = threading.local()


#: NIQE's pristine multivariate Gaussian, package data: ``mu_prisparam`` (36,) and
#: ``cov_prisparam`` (36, 36) float64 of the MATLAB release (``modelparameters.mat``,
#: fitted on 125 pristine images by Mittal, Soundararajan & Bovik) as BasicSR ships them
#: (``basicsr/metrics/niqe_pris_params.npz``). Feature order per scale (18 values, scale
#: 1 then 2): GGD shape, GGD variance; then for the horizontal, vertical, main-diagonal
#: and anti-diagonal neighbour products: AGGD shape, mean, left scale, right scale.
PRISTINE_MODEL = "data/niqe_pristine.npz"


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The official ``(mu_prisparam (36,), cov_prisparam (36, 36))`` float64, loaded once."""
    from importlib.resources import files

    with (files("avatarlab.metrics") / PRISTINE_MODEL).open("rb") as f, np.load(f) as data:
        mu, cov = data["mu_prisparam"], data["cov_prisparam"]
    mu.setflags(write=False)
    cov.setflags(write=False)
    return mu, cov


@lru_cache(maxsize=1)
def gaussian_1d() -> np.ndarray:
    """1-D factor of ``fspecial('gaussian', 7, 7/6)`` (the 2-D window is its outer product)."""
    x = np.arange(WINDOW_SIZE) - (WINDOW_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * WINDOW_SIGMA**2))
    return g / g.sum()


@lru_cache(maxsize=1)
def _r_gam() -> np.ndarray:
    """``gamma(2/a)^2 / (gamma(1/a) gamma(3/a))`` on the shape grid (increasing in a)."""
    rec = np.reciprocal(_GAM)
    return np.square(gamma(rec * 2)) / (gamma(rec) * gamma(rec * 3))


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize``'s bicubic kernel (Keys, a = -0.5)."""
    ax = np.abs(x)
    ax2 = ax**2
    ax3 = ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=16)
def resize_weights(in_len: int, scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``imresize`` contributions for one axis: ``(weights (out, P), indices (out, P))``.

    Bicubic with antialiasing when shrinking; indices are 0-based with MATLAB's
    symmetric padding already applied; all-zero edge columns are dropped as MATLAB does.
    """
    out_len = math.ceil(in_len * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    ind = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - ind
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    keep = np.any(w != 0, axis=0)
    w, ind = w[:, keep], ind[:, keep]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    idx = aux[np.mod(ind.astype(np.int64) - 1, 2 * in_len)]  # ind is 1-based (MATLAB)
    return w, idx


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D float64 image."""
    from avatarlab.metrics._kernels import resize_separable

    wh, ih = resize_weights(img.shape[0])
    ww, iw = resize_weights(img.shape[1])
    return resize_separable(np.ascontiguousarray(img, dtype=np.float64), wh, ih, ww, iw)


def _scratch(shape: tuple[int, int]) -> np.ndarray:
    """``(5, H, W)`` float64 buffers for images of ``shape``, reused by a thread's calls.

    Planes: the cropped image, its local mean, mean of squares, squares, MSCN output.
    Fresh multi-megabyte temporaries per frame cost more in page faults than the filters.
    """
    bufs: dict[tuple[int, int], np.ndarray] | None = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(shape)
    if buf is None:
        if len(bufs) >= 4:  # two scales of at most two frame sizes
            bufs.clear()
        buf = bufs[shape] = np.empty((5, *shape))
    return buf


def mscn(img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a 2-D float64 image.

    ``out``: a C-contiguous float64 array of ``img``'s shape to write into (default: new).
    """
    from avatarlab.metrics._kernels import mscn_normalize

    img = np.ascontiguousarray(img, dtype=np.float64)  # contiguous: the kernel vectorises
    _, mu, sq, squares, _ = _scratch((img.shape[0], img.shape[1]))
    g = gaussian_1d()
    cv2.sepFilter2D(img, cv2.CV_64F, g, g, dst=mu, borderType=cv2.BORDER_REPLICATE)
    np.multiply(img, img, out=squares)
    cv2.sepFilter2D(squares, cv2.CV_64F, g, g, dst=sq, borderType=cv2.BORDER_REPLICATE)
    if out is None:
        out = np.empty_like(img)
    mscn_normalize(img, mu, sq, MSCN_ZERO, out)
    return out


def _nearest_shape(rhatnorm: np.ndarray) -> np.ndarray:
    """Index of ``argmin((r_gam - x)^2)`` for each ``x`` (first index on ties; 0 for NaN)."""
    r = _r_gam()
    hi = np.clip(np.searchsorted(r, rhatnorm), 1, r.size - 1)
    lo = hi - 1
    pick = np.where((r[lo] - rhatnorm) ** 2 <= (r[hi] - rhatnorm) ** 2, lo, hi)
    return np.where(np.isnan(rhatnorm), 0, pick)


def aggd_from_moments(m: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``estimateaggdparam`` of ``n`` values from their moments ``(..., 6)``.

    Moments: count and sum of squares of the negative values, of the positive values,
    sum of absolute values and of squares (zeros count only in the last two, as in the
    reference's ``vec(vec < 0)`` / ``vec(vec > 0)`` selections). Returns (alpha, beta_left,
    beta_right); empty sides give NaN and alpha falls back to the grid start, as
    ``argmin`` over NaN does.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(m[..., 1] / m[..., 0])
        right = np.sqrt(m[..., 3] / m[..., 2])
        ghat = left / right
        rhat = (m[..., 4] / n) ** 2 / (m[..., 5] / n)
        rnorm = (rhat * (ghat**3 + 1) * (ghat + 1)) / ((ghat**2 + 1) ** 2)
    alpha = _GAM[_nearest_shape(rnorm)]
    k = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * k, right * k


def block_features(norm: np.ndarray, block: int) -> np.ndarray:
    """18 NSS features per ``block`` x ``block`` tile of an MSCN image: ``(tiles, 18)``.

    Tiles in column-major order, like the reference's loops.
    """
    from avatarlab.metrics._kernels import tile_moments

    nbh, nbw = norm.shape[0] // block, norm.shape[1] // block
    moments = np.empty((nbh * nbw, 5, 6))
    tile_moments(np.ascontiguousarray(norm, dtype=np.float64), block, moments)
    alpha, bl, br = aggd_from_moments(moments, block * block)
    feats = [alpha[:, 0], (bl[:, 0] + br[:, 0]) / 2]
    for k in range(1, 5):
        mean = (br[:, k] - bl[:, k]) * (gamma(2 / alpha[:, k]) / gamma(1 / alpha[:, k]))
        feats += [alpha[:, k], mean, bl[:, k], br[:, k]]
    return np.stack(feats, axis=1)


def niqe_luma(y: np.ndarray) -> float:
    """NIQE of a 2-D luma image (float, 0..255, already rounded as the reference does)."""
    img = np.asarray(y, dtype=np.float64)
    nbh, nbw = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    if nbh * nbw < 2:
        raise OptionError(
            f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got a {img.shape[1]}x{img.shape[0]} "
            "image: use larger frames or a smaller crop_border"
        )
    buf = _scratch((nbh * BLOCK, nbw * BLOCK))
    np.copyto(buf[0], img[: nbh * BLOCK, : nbw * BLOCK])
    scale1 = block_features(mscn(buf[0], out=buf[4]), BLOCK)
    half = imresize_half(buf[0])
    scale2 = block_features(mscn(half, out=_scratch((half.shape[0], half.shape[1]))[4]), BLOCK // 2)
    return niqe_score(np.concatenate([scale1, scale2], axis=1))


def niqe_score(features: np.ndarray) -> float:
    """Distance of block features ``(blocks, 36)`` to the pristine model (NaN-aware as BasicSR).

    Mean over blocks ignoring NaN per feature; covariance over blocks without NaN;
    ``sqrt(d^T pinv((S_p + S) / 2) d)`` with ``d = mu_p - mu``.
    """
    mu_p, cov_p = pristine_model()
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nanmean(features, axis=0)
        cov = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    d = mu_p - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))


def niqe(frames: np.ndarray, crop_border: int = 0) -> np.ndarray:
    """Per-frame NIQE ``(N,)`` of RGB uint8 frames ``(H, W, 3)`` / ``(N, H, W, 3)``."""
    from avatarlab.metrics._kernels import luma_rounded

    batch = as_batch(frames, "frames")
    if batch.dtype != np.uint8:
        raise OptionError(f"NIQE takes RGB uint8 frames, got {batch.dtype}")
    border = check_crop(crop_border)
    out = np.empty(batch.shape[0])
    y = np.empty(batch.shape[1:3])
    for i, frame in enumerate(batch):
        luma_rounded(np.ascontiguousarray(frame), y)
        out[i] = niqe_luma(y[border : y.shape[0] - border, border : y.shape[1] - border])
    return out


@register_metric("niqe")
class NIQEMetric(Metric):
    """NIQE of the predicted frames (no reference), mean over frames; lower is better."""

    name = "niqe"
    keys = {"niqe": LOWER}
    requires = Requirements(reference=False)
    conventions = (
        "NIQE (MATLAB release via BasicSR): rounded BT.601 Y, 96x96 blocks, MATLAB bicubic "
        "half scale, 7x7 Gaussian sigma 7/6 MSCN, official pristine model"
    )

    def __init__(self, crop_border: int = 0) -> None:
        self.crop_border = check_crop(crop_border)
        self.conventions = f"{NIQEMetric.conventions}, crop {self.crop_border} px"
        self.reset()

    def reset(self) -> None:
        self._values: list[np.ndarray] = []

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        self._values.append(niqe(pred, self.crop_border))

    def per_frame(self) -> dict[str, np.ndarray]:
        """NIQE of the frames of the last ``update`` call."""
        return {"niqe": self._values[-1]} if self._values else {}

    def compute(self) -> dict[str, float]:
        if not self._values:
            return {"niqe": math.nan}
        return {"niqe": float(np.mean(np.concatenate(self._values)))}


__all__ = [
    "NIQEMetric",
    "block_features",
    "imresize_half",
    "mscn",
    "niqe",
    "niqe_luma",
    "niqe_score",
    "pristine_model",
]
