"""Warp a source frame so its face mesh lands on a target mesh, head and background following.

One backward map per frame, sampled once from the source:

- inside the *ring* (the face outline pushed out by ``topology.RING_SCALE``) a
  piecewise-affine map over the mesh triangles (:func:`reenact_triangles`: the warp
  engine's face surface and band, a strip across the mouth, and a fan in each eye
  around the iris centre so the gaze can move), drawn far triangles first so the
  near side of a turned head covers the far side;
- outside it a soft similarity ``A`` (fitted to the rigid points' motion): the
  ring moves by exactly ``A``, so the two maps agree on the ring and nothing tears
  at the face border; the weight of ``A`` is 1 up to an ellipse around the ring and
  fades to 0 at ``HEAD_REACH`` ellipse radii, so hair, neck and background follow
  the head and the frame's far edges stay put (the warp engine's ``HeadWarp`` idea).

The mouth interior is drawn between the target lips with the warp engine's
:func:`~avatarlab.engines.warp.mouth.render_interior` when they part wider than
the source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatarlab.engines.warp import field as fld
from avatarlab.engines.warp import topology as tp
from avatarlab.engines.warp.mouth import (
    EDGE_SOFTNESS_PX,
    MouthGeometry,
    MouthTexture,
    render_interior,
)
from avatarlab.face import topology as T
from avatarlab.face.canonical import RIGID_POINTS

N_MESH = T.NUM_MESH_POINTS
RING_START = N_MESH
"""Vertex index of the first ring point (vertices: 478 mesh points, then the ring)."""
HEAD_REACH = 1.9
"""The head's motion fades to nothing at this many radii of the ellipse around the ring."""
_FADE_STEP = 4
"""Grid spacing (pixels) the smooth head map is computed on before upsampling."""
MIN_GAP_CM = 0.03
"""Target lip openings below this (beyond the source's own) draw no interior."""


def _mouth_strip() -> list[tuple[int, int, int]]:
    a, b = tp.MOUTH_INNER_CORNERS
    up, low = tp.MOUTH_UPPER, tp.MOUTH_LOWER
    tris = [(a, up[0], low[0])]
    for k in range(len(up) - 1):
        tris += [(up[k], up[k + 1], low[k + 1]), (up[k], low[k + 1], low[k])]
    return tris + [(up[-1], b, low[-1])]


def eye_triangles(points: np.ndarray) -> np.ndarray:
    """Triangles filling both eye openings of a source mesh ``(478, 2)``, iris included.

    Per eye: Delaunay over its outline, the iris centre and the iris's two horizontal
    extremes (the top and bottom ones are usually under the lids), keeping the
    triangles inside the outline, so a moving iris slides as a disc over the sclera.
    """
    from matplotlib.path import Path as PolyPath
    from scipy.spatial import Delaunay

    out = []
    for loop, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS), (T.LEFT_EYE, T.LEFT_IRIS)):
        centre, ring = iris[0], np.array(iris[1:])
        ends = ring[np.argsort(np.abs(points[ring, 0] - points[centre, 0]))[-2:]]
        outline = points[list(loop)]
        inner = [i for i in (centre, *ends) if PolyPath(outline).contains_point(points[i])]
        ids = np.array([*loop, *inner])
        try:
            simplices = Delaunay(points[ids]).simplices
        except Exception:  # degenerate (closed) eye: a fan from the first corner
            simplices = np.array([[0, k, k + 1] for k in range(1, len(loop) - 1)])
        keep = PolyPath(outline).contains_points(points[ids][simplices].mean(1))
        out.append(ids[simplices[keep]])
    return np.vstack(out).astype(np.int32)


@lru_cache(maxsize=1)
def reenact_triangles() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles ``(mouth, surface, band)`` over the 478 mesh points and the ring.

    The mouth strip and each source's :func:`eye_triangles` are drawn first, then
    ``surface`` (sorted by depth per frame), then ``band`` (face outline to ring).
    """
    holes = np.array(_mouth_strip(), np.int32)
    band = tp.band_triangles().copy()
    band[band >= tp.N_FACE] += RING_START - tp.N_FACE
    return holes, tp.surface_triangles(), band


def ring_points(canon: np.ndarray) -> np.ndarray:
    """``(RING_SIZE, 3)`` canonical ring around a face's own outline (as the warp engine's)."""
    ring = canon[list(T.FACE_OVAL)].copy()
    ring[:, :2] = tp.RING_CENTRE + tp.RING_SCALE * (ring[:, :2] - tp.RING_CENTRE)
    return ring


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) with ``dst ~ A src``."""
    a = src[:, 0] + 1j * src[:, 1]
    b = dst[:, 0] + 1j * dst[:, 1]
    ma, mb = a.mean(), b.mean()
    ac, bc = a - ma, b - mb
    k = complex(np.vdot(ac, bc) / max(float(np.vdot(ac, ac).real), 1e-12))
    shift = mb - k * ma
    return np.array([[k.real, -k.imag, shift.real], [k.imag, k.real, shift.imag]])


@dataclass(frozen=True)
class SourceLayout:
    """The warp vertices of one source frame and the ellipse its head motion fades over.

    ``vertices``: ``(478 + RING_SIZE, 2)`` pixels; ``eyes``: :func:`eye_triangles`; ``centre``/``axes``: ellipse (pixels)
    holding the ring; ``step``: grid spacing of the face warp; ``scale``: pixels per cm.
    """

    vertices: np.ndarray
    eyes: np.ndarray
    centre: np.ndarray
    axes: np.ndarray
    step: float
    scale: float

    @staticmethod
    def build(mesh: np.ndarray, canon: np.ndarray, frame: object, crop_size: int) -> SourceLayout:
        ring = frame.to_pixels(ring_points(canon))  # type: ignore[attr-defined]
        pts = np.vstack([np.asarray(mesh, np.float64)[:, :3], ring])
        xy = pts[:, :2]
        centre = xy[RING_START:].mean(0)
        rel = np.abs(xy[RING_START:] - centre)
        axes = np.maximum(rel.max(0), 1.0)
        # Grow the axis-aligned ellipse until it holds every ring point.
        axes *= float(np.sqrt(((rel / axes) ** 2).sum(1)).max())
        width = float(np.linalg.norm(xy[234] - xy[454]))
        step = max(1.0, width / (0.5 * crop_size))
        return SourceLayout(xy, eye_triangles(xy), centre, axes, step, float(frame.scale))  # type: ignore[attr-defined]


def head_map(layout: SourceLayout, affine: np.ndarray, region: fld.Region) -> np.ndarray:
    """``(H, W, 2)`` source positions of ``region``'s pixels under the soft head motion."""
    rows, cols = fld.grid_shape(region, _FADE_STEP)
    gy, gx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    px = region.x0 + gx * _FADE_STEP
    py = region.y0 + gy * _FADE_STEP
    inv = cv2.invertAffineTransform(affine).astype(np.float32)
    qx = inv[0, 0] * px + inv[0, 1] * py + inv[0, 2]
    qy = inv[1, 0] * px + inv[1, 1] * py + inv[1, 2]
    c, a = layout.centre.astype(np.float32), layout.axes.astype(np.float32)
    r = np.hypot((qx - c[0]) / a[0], (qy - c[1]) / a[1])
    t = np.clip((r - 1.0) / (HEAD_REACH - 1.0), 0.0, 1.0)
    w = 1.0 - t * t * (3.0 - 2.0 * t)
    grid = np.dstack([px + w * (qx - px), py + w * (qy - py)]).astype(np.float32)
    ys = np.arange(region.height, dtype=np.float32) / _FADE_STEP
    xs = np.arange(region.width, dtype=np.float32) / _FADE_STEP
    mx, my = np.meshgrid(xs, ys)
    return cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _head_region(layout: SourceLayout, affine: np.ndarray, shape: tuple[int, ...]) -> fld.Region:
    """Output rectangle the head motion can reach (source ellipse and its moved copy)."""
    c, a = layout.centre, layout.axes * HEAD_REACH
    corners = np.array([c - a, c + a, [c[0] - a[0], c[1] + a[1]], [c[0] + a[0], c[1] - a[1]]])
    moved = corners @ affine[:, :2].T + affine[:, 2]
    return fld.Region.around(np.vstack([corners, moved]), shape, pad=1)


def _pull_inside(poly: np.ndarray, anchor: np.ndarray, point: np.ndarray) -> np.ndarray:
    """``point`` moved towards ``anchor`` (inside ``poly``) until it is inside ``poly``."""
    if cv2.pointPolygonTest(poly, (float(point[0]), float(point[1])), False) >= 0:
        return point
    lo, hi = 0.0, 1.0
    for _ in range(8):
        m = 0.5 * (lo + hi)
        q = anchor + m * (point - anchor)
        inside = cv2.pointPolygonTest(poly, (float(q[0]), float(q[1])), False) >= 0
        lo, hi = (m, hi) if inside else (lo, m)
    return anchor + 0.9 * lo * (point - anchor)


def _clamp_irises(target: np.ndarray) -> None:
    """Keep each iris centre inside its eye outline, and the iris points beside it.

    Else the eye triangles would fold: the centre is pulled towards the eye's middle,
    then each other iris point towards the centre.
    """
    for loop, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS), (T.LEFT_EYE, T.LEFT_IRIS)):
        poly = target[list(loop)].astype(np.float32)
        centre = _pull_inside(poly, poly.mean(0), target[iris[0]])
        shift = centre - target[iris[0]]
        target[iris[0]] = centre
        for i in iris[1:]:
            target[i] = _pull_inside(poly, centre, target[i] + shift)


def warp_face(
    image: np.ndarray,
    layout: SourceLayout,
    target: np.ndarray,
    target_depth: np.ndarray,
) -> np.ndarray:
    """``image`` with its mesh moved to ``target`` ``(478, 2)`` pixels (a new array).

    ``target_depth``: ``(478,)`` depth of the target points (larger = farther) for
    the drawing order.
    """
    src = layout.vertices
    mesh_src = src[:N_MESH]
    affine = similarity_2d(mesh_src[RIGID_POINTS], target[RIGID_POINTS])
    ring = src[RING_START:] @ affine[:, :2].T + affine[:, 2]
    dst = np.vstack([target, ring])
    _clamp_irises(dst)
    mouth, surface, band = reenact_triangles()
    order = np.argsort(-target_depth[surface].mean(1), kind="stable")
    triangles = np.vstack([mouth, layout.eyes, surface[order], band])
    shape = image.shape
    region = _head_region(layout, affine, shape)
    if region.empty:
        return image.copy()
    source_xy = head_map(layout, affine, region)
    face = fld.Region.around(dst[RING_START:], shape).intersection(region)
    if not face.empty:
        mapped = fld.backward_map(src, dst, triangles, face, layout.step)
        mask = np.zeros((face.height, face.width), np.uint8)
        poly = np.round((ring - [face.x0, face.y0]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [poly], (1,), lineType=cv2.LINE_8, shift=4)
        sub = source_xy[
            face.y0 - region.y0 : face.y1 - region.y0, face.x0 - region.x0 : face.x1 - region.x0
        ]
        np.copyto(sub, mapped, where=mask[..., None].astype(bool))
    out = image.copy()
    out[region.y0 : region.y1, region.x0 : region.x1] = fld.remap_region(image, source_xy)
    return out


def draw_mouth(
    out: np.ndarray,
    target: np.ndarray,
    scale: float,
    texture: MouthTexture,
    source_gap: float,
    step: float,
) -> float:
    """Draw the interior between the target lips when they part beyond the source's; gap (cm)."""
    geometry = MouthGeometry.from_points(target, scale)
    gap = geometry.gap()
    if gap > max(source_gap, 0.0) + MIN_GAP_CM:
        render_interior(out, geometry, texture, 1.0, EDGE_SOFTNESS_PX * step)
    return gap
