"""Compiled inner loops of the image-quality metrics (numba, float64).

- SSIM: separable Gaussian filtering fused with the SSIM map and its mean. Summation
  order differs from scikit-image's (reassociation allowed), which moves the mean SSIM
  by ~1e-15, far inside the 1e-6 conformance tolerance.
- CPBD: Canny edge map, Sobel edges, edge widths and block statistics. These replay the
  floating-point operations of scipy.ndimage / scikit-image / the ``cpbd`` package in
  the same order, without fast-math, so the edge maps are bit-identical to the
  reference's and CPBD equals it to the last bit.
- NIQE: BT.601 luma, MATLAB-style resampling and per-tile AGGD moments.

Kernels are compiled on first use (a few seconds each family) and cached on disk
(``cache=True``: next to this file, or numba's user cache where that is read-only).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Fast-math flags that keep NaN/inf semantics: reassociation lets LLVM vectorise sums.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _hfilter11(src: np.ndarray, out: np.ndarray, w: np.ndarray) -> None:
    """'Valid' correlation of a row with a symmetric 11-tap kernel, one pass."""
    w0, w1, w2, w3, w4, w5 = w[0], w[1], w[2], w[3], w[4], w[5]
    for j in range(out.shape[0]):
        out[j] = (
            src[j + 5] * w5
            + (src[j] + src[j + 10]) * w0
            + (src[j + 1] + src[j + 9]) * w1
            + (src[j + 2] + src[j + 8]) * w2
            + (src[j + 3] + src[j + 7]) * w3
            + (src[j + 4] + src[j + 6]) * w4
        )


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _vfilter11(h: np.ndarray, i: int, out: np.ndarray, w: np.ndarray) -> None:
    """Row ``i`` of the 'valid' vertical 11-tap filtering of row-filtered lines kept in a
    ring of 11 slots (input row ``q`` lives in slot ``q % 11``)."""
    w0, w1, w2, w3, w4, w5 = w[0], w[1], w[2], w[3], w[4], w[5]
    r0, r1, r2, r3, r4 = (
        h[i % 11],
        h[(i + 1) % 11],
        h[(i + 2) % 11],
        h[(i + 3) % 11],
        h[(i + 4) % 11],
    )
    r5, r6, r7, r8 = h[(i + 5) % 11], h[(i + 6) % 11], h[(i + 7) % 11], h[(i + 8) % 11]
    r9, r10 = h[(i + 9) % 11], h[(i + 10) % 11]
    for j in range(out.shape[0]):
        out[j] = (
            r5[j] * w5
            + (r0[j] + r10[j]) * w0
            + (r1[j] + r9[j]) * w1
            + (r2[j] + r8[j]) * w2
            + (r3[j] + r7[j]) * w3
            + (r4[j] + r6[j]) * w4
        )


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def ssim_channel(
    x: np.ndarray, y: np.ndarray, ch: int, w: np.ndarray, c1: float, c2: float
) -> float:
    """Mean SSIM of channel ``ch`` of ``x``/``y`` ``(H, W, C)`` over the 'valid' region.

    ``w``: the symmetric 11-tap Gaussian; population covariance, constants ``c1``,
    ``c2``. Works on ``s = x + y`` and ``d = x - y``: with ``us, ud`` their local means
    and ``vs, vd`` their local variances, SSIM = ((us^2 - ud^2 + 2 c1)(vs - vd + 2 c2)) /
    ((us^2 + ud^2 + 2 c1)(vs + vd + 2 c2)), algebraically the Wang et al. formula with
    four filtered planes instead of five. Rows stream through rings of 11 row-filtered
    lines, so the working set stays in cache.
    """
    rows, cols = x.shape[0], x.shape[1]
    nv = cols - 10
    hv = rows - 10
    hs = np.empty((11, nv))
    hd = np.empty((11, nv))
    hss = np.empty((11, nv))
    hdd = np.empty((11, nv))
    s = np.empty(cols)
    d = np.empty(cols)
    ss = np.empty(cols)
    dd = np.empty(cols)
    us = np.empty(nv)
    ud = np.empty(nv)
    ms = np.empty(nv)
    md = np.empty(nv)
    total = 0.0
    k1 = 2.0 * c1
    k2 = 2.0 * c2
    for q in range(rows):
        for j in range(cols):
            a = np.float64(x[q, j, ch])
            b = np.float64(y[q, j, ch])
            s[j] = a + b
            d[j] = a - b
            ss[j] = (a + b) * (a + b)
            dd[j] = (a - b) * (a - b)
        slot = q % 11
        _hfilter11(s, hs[slot], w)
        _hfilter11(d, hd[slot], w)
        _hfilter11(ss, hss[slot], w)
        _hfilter11(dd, hdd[slot], w)
        i = q - 10  # output row complete once its last input row is in the ring
        if i < 0:
            continue
        _vfilter11(hs, i, us, w)
        _vfilter11(hd, i, ud, w)
        _vfilter11(hss, i, ms, w)
        _vfilter11(hdd, i, md, w)
        row = 0.0
        for j in range(nv):
            us2 = us[j] * us[j]
            ud2 = ud[j] * ud[j]
            vs = ms[j] - us2
            vd = md[j] - ud2
            row += ((us2 - ud2 + k1) * (vs - vd + k2)) / ((us2 + ud2 + k1) * (vs + vd + k2))
        total += row
    return total / (hv * nv)


# --------------------------------------------------------------------------- CPBD


@numba.njit(cache=True, nogil=True, error_model="numpy")
def gray_pil(rgb: np.ndarray, out: np.ndarray) -> None:
    """PIL's ``convert('L')`` of RGB uint8 into ``out`` (float64):
    ``(R*19595 + G*38470 + B*7471 + 2^15) >> 16``."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    for i in range(rows):
        for j in range(cols):
            v = (
                np.int64(rgb[i, j, 0]) * 19595
                + np.int64(rgb[i, j, 1]) * 38470
                + np.int64(rgb[i, j, 2]) * 7471
                + 32768
            ) >> 16
            out[i, j] = np.float64(v)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gauss9_rows(img: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """scipy ``correlate1d(img, w, axis=0, mode='constant', cval=0)`` for a symmetric 9-tap ``w``.

    Same operation order as scipy's C loop: ``acc = x0*w[4]``, then
    ``acc += (x[-k] + x[+k]) * w[4-k]`` for k = 4..1, with 0 outside the image.
    """
    rows, cols = img.shape
    w0, w1, w2, w3, w4 = w[0], w[1], w[2], w[3], w[4]
    for i in range(rows):
        dst = out[i]
        if 4 <= i < rows - 4:
            c, a4, b4, a3, b3 = img[i], img[i - 4], img[i + 4], img[i - 3], img[i + 3]
            a2, b2, a1, b1 = img[i - 2], img[i + 2], img[i - 1], img[i + 1]
            for j in range(cols):
                acc = c[j] * w4
                acc += (a4[j] + b4[j]) * w0
                acc += (a3[j] + b3[j]) * w1
                acc += (a2[j] + b2[j]) * w2
                acc += (a1[j] + b1[j]) * w3
                dst[j] = acc
            continue
        src = img[i]
        for j in range(cols):
            dst[j] = src[j] * w4
        for k in range(4, 0, -1):
            wk = w[4 - k]
            if i - k >= 0 and i + k < rows:
                a = img[i - k]
                b = img[i + k]
                for j in range(cols):
                    dst[j] += (a[j] + b[j]) * wk
            elif i - k >= 0:
                a = img[i - k]
                for j in range(cols):
                    dst[j] += (a[j] + 0.0) * wk
            elif i + k < rows:
                b = img[i + k]
                for j in range(cols):
                    dst[j] += (0.0 + b[j]) * wk
            else:
                for j in range(cols):
                    dst[j] += 0.0 * wk


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gauss9_cols(img: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """scipy ``correlate1d(img, w, axis=1, mode='constant', cval=0)`` for a symmetric 9-tap ``w``."""
    rows, cols = img.shape
    w0, w1, w2, w3, w4 = w[0], w[1], w[2], w[3], w[4]
    for i in range(rows):
        src = img[i]
        dst = out[i]
        inner = dst[4:]
        for j in range(cols - 8):  # output j + 4: every tap inside the row
            acc = src[j + 4] * w4
            acc += (src[j] + src[j + 8]) * w0
            acc += (src[j + 1] + src[j + 7]) * w1
            acc += (src[j + 2] + src[j + 6]) * w2
            acc += (src[j + 3] + src[j + 5]) * w3
            inner[j] = acc
        edge = min(4, cols)
        for t in range(2 * edge):  # the (up to) 4 border pixels at each end
            j = t if t < edge else max(cols - 2 * edge + t, edge)
            if t >= edge and (j >= cols or cols - j > 4 or j < edge):
                continue
            acc = src[j] * w4
            for k in range(4, 0, -1):
                a = src[j - k] if j - k >= 0 else 0.0
                b = src[j + k] if j + k < cols else 0.0
                acc += (a + b) * w[4 - k]
            dst[j] = acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _diff_row(s: np.ndarray, out: np.ndarray) -> None:
    """``out = s*0 + (s[j-1] - s[j+1]) * -1`` along a row, reflecting at both ends."""
    n = s.shape[0]
    out[0] = s[0] * 0.0 + (s[0] - s[min(1, n - 1)]) * -1.0
    inner = out[1:]
    for j in range(n - 2):
        inner[j] = s[j + 1] * 0.0 + (s[j] - s[j + 2]) * -1.0
    if n > 1:
        out[n - 1] = s[n - 1] * 0.0 + (s[n - 2] - s[n - 1]) * -1.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _smooth_row(s: np.ndarray, out: np.ndarray) -> None:
    """``out = s*2 + (s[j-1] + s[j+1]) * 1`` along a row, reflecting at both ends."""
    n = s.shape[0]
    out[0] = s[0] * 2.0 + (s[0] + s[min(1, n - 1)]) * 1.0
    inner = out[1:]
    for j in range(n - 2):
        inner[j] = s[j + 1] * 2.0 + (s[j] + s[j + 2]) * 1.0
    if n > 1:
        out[n - 1] = s[n - 1] * 2.0 + (s[n - 2] + s[n - 1]) * 1.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sobel_pair(
    sm: np.ndarray, tj: np.ndarray, ti: np.ndarray, isob: np.ndarray, jsob: np.ndarray
) -> None:
    """``isob, jsob = ndi.sobel(sm, axis=0), ndi.sobel(sm, axis=1)`` (mode 'reflect').

    scipy correlates ``[-1, 0, 1]`` along the axis (``x*0 + (x[-1] - x[+1]) * -1``), then
    ``[1, 2, 1]`` across it (``x*2 + (x[-1] + x[+1]) * 1``); reflect repeats the edge pixel.
    ``tj``/``ti`` receive the first passes.
    """
    rows, cols = sm.shape
    for i in range(rows):
        s = sm[i]
        su = sm[i - 1 if i > 0 else 0]
        sd = sm[i + 1 if i < rows - 1 else rows - 1]
        b = ti[i]
        for j in range(cols):
            b[j] = s[j] * 0.0 + (su[j] - sd[j]) * -1.0
        _diff_row(s, tj[i])
    for i in range(rows):
        t = tj[i]
        tu = tj[i - 1 if i > 0 else 0]
        td = tj[i + 1 if i < rows - 1 else rows - 1]
        jo = jsob[i]
        for j in range(cols):
            jo[j] = t[j] * 2.0 + (tu[j] + td[j]) * 1.0
        _smooth_row(ti[i], isob[i])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _nms_row(
    mu: np.ndarray,
    mc: np.ndarray,
    md: np.ndarray,
    ai: np.ndarray,
    aj: np.ndarray,
    low: float,
    out: np.ndarray,
) -> None:
    """skimage's bilinear non-maximum suppression for the inner pixels of one row.

    ``mu, mc, md``: magnitude rows above, at and below; ``ai, aj``: the row's Sobel
    responses along axes 0 and 1; writes ``out[1:-1]``. Branch-free form of the Cython
    loop (so it vectorises): the four direction cases only choose which neighbours are
    interpolated, and in every case the weight is min(|ai|, |aj|) / max(|ai|, |aj|).
    """
    n = mc.shape[0] - 2
    dst = out[1:]
    for y in range(n):
        m = mc[y + 1]
        gi = ai[y + 1]
        gj = aj[y + 1]
        abs_i = abs(gi)
        abs_j = abs(gj)
        same = (gi <= 0) == (gj <= 0)  # both gradients of one sign
        steep = (abs_i > abs_j) if same else (abs_i >= abs_j)
        wgt = min(abs_i, abs_j) / max(abs_i, abs_j)
        # Every neighbour is loaded unconditionally so the choices below are plain selects.
        up = mu[y + 1]
        down = md[y + 1]
        left = mc[y]
        right = mc[y + 2]
        up_left = mu[y]
        up_right = mu[y + 2]
        down_left = md[y]
        down_right = md[y + 2]
        n11 = (down if same else up) if steep else right
        n21 = (up if same else down) if steep else left
        n12 = down_right if same else up_right
        n22 = up_left if same else down_left
        keep = (
            (m >= low) & (n12 * wgt + n11 * (1.0 - wgt) <= m) & (n22 * wgt + n21 * (1.0 - wgt) <= m)
        )
        dst[y] = m if keep else 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def canny_nms(
    img: np.ndarray, w: np.ndarray, bleed: np.ndarray, low: float, ws: np.ndarray
) -> np.ndarray:
    """scikit-image ``canny(img)``'s thresholded non-maximum-suppressed magnitude, bit for bit.

    Sigma 1, mode 'constant', no mask. ``w``: scipy's 9-tap Gaussian for sigma 1;
    ``bleed``: the same filter applied to an image of ones, plus float64 eps
    (skimage's bleed-over correction); ``low``: the threshold as the float32 skimage's
    Cython passes (0.1f). ``ws``: workspace ``(5, H, W)`` float64, reused across calls
    (fresh multi-megabyte buffers cost more in page faults than the arithmetic).
    Returns the plane of ``ws`` holding the result.
    """
    rows, cols = img.shape
    _gauss9_rows(img, w, ws[0])
    smoothed = ws[1]
    _gauss9_cols(ws[0], w, smoothed)
    for i in range(rows):
        sr = smoothed[i]
        br = bleed[i]
        for j in range(cols):
            sr[j] /= br[j]
    isob = ws[4]
    jsob = ws[3]
    _sobel_pair(smoothed, ws[0], ws[2], isob, jsob)
    mag = ws[0]
    for i in range(rows):
        mi = mag[i]
        ir = isob[i]
        jr = jsob[i]
        for j in range(cols):
            m = ir[j] * ir[j]
            m += jr[j] * jr[j]
            mi[j] = math.sqrt(m)
    nms = ws[1]
    nms[0, :] = 0.0
    nms[rows - 1, :] = 0.0
    for x in range(1, rows - 1):
        _nms_row(mag[x - 1], mag[x], mag[x + 1], isob[x], jsob[x], low, nms[x])
        nms[x, 0] = 0.0
        nms[x, cols - 1] = 0.0
    return nms


@numba.njit(cache=True, nogil=True, error_model="numpy")
def hysteresis(nms: np.ndarray, high: float, edges: np.ndarray, stack: np.ndarray) -> None:
    """skimage's double threshold: keep 8-connected segments of ``nms > 0`` holding a pixel
    ``>= high``. Writes the uint8 edge map into ``edges``; ``stack``: ``(H*W,)`` int64."""
    rows, cols = nms.shape
    edges[:, :] = 0
    top = 0
    for i in range(rows):
        for j in range(cols):
            if nms[i, j] >= high and edges[i, j] == 0:
                edges[i, j] = 1
                stack[top] = i * cols + j
                top += 1
                while top > 0:
                    top -= 1
                    p = stack[top]
                    pi = p // cols
                    pj = p - pi * cols
                    for qi in range(max(pi - 1, 0), min(pi + 2, rows)):
                        for qj in range(max(pj - 1, 0), min(pj + 2, cols)):
                            if edges[qi, qj] == 0 and nms[qi, qj] > 0:
                                edges[qi, qj] = 1
                                stack[top] = qi * cols + qj
                                top += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def edge_blocks(
    nms: np.ndarray,
    high: float,
    block: int,
    min_edges: float,
    edges: np.ndarray,
    stack: np.ndarray,
) -> np.ndarray:
    """Which ``block`` x ``block`` tiles hold more than ``min_edges`` Canny edge pixels.

    Exact without the hysteresis pass where possible: a tile's edge count lies between
    its count of strong pixels (``>= high``, always edges) and of candidates (``> 0``);
    only when some tile's bounds straddle the threshold is the full edge map traced.
    """
    nbr = nms.shape[0] // block
    nbc = nms.shape[1] // block
    strong = np.zeros((nbr, nbc), dtype=np.int64)
    weak = np.zeros((nbr, nbc), dtype=np.int64)
    for i in range(nbr * block):
        row = nms[i]
        bi = i // block
        for bj in range(nbc):
            cs = 0
            cw = 0
            for j in range(bj * block, (bj + 1) * block):
                v = row[j]
                cs += v >= high
                cw += v > 0
            strong[bi, bj] += cs
            weak[bi, bj] += cw
    flags = np.empty((nbr, nbc), dtype=np.bool_)
    undecided = False
    for bi in range(nbr):
        for bj in range(nbc):
            flags[bi, bj] = strong[bi, bj] > min_edges
            if not flags[bi, bj] and weak[bi, bj] > min_edges:
                undecided = True
    if undecided:
        hysteresis(nms, high, edges, stack)
        for bi in range(nbr):
            for bj in range(nbc):
                count = 0
                for i in range(bi * block, (bi + 1) * block):
                    for j in range(bj * block, (bj + 1) * block):
                        count += edges[i, j]
                flags[bi, bj] = count > min_edges
    return flags


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sobel_strength2(img: np.ndarray, out: np.ndarray) -> None:
    """Squared response of the cpbd package's Octave-style Sobel (``convolve(img, h1.T)``).

    The kernel is ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]] / 8`` (mode 'reflect'); for
    integer-valued images every product and sum is exact, so any evaluation order gives
    the reference's values.
    """
    rows, cols = img.shape
    d = np.empty((3, cols))
    for i in range(rows):
        for k in range(3):
            s = img[min(max(i + k - 1, 0), rows - 1)]
            dk = d[k]
            dk[0] = s[min(1, cols - 1)] - s[0]
            inner = dk[1:]
            for j in range(cols - 2):
                inner[j] = s[j + 2] - s[j]
            if cols > 1:
                dk[cols - 1] = s[cols - 1] - s[cols - 2]
        o = out[i]
        for j in range(cols):
            v = (d[0, j] + 2.0 * d[1, j] + d[2, j]) / 8.0
            o[j] = v * v


@numba.njit(cache=True, nogil=True, error_model="numpy")
def thin_edges(strength2: np.ndarray, thresh2: float, s: np.ndarray, edges: np.ndarray) -> None:
    """The cpbd package's ``_simple_thinning`` of the thresholded Sobel strength.

    ``s``: workspace ``(H + 2, W + 2)`` (a zero frame, as the package pads with zeros);
    writes the uint8 edge map into ``edges``.
    """
    rows, cols = strength2.shape
    s[0, :] = 0.0
    s[rows + 1, :] = 0.0
    for i in range(rows):
        row = s[i + 1]
        src = strength2[i]
        row[0] = 0.0
        row[cols + 1] = 0.0
        inner = row[1:]
        for j in range(cols):
            v = src[j]
            inner[j] = 0.0 if v <= thresh2 else v
    for i in range(rows):
        up = s[i]
        mid = s[i + 1]
        down = s[i + 2]
        e = edges[i]
        for j in range(cols):
            v = mid[j + 1]
            horiz = (v > mid[j]) & (v > mid[j + 2])
            vert = (v > up[j + 1]) & (v > down[j + 1])
            e[j] = horiz | vert


#: tan(22.5 deg) bounds with a margin far above rounding error: between them the
#: quantised gradient angle is decided with atan2 exactly as the package does.
_TAN_LO = 0.41421356 - 1e-3
_TAN_HI = 0.41421356 + 1e-3


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _horizontal_class(gx: float, gy: float) -> int:
    """The package's quantised angle ``45 * round(degrees(atan2(gy, gx)) / 45)`` as a class.

    1: angle 0 (also every ``gx == 0``, where the package leaves the angle at 0),
    -1: angle +-180, 0: any other angle (no width is measured).
    """
    if gx == 0.0:
        return 1
    ratio = abs(gy) / abs(gx)
    if ratio < _TAN_LO:
        return 1 if gx > 0 else -1
    if ratio > _TAN_HI:
        return 0
    q = 45.0 * np.round(math.atan2(gy, gx) * (180.0 / math.pi) / 45.0)
    if q == 0.0:
        return 1
    if q == 180.0 or q == -180.0:
        return -1
    return 0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _walk(row: np.ndarray, col: int, step: int, rising: bool) -> int:
    """Width on one side of an edge pixel as the cpbd package's margin loop counts it.

    Walks from ``col`` in direction ``step`` while the intensity keeps changing in the
    edge's direction (``rising``: each next pixel is larger); at most 101 steps.
    """
    cols = row.shape[0]
    margin = 0
    while margin <= 100:
        inner = col + step * (1 + margin)
        outer = col + step * (2 + margin)
        if outer < 0 or outer >= cols:
            break
        diff = row[outer] - row[inner]
        if rising:
            if diff <= 0:
                break
        elif diff >= 0:
            break
        margin += 1
    return min(margin, 100) + 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _any_angle(img: np.ndarray) -> bool:
    """Whether ``np.any(edge_angles)`` holds in the package: some ``atan2(gy, gx) != 0``
    with ``gx != 0`` (``np.gradient``: central differences, one-sided at the borders)."""
    rows, cols = img.shape
    if rows < 2 or cols < 2:
        return False
    for i in range(rows):
        r = img[i]
        for j in range(cols):
            if j == 0:
                gx = r[1] - r[0]
            elif j == cols - 1:
                gx = r[cols - 1] - r[cols - 2]
            else:
                gx = (r[j + 1] - r[j - 1]) / 2.0
            if gx == 0.0:
                continue
            if gx < 0.0:
                return True
            if i == 0:
                gy = img[1, j] - img[0, j]
            elif i == rows - 1:
                gy = img[rows - 1, j] - img[rows - 2, j]
            else:
                gy = (img[i + 1, j] - img[i - 1, j]) / 2.0
            if gy != 0.0:
                return True
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def marziliano_widths(img: np.ndarray, sobel_edges: np.ndarray, widths: np.ndarray) -> None:
    """Edge widths of the cpbd package's ``marziliano_method`` (0 where no width).

    Widths are measured along rows at Sobel edge pixels off the image border whose
    quantised gradient angle is 0 or +-180 (see ``_horizontal_class``), and only if some
    angle in the image is non-zero (the package's ``np.any(edge_angles)``).
    """
    rows, cols = img.shape
    widths[:, :] = 0
    if not _any_angle(img):
        return
    for r in range(1, rows - 1):
        row = img[r]
        edge = sobel_edges[r]
        for c in range(1, cols - 1):
            if not edge[c]:
                continue
            gx = (row[c + 1] - row[c - 1]) / 2.0
            gy = (img[r + 1, c] - img[r - 1, c]) / 2.0
            cls = _horizontal_class(gx, gy)
            if cls == -1:
                widths[r, c] = _walk(row, c, -1, True) + _walk(row, c, 1, False)
            elif cls == 1:
                widths[r, c] = _walk(row, c, -1, False) + _walk(row, c, 1, True)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def block_counts(
    img: np.ndarray,
    flags: np.ndarray,
    widths: np.ndarray,
    block: int,
    sharp5: np.ndarray,
    sharp3: np.ndarray,
) -> tuple[int, int]:
    """(edges whose blur probability rounds below 64 %, all edges) over the edge blocks.

    ``flags``: the edge blocks (:func:`edge_blocks`); a block's just-noticeable width is
    5 when its contrast (max - min) is at most 50, else 3; ``sharp5[w]``/``sharp3[w]``
    say whether width ``w`` counts as sharp.
    """
    sharp = 0
    total = 0
    for bi in range(flags.shape[0]):
        for bj in range(flags.shape[1]):
            if not flags[bi, bj]:
                continue
            r0 = bi * block
            c0 = bj * block
            lo = img[r0, c0]
            hi = img[r0, c0]
            for i in range(r0, r0 + block):
                row = img[i]
                for j in range(c0, c0 + block):
                    lo = min(lo, row[j])
                    hi = max(hi, row[j])
            table = sharp5 if int(hi - lo) <= 50 else sharp3
            for i in range(r0, r0 + block):
                wrow = widths[i]
                for j in range(c0, c0 + block):
                    wd = wrow[j]
                    if wd != 0:
                        total += 1
                        sharp += table[wd]
    return sharp, total


# --------------------------------------------------------------------------- NIQE


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _moments_row(v: np.ndarray, m: np.ndarray) -> None:
    """Add a row of values to moments ``m``:
    [n < 0, sum v^2 over v < 0, n > 0, sum v^2 over v > 0, sum |v|, sum v^2]."""
    n_neg = 0.0
    s_neg = 0.0
    n_pos = 0.0
    s_pos = 0.0
    s_abs = 0.0
    s_sq = 0.0
    for c in range(v.shape[0]):
        x = v[c]
        sq = x * x
        neg = x < 0
        pos = x > 0
        n_neg += neg
        s_neg += sq if neg else 0.0
        n_pos += pos
        s_pos += sq if pos else 0.0
        s_abs += abs(x)
        s_sq += sq
    m[0] += n_neg
    m[1] += s_neg
    m[2] += n_pos
    m[3] += s_pos
    m[4] += s_abs
    m[5] += s_sq


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def tile_moments(norm: np.ndarray, block: int, out: np.ndarray) -> None:
    """AGGD moments of each ``block`` x ``block`` tile of an MSCN image and of its products
    with the circularly shifted tile (``np.roll`` by (0, 1), (1, 0), (1, 1), (1, -1)).

    ``out``: ``(tiles, 5, 6)``, tiles in column-major order (the reference's loop order);
    the 6 moments are those of :func:`_moments_row`. Sums are reassociated (fast-math):
    they differ from numpy's pairwise sums by ~1e-16 relative.
    """
    nbh = norm.shape[0] // block
    nbw = norm.shape[1] // block
    out[:, :, :] = 0.0
    prod = np.empty((4, block))
    for tj in range(nbw):
        for ti in range(nbh):
            m = out[tj * nbh + ti]
            r0 = ti * block
            c0 = tj * block
            for r in range(block):
                row = norm[r0 + r, c0 : c0 + block]
                up = norm[r0 + (r - 1) % block, c0 : c0 + block]
                # products with the left, upper, upper-left and upper-right neighbours
                prod[0, 0] = row[0] * row[block - 1]
                prod[2, 0] = row[0] * up[block - 1]
                for c in range(1, block):
                    prod[0, c] = row[c] * row[c - 1]
                    prod[2, c] = row[c] * up[c - 1]
                for c in range(block):
                    prod[1, c] = row[c] * up[c]
                for c in range(block - 1):
                    prod[3, c] = row[c] * up[c + 1]
                prod[3, block - 1] = row[block - 1] * up[0]
                _moments_row(row, m[0])
                for k in range(4):
                    _moments_row(prod[k], m[k + 1])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mscn_normalize(
    img: np.ndarray, mu: np.ndarray, sq: np.ndarray, zero: float, out: np.ndarray
) -> None:
    """MSCN coefficients ``(img - mu) / (sqrt(|sq - mu^2|) + 1)`` from the local mean ``mu``
    and mean of squares ``sq``; magnitudes below ``zero`` become 0. One pass, the same
    IEEE operations in the same order as the NumPy expression (no fast-math): same bits."""
    for i in range(img.shape[0]):
        x = img[i]
        m = mu[i]
        q = sq[i]
        o = out[i]
        for j in range(img.shape[1]):
            v = (x[j] - m[j]) / (math.sqrt(abs(q[j] - m[j] * m[j])) + 1.0)
            o[j] = 0.0 if abs(v) < zero else v


def _luma_terms() -> np.ndarray:
    """``(3, 256)``: the float64 products ``float64(float32(v) / 255) * w`` for each BT.601
    weight ``w`` and uint8 value ``v`` (the first operations of :func:`luma_rounded`)."""
    v = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64)
    return np.stack([v * 65.481, v * 128.553, v * 24.966])


_LUMA_TERMS = _luma_terms()


@numba.njit(cache=True, nogil=True, error_model="numpy")
def luma_rounded(rgb: np.ndarray, out: np.ndarray) -> None:
    """BasicSR's NIQE input: mmcv's float32 BT.601 Y of RGB uint8, rounded (half to even).

    Same arithmetic as :func:`avatarlab.metrics._frames.rgb_to_y` (float32 /255, float64
    weighted sum + 16, /255, float32, *255) followed by ``round``; the per-channel
    products come from a table (:func:`_luma_terms`), the same values 3x faster.
    """
    s255 = np.float32(255.0)
    tr, tg, tb = _LUMA_TERMS[0], _LUMA_TERMS[1], _LUMA_TERMS[2]
    for i in range(rgb.shape[0]):
        row = rgb[i]
        o = out[i]
        for j in range(rgb.shape[1]):
            y = np.float32((tr[row[j, 0]] + tg[row[j, 1]] + tb[row[j, 2]] + 16.0) / 255.0)
            o[j] = np.round(np.float32(y * s255))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def resize_separable(
    img: np.ndarray, wh: np.ndarray, ih: np.ndarray, ww: np.ndarray, iw: np.ndarray
) -> np.ndarray:
    """``out = Wh @ img @ Ww.T`` for sparse resampling weights given as (weights, indices)
    per output row/column (MATLAB ``imresize``'s contributions), rows first."""
    rows = np.zeros((wh.shape[0], img.shape[1]))
    for i in range(wh.shape[0]):
        dst = rows[i]
        for k in range(wh.shape[1]):
            wk = wh[i, k]
            src = img[ih[i, k]]
            for j in range(img.shape[1]):
                dst[j] += wk * src[j]
    out = np.empty((wh.shape[0], ww.shape[0]))
    for i in range(wh.shape[0]):
        src = rows[i]
        for j in range(ww.shape[0]):
            acc = 0.0
            for k in range(ww.shape[1]):
                acc += ww[j, k] * src[iw[j, k]]
            out[i, j] = acc
    return out
