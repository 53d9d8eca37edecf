"""Piecewise-affine backward warps of a frame region, vectorised.

A warp moves mesh vertices from ``src`` to ``dst`` (pixel positions); the image
follows affinely inside each triangle. For ``cv2.remap`` each output pixel needs
the source position it comes from, so the *deformed* triangles are rasterised:
every pixel in a deformed triangle takes the barycentric combination of that
triangle's source corners. Only triangles with a moving corner are rasterised;
every other pixel maps to itself, so the output outside the moving region is
bit-identical to the input and no seam can appear.

Rasterising runs on a grid of ``step`` pixels (the engine picks ``step`` so the
face spans about the crop size); the map is then interpolated to full
resolution and the frame is resampled once, at its own resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: A vertex moving less than this (pixels) counts as fixed.
MOVE_EPS = 1e-3
#: Barycentric slack so pixels on shared edges are never missed.
_EDGE_EPS = 1e-4


@dataclass(frozen=True)
class Region:
    """Axis-aligned pixel rectangle ``[x0, x1) x [y0, y1)`` of a frame."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @staticmethod
    def around(points: np.ndarray, frame_shape: tuple[int, ...], pad: int = 2) -> Region:
        """Bounding rectangle of ``(N, 2)`` points, padded and clipped to the frame."""
        h, w = frame_shape[:2]
        if len(points) == 0:
            return Region(0, 0, 0, 0)
        lo = np.floor(points.min(axis=0)).astype(int) - pad
        hi = np.ceil(points.max(axis=0)).astype(int) + pad + 1
        return Region(
            max(int(lo[0]), 0), max(int(lo[1]), 0), min(int(hi[0]), w), min(int(hi[1]), h)
        )

    def intersection(self, other: Region) -> Region:
        """The part of this rectangle inside ``other`` (possibly empty)."""
        return Region(
            max(self.x0, other.x0),
            max(self.y0, other.y0),
            min(self.x1, other.x1),
            min(self.y1, other.y1),
        )

    def union(self, other: Region) -> Region:
        if self.empty:
            return other
        if other.empty:
            return self
        return Region(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )


def moving_triangles(triangles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rows of ``triangles`` ``(T, 3)`` with a vertex whose offset ``(V, 2)`` is not ~0."""
    moving = np.abs(offsets).max(axis=1) > MOVE_EPS
    return triangles[moving[triangles].any(axis=1)]


def grid_shape(region: Region, step: float) -> tuple[int, int]:
    """``(rows, cols)`` of the grid covering ``region`` with points ``step`` pixels apart."""
    return int(np.ceil((region.height - 1) / step)) + 1, int(np.ceil((region.width - 1) / step)) + 1


def backward_map(
    src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, region: Region, step: float = 1.0
) -> np.ndarray:
    """Source position of every output pixel of ``region``: ``(H, W, 2)`` float32 (x, y).

    Args:
        src: ``(V, 2)`` vertex pixel positions in the source frame.
        dst: ``(V, 2)`` vertex pixel positions in the output frame.
        triangles: ``(T, 3)`` vertex indices; only these are rasterised (pass the
            moving ones); pixels outside all of them map to themselves.
        region: output rectangle to fill.
        step: grid spacing in pixels (>= 1); the grid map is interpolated bilinearly.
    """
    rows, cols = grid_shape(region, step)
    gy, gx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    grid = np.dstack([region.x0 + gx * step, region.y0 + gy * step]).astype(np.float32)
    if len(triangles):
        origin = np.array([region.x0, region.y0], dtype=np.float64)
        _rasterise(grid, (dst - origin) / step, src.astype(np.float32), triangles)
    if step == 1.0:
        return grid
    ys = np.arange(region.height, dtype=np.float32) / np.float32(step)
    xs = np.arange(region.width, dtype=np.float32) / np.float32(step)
    mx, my = np.meshgrid(xs, ys)
    return cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _rasterise(grid: np.ndarray, dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> None:
    """Write into ``grid`` ``(R, C, 2)`` the source positions of pixels inside ``triangles``.

    ``dst``: vertex positions in grid units; ``src``: source pixel positions. Each
    triangle's barycentric coordinates and source position are affine in the
    grid position, so one gather of 9 coefficients per candidate pixel suffices.
    """
    rows, cols = grid.shape[:2]
    a, b, c = dst[triangles[:, 0]], dst[triangles[:, 1]], dst[triangles[:, 2]]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    corners = np.stack([a, b, c], axis=1)
    lo = np.maximum(np.ceil(corners.min(axis=1) - _EDGE_EPS), 0).astype(np.int64)
    hi = np.minimum(np.floor(corners.max(axis=1) + _EDGE_EPS), [cols - 1, rows - 1]).astype(
        np.int64
    )
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    keep = (np.abs(det) > 1e-9) & (nx > 0) & (ny > 0)
    if not keep.any():
        return
    k = np.flatnonzero(keep)
    a, e1, e2, inv = a[k], e1[k], e2[k], 1.0 / det[k]
    # Barycentric (l1, l2) of grid point p relative to the box corner: l = G (p - lo) + g0.
    g = np.empty((len(k), 9), dtype=np.float64)
    g[:, 0], g[:, 1] = e2[:, 1] * inv, -e2[:, 0] * inv
    g[:, 3], g[:, 4] = -e1[:, 1] * inv, e1[:, 0] * inv
    rel = lo[k] - a
    g[:, 2] = g[:, 0] * rel[:, 0] + g[:, 1] * rel[:, 1]
    g[:, 5] = g[:, 3] * rel[:, 0] + g[:, 4] * rel[:, 1]
    tri = triangles[k]
    s0, s1, s2 = src[tri[:, 0]], src[tri[:, 1]], src[tri[:, 2]]
    g[:, 6:8] = s1 - s0
    g[:, 8] = 0.0
    count = nx[k] * ny[k]
    owner = np.repeat(np.arange(len(k)), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    dy, dx = np.divmod(offset, nx[k][owner])
    coef = np.take(g.astype(np.float32), owner, axis=0)
    fx, fy = dx.astype(np.float32), dy.astype(np.float32)
    l1 = coef[:, 0] * fx + coef[:, 1] * fy + coef[:, 2]
    l2 = coef[:, 3] * fx + coef[:, 4] * fy + coef[:, 5]
    inside = (l1 >= -_EDGE_EPS) & (l2 >= -_EDGE_EPS) & (l1 + l2 <= 1.0 + _EDGE_EPS)
    owner, l1, l2 = owner[inside], l1[inside], l2[inside]
    base = np.take(np.hstack([s0, s2 - s0, lo[k]]).astype(np.float32), owner, axis=0)
    pos = base[:, 0:2] + l1[:, None] * coef[inside, 6:8] + l2[:, None] * base[:, 2:4]
    flat = (
        (base[:, 5].astype(np.int64) + dy[inside]) * cols + base[:, 4].astype(np.int64) + dx[inside]
    )
    grid.reshape(-1, 2)[flat] = pos


def remap_region(frame: np.ndarray, source_xy: np.ndarray) -> np.ndarray:
    """Sample ``frame`` at ``source_xy`` ``(H, W, 2)`` (bilinear, edges replicated)."""
    return cv2.remap(
        frame,
        source_xy[..., 0],
        source_xy[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
