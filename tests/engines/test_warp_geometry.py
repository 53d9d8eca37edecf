"""Warp engine geometry: triangulation, harmonic spread, the face rig, piecewise-affine maps."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from avatarlab.engines.warp import field as fld
from avatarlab.engines.warp import rig
from avatarlab.engines.warp import topology as tp
from avatarlab.face.canonical import CANONICAL_FACE_3D

PX_PER_CM = 12.0


def canonical_mesh(
    roll_deg: float = 0.0, scale: float = PX_PER_CM, centre=(256.0, 256.0)
) -> np.ndarray:
    """A frontal (optionally rolled) 478-point pixel mesh built from the canonical face."""
    a = np.radians(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pts = scale * CANONICAL_FACE_3D @ rot.T + np.array([*centre, 0.0])
    irises = np.repeat(pts[[468 - 1]], 10, axis=0)  # placeholder iris rows (never used)
    return np.vstack([pts, irises])


def test_surface_is_mediapipes_852_triangles_with_manifold_edges():
    tris = tp.surface_triangles()
    assert tris.shape == (852, 3)
    uses = collections.Counter(
        tuple(sorted(e)) for t in tris for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2]))
    )
    assert max(uses.values()) == 2
    # Boundary edges: the face oval (36), inner lips (20) and two eyes (16 each).
    assert sum(1 for v in uses.values() if v == 1) == 36 + 20 + 32


def test_warp_triangles_tile_the_ring_without_overlap():
    pts = tp.canonical_vertices()[:, :2]
    t = tp.warp_triangles()
    a, b, c = pts[t[:, 0]], pts[t[:, 1]], pts[t[:, 2]]
    area = 0.5 * (
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    )
    ring = tp.ring_canonical()[:, :2]
    ring_area = 0.5 * abs(ring[:, 0] @ np.roll(ring[:, 1], 1) - ring[:, 1] @ np.roll(ring[:, 0], 1))
    assert (area > 0).all()  # counter-clockwise, none degenerate on the canonical face
    assert area.sum() == pytest.approx(ring_area, rel=1e-9)


def test_harmonic_operator_reproduces_handles_and_constants():
    handles = [13, 14, 152, 1]
    op = tp.harmonic_operator(handles, [10])
    assert np.allclose(op[handles], np.eye(len(handles)))
    assert np.allclose(op[10], 0.0)
    # With no zeros, equal handle values spread as that constant everywhere.
    op_free = tp.harmonic_operator(handles, [])
    assert np.allclose(op_free @ np.ones(len(handles)), 1.0)
    values = op @ np.ones(len(handles))
    assert (values >= -1e-9).all() and (values <= 1 + 1e-9).all()  # maximum principle


def test_jaw_weights_lower_lip_one_upper_lip_zero_corners_between():
    w = rig.jaw_weights()
    assert w[list(tp.MOUTH_LOWER)] == pytest.approx(1.0)
    assert w[list(tp.MOUTH_UPPER)] == pytest.approx(0.0)
    assert 0.2 < w[61] < 0.8 and 0.2 < w[291] < 0.8


def test_neutral_closes_an_open_mouth_exactly():
    face = rig.FaceRig(canonical_mesh())
    assert rig.lip_gaps(face.source)[4, 1] > 0.5  # the canonical face's lips are apart
    assert np.abs(rig.lip_gaps(face.neutral)).max() < 1e-9
    assert face.opening_angle > 0


def test_jaw_opening_is_monotonic_and_lip_closure_wins():
    face = rig.FaceRig(canonical_mesh())
    gaps = [
        rig.lip_gaps(face.deform(rig.Pose(jaw_open=j, lip_closed=0.0)))[4, 1]
        for j in (0, 0.3, 0.6, 1.0)
    ]
    assert np.all(np.diff(gaps) > 0.1)
    expected = np.radians(rig.JAW_MAX_DEG) * rig._jaw_rate()
    assert gaps[-1] == pytest.approx(expected, rel=0.05)
    closed = face.deform(rig.Pose(jaw_open=0.8, lip_closed=1.0))
    assert np.abs(rig.lip_gaps(closed)).max() < 1e-9


@pytest.mark.parametrize(
    "pose",
    [
        rig.Pose(jaw_open=1.0, lip_closed=0.0, upper_lip_raise=1.0),
        rig.Pose(jaw_open=0.5, lip_spread=-1.0, lip_closed=0.0),
        rig.Pose(jaw_open=0.5, lip_spread=1.0, lip_closed=0.5),
    ],
)
def test_mouth_poses_leave_everything_above_the_nose_still(pose):
    face = rig.FaceRig(canonical_mesh())
    offsets = face.displacements(pose)
    above = CANONICAL_FACE_3D[:, 1] < rig.ABOVE_NOSE_CM - 0.2
    above &= rig.jaw_weights() == 0.0
    assert np.abs(offsets[above]).max() == 0.0
    assert np.abs(offsets).max() > 0.2 * PX_PER_CM


def test_spread_widens_and_pucker_narrows_the_mouth():
    face = rig.FaceRig(canonical_mesh())

    def width(spread: float) -> float:
        head = face.deform(rig.Pose(lip_spread=spread))
        return float(head[291, 0] - head[61, 0])

    assert width(1.0) == pytest.approx(width(0.0) * (1 + rig.SPREAD_WIDEN), rel=1e-6)
    assert width(-1.0) == pytest.approx(width(0.0) * (1 - rig.PUCKER_NARROW), rel=1e-6)


def test_blink_brings_upper_lids_down_to_the_lower_lids():
    face = rig.FaceRig(canonical_mesh())
    upper, lower = list(tp.RIGHT_LID_UPPER), list(tp.RIGHT_LID_LOWER)
    before = face.neutral[lower, 1] - face.neutral[upper, 1]
    closed = face.deform(rig.Pose(blink=1.0))
    assert np.abs(closed[lower] - closed[upper]).max() < 1e-9  # the lids meet
    travel = (closed[upper, 1] - face.neutral[upper, 1]) / before
    assert travel.min() > 0.75 and travel.mean() == pytest.approx(rig.LID_CLOSE, abs=0.1)
    above = list(tp.RIGHT_LID_ABOVE)  # the lid fold above moves down with the lid
    fold = closed[above] - face.neutral[above]
    assert np.allclose(fold, rig.LID_FOLD * (closed[upper] - face.neutral[upper]))
    half = face.deform(rig.Pose(blink=0.5))
    assert np.allclose(
        half[upper] - face.neutral[upper], 0.5 * (closed[upper] - face.neutral[upper])
    )


def test_displacements_follow_head_roll_and_scale():
    pose = rig.Pose(jaw_open=0.7, lip_spread=0.4, lip_closed=0.0)
    base = rig.FaceRig(canonical_mesh()).displacements(pose)
    turned = rig.FaceRig(canonical_mesh(roll_deg=25.0, scale=2 * PX_PER_CM)).displacements(pose)
    a = np.radians(25.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    assert np.allclose(turned, 2.0 * base @ rot.T, atol=1e-6)


# -- piecewise-affine maps ---------------------------------------------------------------


def grid_mesh(n: int = 7, size: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """An n x n vertex grid over [10, 10 + size]^2 split into triangles."""
    xs = np.linspace(10.0, 10.0 + size, n)
    gx, gy = np.meshgrid(xs, xs)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            tris += [(i, i + 1, i + n + 1), (i, i + n + 1, i + n)]
    return pts, np.array(tris, dtype=np.int32)


def test_backward_map_matches_matplotlib_linear_interpolation():
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    src, tris = grid_mesh()
    rng = np.random.default_rng(0)
    dst = src.copy()
    interior = (src[:, 0] > 11) & (src[:, 0] < 69) & (src[:, 1] > 11) & (src[:, 1] < 69)
    dst[interior] += rng.uniform(-3.0, 3.0, size=(interior.sum(), 2))  # smooth, no folds
    region = fld.Region(12, 12, 68, 68)
    got = fld.backward_map(src, dst, tris, region, step=1.0)
    tri = Triangulation(dst[:, 0], dst[:, 1], tris)
    ys, xs = np.mgrid[region.y0 : region.y1, region.x0 : region.x1]
    ref_x = LinearTriInterpolator(tri, src[:, 0])(xs, ys)
    ref_y = LinearTriInterpolator(tri, src[:, 1])(xs, ys)
    assert np.abs(got[..., 0] - ref_x).max() < 1e-3
    assert np.abs(got[..., 1] - ref_y).max() < 1e-3
    coarse = fld.backward_map(src, dst, tris, region, step=2.0)
    error = np.abs(coarse - got)  # the grid map is bilinear between grid points: kinks blur
    assert error.mean() < 0.1 and error.max() < 0.75


def test_only_moving_triangles_change_pixels():
    src, tris = grid_mesh()
    offsets = np.zeros_like(src)
    offsets[24] = [2.0, -1.5]  # one interior vertex (row 3, column 3)
    moving = fld.moving_triangles(tris, offsets)
    assert len(moving) == 6 and (moving == 24).any(axis=1).all()
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(90, 90, 3), dtype=np.uint8)
    region = fld.Region.around((src + offsets)[np.unique(moving)], frame.shape)
    out = frame.copy()
    out[region.y0 : region.y1, region.x0 : region.x1] = fld.remap_region(
        frame, fld.backward_map(src, src + offsets, moving, region)
    )
    changed = np.argwhere((out != frame).any(axis=2))
    lo, hi = src[np.unique(moving)].min(0) - 3, src[np.unique(moving)].max(0) + 3
    assert len(changed) > 50
    assert (changed[:, ::-1] >= lo).all() and (changed[:, ::-1] <= hi).all()
    identity = fld.backward_map(src, src, tris[:0], fld.Region(0, 0, 90, 90))
    assert np.array_equal(fld.remap_region(frame, identity), frame)  # exact when nothing moves
