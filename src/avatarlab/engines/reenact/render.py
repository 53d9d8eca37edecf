"""Warp a source frame so its face mesh lands on a target mesh, head and background following.

One backward map per frame, built on a coarse grid and resampled once:

- a grid of about ``SourceLayout.step`` pixels over the region the head can reach
  starts with the *soft head motion*: a similarity ``A`` (fitted to the rigid
  points' motion) whose weight is 1 up to an ellipse around the face ring and fades
  to 0 at ``HEAD_REACH`` ellipse radii, so hair, neck and background follow the head
  and the frame's far edges stay put (the warp engine's ``HeadWarp`` idea);
- the face triangles (:func:`reenact_triangles`: the eye openings, a strip across
  the mouth, the warp engine's face surface sorted far to near, and the band from the
  face outline to the *ring*, the outline pushed out by ``topology.RING_SCALE``) are
  rasterised over it (compiled, :mod:`._raster`; later triangles on top): each grid
  point inside one takes its piecewise-affine source position. The ring moves
  by exactly ``A``, so the two maps agree on it and nothing tears at the face border;
- the grid is upsampled bilinearly (``cv2.resize``: grid points sit at cell centres)
  and the frame is sampled once (``cv2.remap``).

Eyes (the warp engine's lid model, :mod:`avatarlab.engines.warp.rig`): each eye
opening is a fan over its outline and the iris (so the gaze moves as a disc) whose
top edge hangs from copies of the upper-lid points. When the target lid is lower
than where the moved source lid would be, the copies stay at that open position, so
the eye is drawn whole and the lid, drawn after it, slides over it with its lash line
(the iris is covered, not squashed). The lid skin is sampled at its landmarked
margin, not above it: the lashes then close
into a dark line, which an independent landmarker needs to read the eye as shut
(dlib's eye-opening r on expressions_silent 0.67 without the lift, 0.33 with it). Around
a closing eye the map is computed at full resolution, so the lid's seam is not
blurred by the coarse grid.

The mouth interior is drawn between the target lips with the warp engine's
:func:`~avatarlab.engines.warp.mouth.render_interior` when they part wider than
the source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from avatarlab.engines.reenact import _raster
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
"""Vertex index of the first ring point (vertices: 478 mesh points, the ring, lid copies)."""
OPENING_START = RING_START + tp.RING_SIZE
"""Vertex index of the first eye-opening copy of an upper-lid point (``tp.EYE_OPENING`` order)."""
N_VERTICES = OPENING_START + len(tp.EYE_OPENING)
HEAD_REACH = 1.9
"""The head's motion fades to nothing at this many radii of the ellipse around the ring."""
MIN_GAP_CM = 0.03
"""Target lip openings below this (beyond the source's own) draw no interior."""
_EYE_PAD = 2
"""Pixels around a closing eye's outline whose map is computed at full resolution."""
_LID_UPPER = np.array(tp.EYE_OPENING)
_LID_LOWER = np.array((*tp.RIGHT_LID_LOWER, *tp.LEFT_LID_LOWER))
_EYE_FRAME = tuple(
    np.array((*corners, *lower))
    for corners, lower in (
        (tp.RIGHT_EYE_CORNERS, tp.RIGHT_LID_LOWER),
        (tp.LEFT_EYE_CORNERS, tp.LEFT_LID_LOWER),
    )
)
"""Per eye, the points whose motion the open eye follows: corners and lower lid."""


def _mouth_strip() -> list[tuple[int, int, int]]:
    a, b = tp.MOUTH_INNER_CORNERS
    up, low = tp.MOUTH_UPPER, tp.MOUTH_LOWER
    tris = [(a, up[0], low[0])]
    for k in range(len(up) - 1):
        tris += [(up[k], up[k + 1], low[k + 1]), (up[k], low[k + 1], low[k])]
    return tris + [(up[-1], b, low[-1])]


def _opening_loop(loop: tuple[int, ...]) -> list[int]:
    """An eye outline with its upper-lid points replaced by their opening copies."""
    lids = list(tp.EYE_OPENING)
    return [OPENING_START + lids.index(i) if i in lids else i for i in loop]


def eye_triangles(points: np.ndarray) -> np.ndarray:
    """Triangles filling both eye openings of a source mesh ``(478, 2)``, iris included.

    Per eye: Delaunay over its outline, the iris centre and the iris's two horizontal
    extremes (the top and bottom ones are usually under the lids), keeping the
    triangles inside the outline, so a moving iris slides as a disc over the sclera.
    Upper-lid corners are given as their opening copies (``OPENING_START + k``).
    """
    from matplotlib.path import Path as PolyPath
    from scipy.spatial import Delaunay

    out = []
    for loop, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS), (T.LEFT_EYE, T.LEFT_IRIS)):
        centre, ring = iris[0], np.array(iris[1:])
        ends = ring[np.argsort(np.abs(points[ring, 0] - points[centre, 0]))[-2:]]
        outline = points[list(loop)]
        inner = [i for i in (centre, *ends) if PolyPath(outline).contains_point(points[i])]
        ids = np.array([*_opening_loop(loop), *inner])
        local = np.vstack([outline, points[inner]]) if inner else outline
        try:
            simplices = Delaunay(local).simplices
        except Exception:  # degenerate (closed) eye: a fan from the first corner
            simplices = np.array([[0, k, k + 1] for k in range(1, len(loop) - 1)])
        keep = PolyPath(outline).contains_points(local[simplices].mean(1))
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

    ``vertices``: ``(N_VERTICES, 2)`` pixels (mesh, ring, upper-lid copies); ``eyes``:
    :func:`eye_triangles`; ``centre``/``axes``: ellipse (pixels) holding the ring;
    ``step``: grid spacing of the warp; ``scale``: pixels per cm.
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
        pts = np.asarray(mesh, np.float64)[:, :3]
        xy = np.vstack([pts, ring, pts[list(tp.EYE_OPENING)]])[:, :2]
        rim = xy[RING_START:OPENING_START]
        centre = rim.mean(0)
        rel = np.abs(rim - centre)
        axes = np.maximum(rel.max(0), 1.0)
        # Grow the axis-aligned ellipse until it holds every ring point.
        axes *= float(np.sqrt(((rel / axes) ** 2).sum(1)).max())
        width = float(np.linalg.norm(xy[234] - xy[454]))
        step = max(1.0, width / (0.5 * crop_size))
        return SourceLayout(
            xy,
            eye_triangles(xy[:N_MESH]),
            centre,
            axes,
            step,
            float(frame.scale),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class Grid:
    """Sample points of a region: point ``(i, j)`` sits at pixel
    ``(x0 + (j + 0.5) sx - 0.5, y0 + (i + 0.5) sy - 0.5)``, the cell centres of a
    ``rows x cols`` split of the region, as ``cv2.resize`` expects."""

    region: fld.Region
    rows: int
    cols: int

    @staticmethod
    def over(region: fld.Region, step: float) -> Grid:
        """About ``step`` pixels apart (exactly the pixels for ``step <= 1``)."""
        step = max(step, 1.0)
        rows = max(1, int(np.ceil(region.height / step)))
        cols = max(1, int(np.ceil(region.width / step)))
        return Grid(region, rows, cols)

    @property
    def spacing(self) -> tuple[float, float]:
        """``(sx, sy)`` pixels between neighbouring points."""
        return self.region.width / self.cols, self.region.height / self.rows

    def to_grid(self, xy: np.ndarray) -> np.ndarray:
        """Pixel positions ``(N, 2)`` -> grid coordinates (column, row)."""
        sx, sy = self.spacing
        r = self.region
        return (xy - [r.x0 - 0.5, r.y0 - 0.5]) / [sx, sy] - 0.5

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cols,)`` x and ``(rows,)`` y pixel positions of the points."""
        sx, sy = self.spacing
        r = self.region
        return r.x0 + (np.arange(self.cols) + 0.5) * sx - 0.5, r.y0 + (
            np.arange(self.rows) + 0.5
        ) * sy - 0.5


def head_map(layout: SourceLayout, affine: np.ndarray, grid: Grid) -> np.ndarray:
    """``(rows, cols, 2)`` float32 source positions of ``grid``'s points under the soft
    head motion ``affine`` (weight 1 inside the ring's ellipse, 0 at ``HEAD_REACH``)."""
    px, py = grid.pixels()
    out = np.empty((grid.rows, grid.cols, 2), np.float32)
    inv = cv2.invertAffineTransform(affine)
    _raster.head_grid(out, px, py, inv, layout.centre, layout.axes, HEAD_REACH)
    return out


def rasterise(
    out: np.ndarray, src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, grid: Grid
) -> None:
    """Write into ``out`` ``(rows, cols, 2)`` the source position of every grid point
    inside ``triangles`` (later triangles over earlier ones); others are left as they are.

    ``src``/``dst``: ``(V, 2)`` vertex pixels in the source and the output frame.
    """
    to_grid = np.ascontiguousarray(grid.to_grid(np.asarray(dst, np.float64)))
    _raster.triangles(out, to_grid, np.ascontiguousarray(src, np.float64), triangles)


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
    """Keep each iris centre inside its eye opening, and the iris points beside it.

    Else the eye triangles would fold: the centre is pulled towards the opening's
    middle, then each other iris point towards the centre.
    """
    for loop, iris in ((T.RIGHT_EYE, T.RIGHT_IRIS), (T.LEFT_EYE, T.LEFT_IRIS)):
        poly = target[_opening_loop(loop)].astype(np.float32)
        centre = _pull_inside(poly, poly.mean(0), target[iris[0]])
        shift = centre - target[iris[0]]
        target[iris[0]] = centre
        for i in iris[1:]:
            target[i] = _pull_inside(poly, centre, target[i] + shift)


def lid_closure(layout: SourceLayout, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the eye openings' top edge goes, and how closed each upper-lid point is.

    Each eye's source opening is moved by the similarity of its corners and lower lid
    (the eye without its lid motion). Returns ``(14, 2)`` target pixels of the
    opening copies (``tp.EYE_OPENING`` order): the moved source lid where the target
    lid is lower (the eye stays open behind the closing lid), else the target lid;
    and ``(14,)`` closure in ``[0, 1]`` (share of that open gap the lid covers).
    """
    src = layout.vertices
    lids = target[_LID_UPPER].astype(np.float64)
    opened = np.empty_like(lids)
    n = len(tp.RIGHT_LID_UPPER)
    for e, points in enumerate(_EYE_FRAME):
        a = similarity_2d(src[points], target[points])
        rows = slice(e * n, (e + 1) * n)
        opened[rows] = src[_LID_UPPER[rows]] @ a[:, :2].T + a[:, 2]
    gap = target[_LID_LOWER] - opened
    length = np.linalg.norm(gap, axis=1)
    closure = ((lids - opened) * gap).sum(1) / np.maximum(length, 1e-6) ** 2
    closure = np.clip(closure, 0.0, 1.0)
    return np.where(closure[:, None] > 0, opened, lids), closure


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
    affine = similarity_2d(src[RIGID_POINTS], target[RIGID_POINTS])
    ring = src[RING_START:OPENING_START] @ affine[:, :2].T + affine[:, 2]
    opening, closure = lid_closure(layout, target)
    dst = np.vstack([target, ring, opening])
    _clamp_irises(dst)
    closing = bool(closure.any())
    region = _head_region(layout, affine, image.shape)
    out = image.copy()
    if region.empty:
        return out
    mouth, surface, band = reenact_triangles()
    order = np.argsort(-target_depth[surface].mean(1), kind="stable")
    triangles = np.vstack([mouth, layout.eyes, surface[order], band])
    grid = Grid.over(region, layout.step)
    coarse = head_map(layout, affine, grid)
    rasterise(coarse, src, dst, triangles, grid)
    source_xy = cv2.resize(coarse, (region.width, region.height), interpolation=cv2.INTER_LINEAR)
    if closing and layout.step > 1.0:  # no coarse-grid blur across a closing lid's seam
        pad = int(np.ceil(layout.step)) + _EYE_PAD
        for e, eye in enumerate(tp.EYES):
            if not closure[e * len(tp.RIGHT_LID_UPPER) : (e + 1) * len(tp.RIGHT_LID_UPPER)].any():
                continue
            box = fld.Region.around(dst[list(eye)], image.shape, pad=pad).intersection(region)
            if box.empty:
                continue
            rows = slice(box.y0 - region.y0, box.y1 - region.y0)
            cols = slice(box.x0 - region.x0, box.x1 - region.x0)
            patch = np.ascontiguousarray(source_xy[rows, cols])
            rasterise(patch, src, dst, triangles, Grid.over(box, 1.0))
            source_xy[rows, cols] = patch
    # One (H, W, 2) map, no second map: OpenCV accepts None there; its stubs do not.
    out[region.y0 : region.y1, region.x0 : region.x1] = cv2.remap(
        image,
        source_xy,
        None,  # type: ignore[call-overload]
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
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
