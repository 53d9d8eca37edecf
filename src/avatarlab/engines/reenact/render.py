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

Eyes: each eye opening is a fan over its outline whose top edge hangs from copies of
the upper-lid points; inside the opening the eyeball is then resampled rigidly with the
eye corners (:func:`rigid_eyeball`), so a narrowing opening (a squint, a rising lower
lid) covers the eyeball instead of squashing it, and a widening one stretches it from
inside the source opening; the gaze is then added per row (:class:`EyeSource`): the
iris chord moves whole, the sclera beside it stretches or squeezes to the opening's
edge, and the lid margin stays where the lid is (the iris slides under it). When the
target lid is lower than where the moved source lid would be, the copies stay at that
open position; given the source's :class:`~avatarlab.engines.warp.lids.LidLayer`, the
lid is held open in the warp too and the layer (skin and a lash line, drawn in the
source and moved by the eye's map without the gaze) closes it; without one, the lid skin
slides down over the eye. Around each eye the map is computed at full
resolution.

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
from avatarlab.engines.warp.lids import MEET, LidLayer
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
REST_SHOW_CM = 0.25
"""How far the upper incisors' edge sits below the closed lips' line (the tooth a
relaxed, slightly parted mouth shows)."""
OVERBITE_CM = 0.3
"""With the jaw closed the lower incisors' tips sit this far above the upper ones' edge,
behind them (a normal overbite)."""
MIN_GAP_CM = 0.03
"""Target lip openings below this (beyond the source's own) draw no interior."""
_EYE_PAD = 2
MIN_GAZE_PX = 0.25
"""An iris moving less than this (source pixels) leaves the eye's map as it is."""
EYEBALL_PER_IRIS = 12.0 / 5.9
"""Eyeball radius over iris radius (about 12 mm and 5.9 mm in adults)."""
_GAZE_SLACK_PX = 0.5
"""Pixels around a closing eye's outline whose map is computed at full resolution."""
_LID_UPPER = np.array(tp.EYE_OPENING)
_LID_LOWER = np.array((*tp.RIGHT_LID_LOWER, *tp.LEFT_LID_LOWER))
_LID_ABOVE = np.array((*tp.RIGHT_LID_ABOVE, *tp.LEFT_LID_ABOVE))
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
    """Triangles filling both eye openings of a source mesh ``(478, 2)``, over the outline.

    Per eye: Delaunay over its outline, keeping the triangles inside it, so the
    eyeball follows the lids and corners; the gaze is added afterwards by
    :class:`EyeSource` (the iris moves as a disc over the sclera). Upper-lid corners
    are given as their opening copies (``OPENING_START + k``).
    """
    from matplotlib.path import Path as PolyPath
    from scipy.spatial import Delaunay

    out = []
    for loop in (T.RIGHT_EYE, T.LEFT_EYE):
        ids = np.array(_opening_loop(loop))
        outline = points[list(loop)]
        try:
            simplices = Delaunay(outline).simplices
        except Exception:  # degenerate (closed) eye: a fan from the first corner
            simplices = np.array([[0, k, k + 1] for k in range(1, len(loop) - 1)])
        keep = PolyPath(outline).contains_points(outline[simplices].mean(1))
        out.append(ids[simplices[keep]])
    return np.vstack(out).astype(np.int32)


@dataclass(frozen=True)
class EyeSource:
    """One source eye opening, for moving its iris as a disc (the gaze).

    ``x0``/``y0``: top-left pixel of ``left``/``right``, the opening's extent (source
    pixels, ``-inf``/``inf`` on rows outside it) on each row ``y0 + k``; ``iris``:
    ``(2,)`` iris centre and ``radius`` (pixels); ``middle``: x of the corners' midpoint
    (the eyeball's axis looking ahead); ``frame``: mesh indices whose motion the eye
    without its gaze follows (corners and lower lid); ``upper``/``lower``: ``(k, 2)``
    the opening's lids as polylines sorted by x (``None``: the gaze does not keep
    samples inside the opening).
    """

    x0: int
    y0: int
    left: np.ndarray
    right: np.ndarray
    iris: np.ndarray
    radius: float
    middle: float
    frame: np.ndarray
    upper: np.ndarray | None = None
    lower: np.ndarray | None = None

    @staticmethod
    def build(points: np.ndarray, eye: int) -> EyeSource | None:
        """From a source mesh ``(478, 2)`` pixels; ``None`` without an iris."""
        loop, iris = (T.RIGHT_EYE, T.RIGHT_IRIS) if eye == 0 else (T.LEFT_EYE, T.LEFT_IRIS)
        ring = points[list(iris)]
        if not np.isfinite(ring).all():
            return None
        outline = points[list(loop)].astype(np.float64)
        x0, y0 = np.floor(outline.min(0)).astype(int) - 1
        x1, y1 = np.ceil(outline.max(0)).astype(int) + 2
        # Each row's extent: where the outline's edges cross the lines at the row's
        # centre and half a pixel either side, the widest (a pixel anywhere in the row
        # that the eye map puts inside the opening is then inside the extent).
        rows = np.arange(y0 - 0.5, y1 + 0.75, 0.5)
        a, b = outline, np.roll(outline, -1, axis=0)
        lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
        cross = (rows[:, None] >= lo) & (rows[:, None] <= hi) & (hi > lo)
        t = (rows[:, None] - a[:, 1]) / np.where(hi > lo, b[:, 1] - a[:, 1], 1.0)
        xs = a[:, 0] + t * (b[:, 0] - a[:, 0])
        fine_left = np.where(cross, xs, np.inf).min(1)
        fine_right = np.where(cross, xs, -np.inf).max(1)
        n = y1 - y0
        pick = 2 * np.arange(n)[:, None] + np.arange(3)  # row k: lines y0 + k - 0.5 .. + 0.5
        left = fine_left[pick].min(1) - _GAZE_SLACK_PX
        right = fine_right[pick].max(1) + _GAZE_SLACK_PX
        empty = ~(right > left)
        left[empty], right[empty] = np.inf, -np.inf
        corners = points[list(loop[:1]) + [loop[len(loop) // 2]]].astype(np.float64)
        centre = ring[0].astype(np.float64)
        radius = float(np.linalg.norm(ring[1:] - centre, axis=1).mean())
        middle = float(corners[:, 0].mean())
        upper, lower = _lid_curves(outline)
        return EyeSource(
            int(x0), int(y0), left, right, centre, radius, middle, _EYE_FRAME[eye], upper, lower
        )

    def gaze(self, xy: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Source positions ``(N, 2)`` remapped so the iris moves by ``shift`` (pixels).

        Positions inside the opening: on each row the iris chord is moved whole and the
        sclera on either side is stretched or squeezed between it and the opening's
        edge, so the eye white shows where the iris left; a vertical gaze never takes a
        sample inside the opening out of it (above the upper or below the lower lid), so
        the lash line is not dragged over the iris. Others are unchanged.
        """
        out = xy.copy()
        row = np.floor(xy[:, 1] + 0.5).astype(np.int64) - self.y0
        ok = (row >= 0) & (row < len(self.left))
        row = np.clip(row, 0, len(self.left) - 1)
        lo, hi = self.left[row], self.right[row]
        x, y = xy[:, 0], xy[:, 1]
        ok &= (x >= lo) & (x <= hi)
        if not ok.any():
            return out
        x, y, lo, hi = x[ok], y[ok], lo[ok], hi[ok]
        moved = self.iris + shift
        half = np.sqrt(np.maximum(self.radius**2 - (y - moved[1]) ** 2, 0.0))
        # The iris is a disc on a ball: turned by theta it is seen theta-foreshortened.
        ball = EYEBALL_PER_IRIS * self.radius
        turn = [
            float(np.clip((c - self.middle) / ball, -0.95, 0.95)) for c in (self.iris[0], moved[0])
        ]
        narrow = np.sqrt(1.0 - turn[1] ** 2) / np.sqrt(1.0 - turn[0] ** 2)
        a, b = moved[0] - narrow * half, moved[0] + narrow * half  # chord where the iris goes
        a_src, b_src = self.iris[0] - half, self.iris[0] + half  # chord it comes from
        eps = 1e-3
        wl = (x - lo) / np.maximum(a - lo, eps)
        wr = (hi - x) / np.maximum(hi - b, eps)
        new_x = np.where(
            x < a,
            lo + wl * (a_src - lo),
            np.where(x > b, hi - wr * (hi - b_src), self.iris[0] + (x - moved[0]) / narrow),
        )
        weight = np.clip(np.where(x < a, wl, np.where(x > b, wr, 1.0)), 0.0, 1.0)
        new_x = np.clip(new_x, lo, hi)
        new_y = y - weight * shift[1]
        if self.upper is not None and self.lower is not None:
            # The lid margin stays: a sample inside the opening is not moved out of it.
            top = np.interp(new_x, self.upper[:, 0], self.upper[:, 1])
            bottom = np.interp(new_x, self.lower[:, 0], self.lower[:, 1])
            new_y = np.clip(new_y, np.minimum(y, top), np.maximum(y, bottom))
        out[ok, 0] = new_x
        out[ok, 1] = new_y
        return out


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
    ``step``: grid spacing of the warp; ``scale``: pixels per cm; ``gaze``: per eye
    its :class:`EyeSource` (``None`` without an iris).
    """

    vertices: np.ndarray
    eyes: np.ndarray
    centre: np.ndarray
    axes: np.ndarray
    step: float
    scale: float
    gaze: tuple[EyeSource | None, EyeSource | None] = (None, None)

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
            (EyeSource.build(xy[:N_MESH], 0), EyeSource.build(xy[:N_MESH], 1)),
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


def gaze_shift(layout: SourceLayout, target: np.ndarray, eye: int) -> np.ndarray | None:
    """``(2,)`` source pixels the iris of ``eye`` moves by, in the source eye's frame.

    The target iris centre is brought back into the source by the similarity of the
    eye's corners and lower lid (the eye without its gaze); ``None`` when the eye has
    no iris or it moves by less than ``MIN_GAZE_PX``.
    """
    eye_source = layout.gaze[eye]
    if eye_source is None:
        return None
    centre = target[T.RIGHT_IRIS_CENTER if eye == 0 else T.LEFT_IRIS_CENTER]
    if not np.isfinite(centre).all():
        return None
    back = similarity_2d(target[eye_source.frame], layout.vertices[eye_source.frame])
    shift = back[:, :2] @ centre + back[:, 2] - eye_source.iris
    return shift if float(np.hypot(*shift)) >= MIN_GAZE_PX else None


def _lid_curves(outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An eye outline ``(16, 2)`` (corner, one lid, corner, the other) as its upper and
    lower lid polylines, each sorted by x."""
    half = len(outline) // 2
    a = outline[: half + 1]
    b = np.vstack([outline[half:], outline[:1]])
    up, low = (a, b) if a[:, 1].mean() <= b[:, 1].mean() else (b, a)
    return up[np.argsort(up[:, 0])], low[np.argsort(low[:, 0])]


def rigid_eyeball(
    xy: np.ndarray, box: fld.Region, src: np.ndarray, dst: np.ndarray, eye: int
) -> None:
    """Resample the eyeball inside the target opening rigidly with the eye corners.

    ``xy``: ``(h, w, 2)`` source positions of ``box``'s pixels (changed in place);
    ``src``/``dst``: ``(N_VERTICES, 2)`` vertex pixels. A pixel inside the target
    opening is brought back by the similarity of the corners; per column the
    source opening keeps its height where the target's is lower (the lids cover
    the eyeball instead of squashing it, shifted only as far as it must stay inside
    the source opening) and is stretched where it is taller.
    """
    loop = (T.RIGHT_EYE, T.LEFT_EYE)[eye]
    corners = [loop[0], loop[len(loop) // 2]]
    poly = dst[_opening_loop(loop)]
    # Only where the eye shows: inside the opening and below the mesh's own lids (a lid
    # sliding down without the lid layer is drawn over the opening by the face surface).
    masks = []
    for outline in (poly, dst[list(loop)]):
        mask = np.zeros((box.height, box.width), np.uint8)
        fixed = np.round((outline - [box.x0, box.y0]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [fixed], (1,), lineType=cv2.LINE_8, shift=4)
        masks.append(mask)
    rows, cols = np.nonzero(masks[0] & masks[1])
    if len(rows) == 0:
        return
    back = similarity_2d(dst[corners], src[corners])
    p = np.stack([cols + box.x0, rows + box.y0], -1).astype(np.float64)
    u = p @ back[:, :2].T + back[:, 2]
    s_up, s_low = _lid_curves(src[list(loop)])
    t_up, t_low = _lid_curves(poly @ back[:, :2].T + back[:, 2])
    x = np.clip(u[:, 0], s_up[0, 0], s_up[-1, 0])
    ts, bs = np.interp(x, s_up[:, 0], s_up[:, 1]), np.interp(x, s_low[:, 0], s_low[:, 1])
    tt, bt = np.interp(x, t_up[:, 0], t_up[:, 1]), np.interp(x, t_low[:, 0], t_low[:, 1])
    span_s, span_t = bs - ts, np.maximum(bt - tt, 1e-6)
    fits = span_t <= span_s
    move = np.clip(0.0, ts - tt, np.maximum(bs - bt, ts - tt))
    y = np.where(fits, u[:, 1] + move, ts + (u[:, 1] - tt) * span_s / span_t)
    y = np.clip(y, np.minimum(ts, bs), np.maximum(ts, bs))
    ok = span_s > 0
    xy[rows[ok], cols[ok], 0] = x[ok]
    xy[rows[ok], cols[ok], 1] = y[ok]


def lid_cover(
    lids: LidLayer, shape: tuple[int, ...], closure: float, box: fld.Region
) -> tuple[np.ndarray, np.ndarray]:
    """The lid layer at ``closure`` over ``box`` of the source, as ``(opacity (h, w),
    premultiplied colour (h, w, 3))`` float32: ``frame * (1 - opacity) + colour`` is the
    frame with the lids drawn. Read off by drawing the layer over black and over white.
    """
    black = np.zeros(shape, np.uint8)
    white = np.full(shape, 255, np.uint8)
    lids.draw(black, closure)
    lids.draw(white, closure)
    rows, cols = slice(box.y0, box.y1), slice(box.x0, box.x1)
    colour = black[rows, cols].astype(np.float32)
    opacity = 1.0 - (white[rows, cols].astype(np.float32) - colour).mean(-1) / 255.0
    return np.clip(opacity, 0.0, 1.0), colour


def hold_lids_open(
    layout: SourceLayout, target: np.ndarray
) -> tuple[np.ndarray, tuple[float, float]]:
    """``target`` with each closing upper lid (and the skin ring above it) held where the
    open eye would put it, and each eye's closure for :class:`LidLayer` (0 open .. 1 shut).

    The warp then keeps the eye open and the lid layer, drawn in the source and moved
    with it, closes it: the lid shows skin and a lash line instead of a stretched band.
    """
    opened, closure = lid_closure(layout, target)
    held = target.copy()
    move = opened - target[_LID_UPPER]
    held[_LID_UPPER] += move
    held[_LID_ABOVE] += move
    n = len(tp.RIGHT_LID_UPPER)
    # lid_closure's share of the gap to the lower lid; the layer's lids meet at MEET of it.
    per_eye = tuple(float(min(closure[e * n : (e + 1) * n].mean() / MEET, 1.0)) for e in (0, 1))
    return held, (per_eye[0], per_eye[1])


def warp_face(
    image: np.ndarray,
    layout: SourceLayout,
    target: np.ndarray,
    target_depth: np.ndarray,
    lids: LidLayer | None = None,
) -> np.ndarray:
    """``image`` with its mesh moved to ``target`` ``(478, 2)`` pixels (a new array).

    ``target_depth``: ``(478,)`` depth of the target points (larger = farther) for
    the drawing order. ``lids``: the source's lid layer; given, a closing eye is kept
    open by the warp and closed by the layer (:func:`hold_lids_open`), else the lid
    skin slides down over the eye.
    """
    src = layout.vertices
    eye_closure = (0.0, 0.0)
    if lids is not None:
        target, eye_closure = hold_lids_open(layout, target)
    affine = similarity_2d(src[RIGID_POINTS], target[RIGID_POINTS])
    ring = src[RING_START:OPENING_START] @ affine[:, :2].T + affine[:, 2]
    opening, _ = lid_closure(layout, target)
    dst = np.vstack([target, ring, opening])
    _clamp_irises(dst)
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
    covers: list[tuple[fld.Region, np.ndarray, float]] = []
    for e, eye in enumerate(tp.EYES):
        shift = gaze_shift(layout, dst, e)
        shut = eye_closure[e] > 0.0
        # Full resolution around each eye: no coarse-grid blur of the iris or the lid's seam,
        # and the eyeball is resampled rigidly inside the opening (rigid_eyeball).
        pad = int(np.ceil(layout.step)) + _EYE_PAD
        above = (tp.RIGHT_LID_ABOVE, tp.LEFT_LID_ABOVE)[e]
        reach = dst[list(eye) + list(above)] if shut else dst[list(eye)]
        box = fld.Region.around(reach, image.shape, pad=pad).intersection(region)
        if box.empty:
            continue
        rows = slice(box.y0 - region.y0, box.y1 - region.y0)
        cols = slice(box.x0 - region.x0, box.x1 - region.x0)
        patch = np.ascontiguousarray(source_xy[rows, cols])
        if layout.step > 1.0:
            rasterise(patch, src, dst, triangles, Grid.over(box, 1.0))
        if shut:
            covers.append((box, patch.copy(), eye_closure[e]))
        rigid_eyeball(patch, box, src, dst, e)
        eye_source = layout.gaze[e]
        if shift is not None and eye_source is not None:
            flat = patch.reshape(-1, 2).astype(np.float64)
            patch = eye_source.gaze(flat, shift).astype(np.float32).reshape(patch.shape)
        source_xy[rows, cols] = patch
    # One (H, W, 2) map, no second map: OpenCV accepts None there; its stubs do not.
    out[region.y0 : region.y1, region.x0 : region.x1] = cv2.remap(
        image,
        source_xy,
        None,  # type: ignore[call-overload]
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if lids is not None and covers:
        _draw_lids(out, lids, covers, image.shape)
    return out


def _draw_lids(
    out: np.ndarray,
    lids: LidLayer,
    covers: list[tuple[fld.Region, np.ndarray, float]],
    shape: tuple[int, ...],
) -> None:
    """Composite the source lid layer, moved by each eye's map (without the gaze), into ``out``."""
    for box, xy, closure in covers:
        src_box = fld.Region.around(xy.reshape(-1, 2), shape, pad=2)
        if src_box.empty:
            continue
        opacity, colour = lid_cover(lids, shape, closure, src_box)
        local: np.ndarray = np.ascontiguousarray(
            xy - np.array([src_box.x0, src_box.y0], np.float32)
        )
        border = cv2.BORDER_REPLICATE
        a = cv2.remap(opacity, local, None, cv2.INTER_LINEAR, borderMode=border)  # type: ignore[call-overload]
        c = cv2.remap(colour, local, None, cv2.INTER_LINEAR, borderMode=border)  # type: ignore[call-overload]
        view = out[box.y0 : box.y1, box.x0 : box.x1]
        mixed = view.astype(np.float32) * (1.0 - a[..., None]) + c
        view[:] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def teeth_edges(
    layout: SourceLayout, target: np.ndarray, geometry: MouthGeometry
) -> tuple[float, float]:
    """Where painted teeth end in ``geometry``'s mouth frame (cm, ``y`` down): the upper
    incisors' edge and the lower ones' tips.

    The upper teeth move with the head: their edge sits ``REST_SHOW_CM`` below the
    source's closed-lip line (the mid-point of the inner lips) moved by the similarity
    of the rigid points.
    The lower teeth move with the jaw: their tips sit ``OVERBITE_CM`` above the upper
    teeth's edge, lowered by the chin's motion beyond the head's. See
    :func:`avatarlab.engines.warp.mouth.render_interior`.
    """
    src = layout.vertices
    affine = similarity_2d(src[RIGID_POINTS], target[RIGID_POINTS])

    def moved(p: np.ndarray) -> np.ndarray:
        return np.asarray(affine[:, :2] @ p + affine[:, 2])

    line = moved(0.5 * (src[T.UPPER_LIP_INNER] + src[T.LOWER_LIP_INNER]))
    edge = float((line - geometry.centre) @ geometry.ey) / geometry.scale + REST_SHOW_CM
    jaw = float((target[T.CHIN] - moved(src[T.CHIN])) @ geometry.ey) / geometry.scale
    return edge, edge - OVERBITE_CM + max(jaw, 0.0)


def draw_mouth(
    out: np.ndarray,
    target: np.ndarray,
    scale: float,
    texture: MouthTexture,
    source_gap: float,
    layout: SourceLayout,
) -> float:
    """Draw the interior between the target lips when they part beyond the source's; gap (cm).

    Painted teeth stay with the head and the jaw of the source ``layout``
    (:func:`teeth_edges`) instead of riding on the lips.
    """
    geometry = MouthGeometry.from_points(target, scale)
    gap = geometry.gap()
    if gap > max(source_gap, 0.0) + MIN_GAP_CM:
        edges = teeth_edges(layout, target, geometry)
        render_interior(out, geometry, texture, 1.0, EDGE_SOFTNESS_PX * layout.step, edges)
    return gap
