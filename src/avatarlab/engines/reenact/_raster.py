"""Compiled inner loops of the reenact warp (numba): the head-motion grid and triangles.

Both fill a ``(rows, cols, 2)`` float32 grid of source positions in place, so a
frame's backward map costs one pass over its grid whatever the number of triangles
(the pure NumPy rasteriser of :mod:`avatarlab.engines.warp.field` gathers every
candidate pixel of every triangle, several times slower at this grid size).
Kernels are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np

EDGE_EPS = 1e-4
"""Barycentric slack so points on shared edges are never missed (as the warp engine's)."""


@numba.njit(cache=True, nogil=True, error_model="numpy")
def head_grid(
    out: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    inv: np.ndarray,
    centre: np.ndarray,
    axes: np.ndarray,
    reach: float,
) -> None:
    """``out[i, j]``: the source position of pixel ``(px[j], py[i])`` under the soft head motion.

    ``inv``: 2x3 inverse of the head similarity; its weight is 1 inside the ellipse
    ``centre``/``axes`` (pixels, in the source) and fades (smoothstep) to 0 at
    ``reach`` ellipse radii.
    """
    rows, cols = out.shape[0], out.shape[1]
    span = 1.0 / (reach - 1.0)
    for i in range(rows):
        y = py[i]
        for j in range(cols):
            x = px[j]
            qx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
            qy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
            r = np.sqrt(((qx - centre[0]) / axes[0]) ** 2 + ((qy - centre[1]) / axes[1]) ** 2)
            t = min(max((r - 1.0) * span, 0.0), 1.0)
            w = 1.0 - t * t * (3.0 - 2.0 * t)
            out[i, j, 0] = x + w * (qx - x)
            out[i, j, 1] = y + w * (qy - y)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def triangles(out: np.ndarray, dst: np.ndarray, src: np.ndarray, tris: np.ndarray) -> None:
    """Write into ``out`` the source position of every grid point inside a triangle.

    ``dst``: ``(V, 2)`` vertex positions in grid coordinates (column, row); ``src``:
    ``(V, 2)`` source pixels; ``tris``: ``(T, 3)`` vertex indices, drawn in order
    (later triangles over earlier ones). Degenerate triangles are skipped.
    """
    rows, cols = out.shape[0], out.shape[1]
    for k in range(tris.shape[0]):
        a, b, c = tris[k, 0], tris[k, 1], tris[k, 2]
        ax, ay = dst[a, 0], dst[a, 1]
        e1x, e1y = dst[b, 0] - ax, dst[b, 1] - ay
        e2x, e2y = dst[c, 0] - ax, dst[c, 1] - ay
        det = e1x * e2y - e1y * e2x
        if abs(det) <= 1e-9:
            continue
        x0 = max(int(np.ceil(min(ax, ax + e1x, ax + e2x) - EDGE_EPS)), 0)
        x1 = min(int(np.floor(max(ax, ax + e1x, ax + e2x) + EDGE_EPS)), cols - 1)
        y0 = max(int(np.ceil(min(ay, ay + e1y, ay + e2y) - EDGE_EPS)), 0)
        y1 = min(int(np.floor(max(ay, ay + e1y, ay + e2y) + EDGE_EPS)), rows - 1)
        if x1 < x0 or y1 < y0:
            continue
        inv = 1.0 / det
        sx, sy = src[a, 0], src[a, 1]
        f1x, f1y = src[b, 0] - sx, src[b, 1] - sy
        f2x, f2y = src[c, 0] - sx, src[c, 1] - sy
        for i in range(y0, y1 + 1):
            dy = i - ay
            for j in range(x0, x1 + 1):
                dx = j - ax
                l1 = (e2y * dx - e2x * dy) * inv
                l2 = (e1x * dy - e1y * dx) * inv
                if l1 >= -EDGE_EPS and l2 >= -EDGE_EPS and l1 + l2 <= 1.0 + EDGE_EPS:
                    out[i, j, 0] = sx + l1 * f1x + l2 * f2x
                    out[i, j, 1] = sy + l1 * f1y + l2 * f2y
