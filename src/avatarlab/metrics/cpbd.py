"""CPBD: Cumulative Probability of Blur Detection (Narvekar & Karam 2011), no reference.

Same numbers as the ``cpbd`` PyPI package (1.0.7, the implementation talking-head
papers cite), bit for bit, 100x+ faster: its per-pixel Python loops are compiled and
its Canny and Sobel steps replay scipy/scikit-image's arithmetic in the same order.

Conventions (the package's):

- input: grayscale as the package's command line reads images
  (``imread(path, mode='L')``, i.e. PIL's ``convert('L')``: ITU-R 601-2 luma
  ``(19595 R + 38470 G + 7471 B + 2^15) >> 16`` on uint8 RGB), values 0..255 as float64;
  a 2-D uint8 frame is taken as already gray;
- edges: scikit-image's ``canny`` (sigma 1, thresholds 0.1 / 0.2 on the 0..255 image,
  'constant' borders) decides which 64x64 blocks are edge blocks (more than 0.2 % of
  pixels on edges); the Octave-style Sobel (x direction, threshold 2 sqrt(mean strength^2),
  simple thinning) finds the edges whose widths are measured;
- widths: Marziliano's method along rows, for gradient angles that quantise to 0 or
  180 degrees, at most 101 pixels each side;
- blur probability per edge ``1 - exp(-(w / w_JNB)^3.6)`` with ``w_JNB`` = 5 for block
  contrast <= 50 and 3 above; CPBD = share of edges whose probability rounds to < 64 %;
- only whole 64x64 blocks from the top-left count (the right/bottom remainder is ignored).

Higher is sharper (0..1). A clip's score is the mean over its frames.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from avatarlab.errors import OptionError
from avatarlab.metrics._frames import as_batch
from avatarlab.metrics.base import HIGHER, EvalContext, Metric, Requirements, register_metric

#: The package's constants: block side, edge-block threshold, Weibull beta, JNB widths.
BLOCK = 64
EDGE_BLOCK_FRACTION = 0.002
BETA = 3.6
JNB_LOW_CONTRAST = 5.0  # block contrast <= 50
JNB_HIGH_CONTRAST = 3.0
#: Probabilities rounding (half to even) below this percentage count as "not blurred".
SHARP_PERCENT = 64
#: Canny defaults of scikit-image on a float image; the low one as its Cython float32.
CANNY_SIGMA = 1.0
CANNY_LOW = float(np.float32(0.1))
CANNY_HIGH = 0.2
_MAX_WIDTH = 2 * 101
_local = threading.local()


def _scipy_gaussian(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian kernel (same expression, so the same bits)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


@lru_cache(maxsize=8)
def _bleed(shape: tuple[int, int]) -> np.ndarray:
    """scikit-image's Canny bleed-over image: Gaussian of ones ('constant' borders) + eps."""
    from avatarlab.metrics._kernels import _gauss9_cols, _gauss9_rows

    w = _scipy_gaussian(CANNY_SIGMA)
    tmp = np.empty(shape)
    out = np.empty(shape)
    _gauss9_rows(np.ones(shape), w, tmp)
    _gauss9_cols(tmp, w, out)
    return out + np.finfo(np.float64).eps


class _Workspace:
    """Buffers of one frame size, reused by every CPBD call of a thread.

    Fresh multi-megabyte arrays per frame cost more in page faults than the arithmetic.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        rows, cols = shape
        self.gray = np.empty(shape)
        self.planes = np.empty((5, rows, cols))
        self.strength2 = np.empty(shape)
        self.padded = np.zeros((rows + 2, cols + 2))
        self.canny = np.empty(shape, dtype=np.uint8)
        self.sobel = np.empty(shape, dtype=np.uint8)
        self.widths = np.empty(shape, dtype=np.int32)
        self.stack = np.empty(rows * cols, dtype=np.int64)


def _workspace(shape: tuple[int, int]) -> _Workspace:
    ws = getattr(_local, "ws", None)
    if ws is None or ws.gray.shape != shape:
        ws = _local.ws = _Workspace(shape)
    return ws


@lru_cache(maxsize=1)
def _sharp_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each width 0..202: 1 when the blur probability rounds below 64 %, per JNB width."""
    widths = np.arange(_MAX_WIDTH + 1, dtype=np.float64)
    tables = []
    for jnb in (JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST):
        prob = 1 - np.exp(-(abs(widths / np.float64(jnb)) ** BETA))
        buckets = np.array([int(round(p * 100)) for p in prob])
        tables.append((buckets < SHARP_PERCENT).astype(np.int64))
    return tables[0], tables[1]


def to_gray(frame: np.ndarray) -> np.ndarray:
    """PIL ``convert('L')`` of an RGB uint8 frame as float64 ``(H, W)``; 2-D input passes through."""
    from avatarlab.metrics._kernels import gray_pil

    arr = np.asarray(frame)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise OptionError(f"CPBD takes RGB uint8 (H, W, 3) or gray (H, W) frames, got {arr.shape}")
    out = np.empty(arr.shape[:2])
    gray_pil(np.ascontiguousarray(arr), out)
    return out


def cpbd_gray(gray: np.ndarray) -> float:
    """CPBD of one grayscale image ``(H, W)`` with values 0..255 (float64 or uint8).

    Bit-identical to the package for integer-valued images (what it reads from files);
    for fractional values the Sobel sums may round differently.
    """

    img = np.ascontiguousarray(gray, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        raise OptionError(f"CPBD needs a 2-D image of at least 3x3 pixels, got {img.shape}")
    return _cpbd(img, _workspace((img.shape[0], img.shape[1])))


def _cpbd(img: np.ndarray, ws: _Workspace) -> float:
    from avatarlab.metrics import _kernels as k

    nms = k.canny_nms(img, _scipy_gaussian(CANNY_SIGMA), _bleed(img.shape), CANNY_LOW, ws.planes)
    flags = k.edge_blocks(
        nms, CANNY_HIGH, BLOCK, BLOCK * BLOCK * EDGE_BLOCK_FRACTION, ws.canny, ws.stack
    )
    k.sobel_strength2(img, ws.strength2)
    # np.mean on the same (H, W) array as the package: same pairwise sum, same threshold.
    thresh2 = 2 * np.sqrt(np.mean(ws.strength2))
    k.thin_edges(ws.strength2, thresh2, ws.padded, ws.sobel)
    k.marziliano_widths(img, ws.sobel, ws.widths)
    sharp5, sharp3 = _sharp_tables()
    sharp, total = k.block_counts(img, flags, ws.widths, BLOCK, sharp5, sharp3)
    return sharp / total if total else 0.0


def cpbd(frames: np.ndarray) -> np.ndarray:
    """Per-frame CPBD ``(N,)`` of RGB uint8 frames ``(H, W, 3)`` / ``(N, H, W, 3)``.

    Gray input (``(H, W)`` or ``(N, H, W, 1)``) is used as is.
    """
    from avatarlab.metrics._kernels import gray_pil

    batch = as_batch(frames, "frames", channels=None)
    if batch.shape[-1] not in (1, 3):
        raise OptionError(f"CPBD takes RGB or gray frames, got shape {batch.shape}")
    out = np.empty(batch.shape[0])
    for i, frame in enumerate(batch):
        if frame.shape[-1] == 1:
            out[i] = cpbd_gray(frame[..., 0])
            continue
        if frame.dtype != np.uint8:
            raise OptionError(f"CPBD takes uint8 RGB frames, got {frame.dtype}")
        if min(frame.shape[:2]) < 3:
            raise OptionError(f"CPBD needs frames of at least 3x3 pixels, got {frame.shape}")
        ws = _workspace(frame.shape[:2])
        gray_pil(np.ascontiguousarray(frame), ws.gray)
        out[i] = _cpbd(ws.gray, ws)
    return out


@register_metric("cpbd")
class CPBDMetric(Metric):
    """CPBD sharpness of the predicted frames (no reference needed), mean over frames.

    ``include_reference=True`` also scores the reference frames (``cpbd_ref``), the
    ground-truth row papers print beside the methods.
    """

    name = "cpbd"
    keys = {"cpbd": HIGHER, "cpbd_ref": HIGHER.only("include_reference=True")}
    requires = Requirements(reference=False)
    conventions = (
        "CPBD (cpbd package 1.0.7): PIL 'L' gray 0..255, skimage Canny sigma 1 for 64x64 edge "
        "blocks (>0.2 % edges), Sobel-x widths, beta 3.6, JNB 5/3, share of P(blur) < 64 %"
    )

    def __init__(self, include_reference: bool = False) -> None:
        self.include_reference = include_reference
        self.requires = Requirements(reference=include_reference)
        self.reset()

    def reset(self) -> None:
        self._pred: list[np.ndarray] = []
        self._ref: list[np.ndarray] = []

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        self._pred.append(cpbd(pred))
        if self.include_reference:
            if ref is None:
                raise OptionError("cpbd with include_reference needs the reference video")
            self._ref.append(cpbd(ref))

    def per_frame(self) -> dict[str, np.ndarray]:
        """CPBD of the frames of the last ``update`` call."""
        out = {"cpbd": self._pred[-1]} if self._pred else {}
        if self._ref:
            out["cpbd_ref"] = self._ref[-1]
        return out

    def compute(self) -> dict[str, float]:
        def mean(parts: list[np.ndarray]) -> float:
            return float(np.mean(np.concatenate(parts))) if parts else math.nan

        out = {"cpbd": mean(self._pred)}
        if self.include_reference:
            out["cpbd_ref"] = mean(self._ref)
        return out


__all__ = ["CPBDMetric", "cpbd", "cpbd_gray", "to_gray"]
