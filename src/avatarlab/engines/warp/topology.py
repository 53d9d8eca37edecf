"""The fixed triangulation the warp engine deforms, and smooth interpolation on it.

Vertices (:data:`N_VERTICES`) are MediaPipe's 468 face points, then ``RING_SIZE``
ring points placed outside the face oval (they never move, so the warp fades to
nothing before the background), then copies of the upper-lid points
(:data:`EYE_OPENING`) that form the top edge of the eye openings. Triangles
(:func:`warp_triangles`):

- the face surface: MediaPipe's tesselation, whose edge list is turned back into
  its 852 triangles (every 3-cycle of the edge graph, less the two 3-cycles
  that are not faces: all three of their edges are shared by three cycles);
- the holes of the surface, bridged by strips between paired points of the upper
  and lower inner lip and of the upper and lower eyelids, so an opening mouth or
  a closing eye stays covered without a tear. An eye's strip hangs from the lid
  copies, not from the lid itself: the engine gives the copies the lid's new
  position but samples the eye right there, so a closing lid slides over the
  eye (the iris is hidden, not squashed) while the lid skin stretches down;
- a band between the face oval and the ring, triangulated once (Delaunay) on the
  canonical face where the oval is convex.

:func:`harmonic_operator` spreads values given on a few handle vertices over the
face surface (graph Laplacian, edges weighted by inverse canonical length), with
the mouth and eyes as holes, so an upper-lip handle never drags the lower lip.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from avatarlab.face import topology as T
from avatarlab.face.canonical import CANONICAL_FACE_3D

N_FACE = T.NUM_FACE_POINTS

MOUTH_UPPER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
"""Upper inner-lip points from the subject's right corner (78) to the left one (308)."""
MOUTH_LOWER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
"""Lower inner-lip points paired with ``MOUTH_UPPER`` (same order)."""
MOUTH_INNER_CORNERS = (78, 308)

OUTER_UPPER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
"""Upper outer-lip points from the subject's right corner (61) to the left one (291)."""
OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
"""Lower outer-lip points paired with ``OUTER_UPPER``."""

RIGHT_LID_UPPER = (246, 161, 160, 159, 158, 157, 173)
RIGHT_LID_LOWER = (7, 163, 144, 145, 153, 154, 155)
RIGHT_EYE_CORNERS = (33, 133)
RIGHT_LID_ABOVE = (247, 30, 29, 27, 28, 56, 190)
"""The next mesh ring above each ``RIGHT_LID_UPPER`` point (the upper-lid skin band)."""
LEFT_LID_UPPER = (466, 388, 387, 386, 385, 384, 398)
LEFT_LID_LOWER = (249, 390, 373, 374, 380, 381, 382)
LEFT_EYE_CORNERS = (263, 362)
LEFT_LID_ABOVE = (467, 260, 259, 257, 258, 286, 414)

RING_SCALE = 1.45
"""Ring points sit at the face-oval points pushed out from the face centre by this factor."""
RING_CENTRE = np.array([0.0, 0.8])
"""Canonical (x, y) centre (cm) the ring is scaled about: between the nose and the mouth."""
RING_SIZE = len(T.FACE_OVAL)

EYES = (
    (*RIGHT_LID_UPPER, *RIGHT_LID_LOWER, *RIGHT_EYE_CORNERS),
    (*LEFT_LID_UPPER, *LEFT_LID_LOWER, *LEFT_EYE_CORNERS),
)
"""Each eye's contour points: upper lid, lower lid, corners (right eye first)."""
EYE_OPENING = (*RIGHT_LID_UPPER, *LEFT_LID_UPPER)
"""Face points whose copies (vertices ``OPENING_START + k``) top the eye-opening strips."""
OPENING_START = N_FACE + RING_SIZE
N_VERTICES = OPENING_START + len(EYE_OPENING)


def _strip(
    a: int, upper: Sequence[int], lower: Sequence[int], b: int
) -> list[tuple[int, int, int]]:
    """Triangles bridging a hole from corner ``a`` through paired points to corner ``b``."""
    tris = [(a, upper[0], lower[0])]
    for k in range(len(upper) - 1):
        tris.append((upper[k], upper[k + 1], lower[k + 1]))
        tris.append((upper[k], lower[k + 1], lower[k]))
    tris.append((upper[-1], b, lower[-1]))
    return tris


@lru_cache(maxsize=1)
def surface_triangles() -> np.ndarray:
    """``(852, 3)`` int32 triangles of MediaPipe's face surface (holes at mouth and eyes)."""
    from avatarlab.face.models import import_mediapipe_solution

    tesselation = import_mediapipe_solution("face_mesh_connections").FACEMESH_TESSELATION
    edges = {(min(a, b), max(a, b)) for a, b in tesselation}
    adjacent: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in edges:
        adjacent[a].add(b)
        adjacent[b].add(a)
    cycles = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacent[a] & adjacent[b]}
    uses = collections.Counter(
        e for t in cycles for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2]))
    )
    faces = [
        t for t in cycles if min(uses[(t[0], t[1])], uses[(t[0], t[2])], uses[(t[1], t[2])]) < 3
    ]
    return np.array(sorted(faces), dtype=np.int32)


def ring_canonical() -> np.ndarray:
    """``(RING_SIZE, 3)`` canonical positions (cm) of the fixed ring around the face."""
    oval = CANONICAL_FACE_3D[list(T.FACE_OVAL)].copy()
    oval[:, :2] = RING_CENTRE + RING_SCALE * (oval[:, :2] - RING_CENTRE)
    return oval


@lru_cache(maxsize=1)
def band_triangles() -> np.ndarray:
    """Triangles between the face oval and the ring (vertex ``N_FACE + k`` is ring point k)."""
    from matplotlib.path import Path as PolyPath
    from scipy.spatial import Delaunay

    oval = list(T.FACE_OVAL)
    pts = np.vstack([CANONICAL_FACE_3D[oval, :2], ring_canonical()[:, :2]])
    ids = np.array(oval + [N_FACE + k for k in range(RING_SIZE)], dtype=np.int32)
    tri = Delaunay(pts).simplices
    inside = PolyPath(pts[: len(oval)]).contains_points(pts[tri].mean(axis=1))
    return ids[tri[~inside]]


MIN_BAND = 0.2
""":func:`raise_ring` keeps at least this share of a ring point's distance from the outline."""


def raise_ring(vertices: np.ndarray, bottom: float) -> np.ndarray:
    """``(N_VERTICES, 2)`` pixel vertices with every ring point below row ``bottom`` pulled
    towards its face-oval point until it sits on that row (a new array).

    The band from the outline to the ring is the only part of the warp below the jaw
    and it fades to nothing at the ring, so with the ring above ``bottom`` the mouth's
    warp leaves every row below it bit-identical (the collar), while the chin still
    moves with the jaw: the band above squeezes or stretches instead.
    """
    out = np.array(vertices, np.float64, copy=True)
    ring = out[N_FACE:OPENING_START]
    oval = out[list(T.FACE_OVAL)]
    drop = ring[:, 1] - oval[:, 1]
    low = (ring[:, 1] > bottom) & (drop > 1e-6)
    if low.any():
        share = np.clip((bottom - oval[low, 1]) / drop[low], MIN_BAND, 1.0)
        ring[low] = oval[low] + share[:, None] * (ring[low] - oval[low])
    return out


def opening_vertex(point: int) -> int:
    """Vertex index of the eye-opening copy of upper-lid point ``point``."""
    return OPENING_START + EYE_OPENING.index(point)


def canonical_vertices() -> np.ndarray:
    """``(N_VERTICES, 3)`` canonical positions (cm) of every warp vertex."""
    return np.vstack([CANONICAL_FACE_3D, ring_canonical(), CANONICAL_FACE_3D[list(EYE_OPENING)]])


@lru_cache(maxsize=1)
def warp_triangles() -> np.ndarray:
    """``(T, 3)`` int32 triangles over the ``N_VERTICES`` vertices, counter-clockwise."""
    right_top = [opening_vertex(i) for i in RIGHT_LID_UPPER]
    left_top = [opening_vertex(i) for i in LEFT_LID_UPPER]
    holes = (
        _strip(MOUTH_INNER_CORNERS[0], MOUTH_UPPER, MOUTH_LOWER, MOUTH_INNER_CORNERS[1])
        + _strip(RIGHT_EYE_CORNERS[0], right_top, RIGHT_LID_LOWER, RIGHT_EYE_CORNERS[1])
        + _strip(LEFT_EYE_CORNERS[0], left_top, LEFT_LID_LOWER, LEFT_EYE_CORNERS[1])
    )
    # Holes first: the warp draws later triangles over earlier ones, so where a closed lid
    # squeezes its strip to a line the lids cover it.
    tris = np.vstack([np.array(holes, np.int32), surface_triangles(), band_triangles()])
    pts = canonical_vertices()[:, :2]
    a, b, c = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = cross < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return np.ascontiguousarray(tris)


@lru_cache(maxsize=1)
def _laplacian() -> np.ndarray:
    """Dense ``(468, 468)`` graph Laplacian of the face surface, inverse-length edge weights."""
    tris = surface_triangles()
    edges = np.unique(
        np.sort(np.vstack([tris[:, [0, 1]], tris[:, [0, 2]], tris[:, [1, 2]]]), 1), axis=0
    )
    length = np.linalg.norm(CANONICAL_FACE_3D[edges[:, 0]] - CANONICAL_FACE_3D[edges[:, 1]], axis=1)
    weight = 1.0 / np.maximum(length, 1e-3)
    lap = np.zeros((N_FACE, N_FACE))
    lap[edges[:, 0], edges[:, 1]] = -weight
    lap[edges[:, 1], edges[:, 0]] = -weight
    lap[np.diag_indices(N_FACE)] = -lap.sum(axis=1)
    return lap


def harmonic_operator(handles: Sequence[int], zeros: Sequence[int]) -> np.ndarray:
    """``(468, H)`` matrix spreading values on ``handles`` smoothly over the face surface.

    Row ``i`` gives vertex ``i``'s value as a combination of the ``H`` handle
    values: handles reproduce themselves, ``zeros`` stay 0, and every other vertex
    takes the harmonic (Laplace) interpolation between them along the surface.
    """
    index = np.asarray(list(handles), dtype=np.int64)
    fixed = set(index.tolist()) | set(zeros)
    free = np.array([i for i in range(N_FACE) if i not in fixed], dtype=np.int64)
    lap = _laplacian()
    op = np.zeros((N_FACE, len(index)))
    op[index, np.arange(len(index))] = 1.0
    if len(free):
        rhs = -lap[np.ix_(free, index)]
        op[free] = np.linalg.solve(lap[np.ix_(free, free)], rhs)
    return op
