"""Reenactment metrics on the runner's face tracks: AKD, APD and AED.

All three read the tracks the evaluation already computes for both videos (478-point
mesh, its 68 iBUG points and the PnP head pose, :class:`avatarlab.face.FaceTrack`):
no extra decoding or tracking pass. Prediction and reference share the reference's
pixel grid and timeline (the runner resamples the prediction). Frames where either
face is missing are left out of the means. Each is a per-clip mean over frames, then
a mean over clips.

- **AKD** (average keypoint distance), ``akd``: mean Euclidean distance of the 68
  corresponding iBUG points (all 68: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
  lips 48-67, from the mesh by :data:`avatarlab.face.MESH_TO_68`), divided per frame
  by the reference's inter-ocular distance (eye centre to eye centre); ``akd_px`` is
  the same in pixels of the reference grid. FOMM and face-vid2vid report AKD in pixels
  at 256x256 with face-alignment's 2D-FAN landmarks; ``akd_px`` on 256x256 clips is
  the comparable figure, with our landmarks instead of FAN's.
- **APD** (average pose distance), ``apd``: mean absolute difference of yaw, pitch
  and roll in degrees (our PnP pose, :mod:`avatarlab.face.pose`: yaw > 0 the subject
  turns to their left, pitch > 0 up, roll > 0 clockwise in the image), differences
  wrapped to [-180, 180), averaged over the three angles; ``apd_yaw`` / ``apd_pitch``
  / ``apd_roll`` per angle. Papers use other estimators (Hopenet, a 3DMM fit), so
  values compare in kind, not digit for digit.
- **AED** (average expression distance), ``aed``, defined on our canonical mesh: each
  frame's mesh is made pose-free (:func:`avatarlab.face.canonical.canonical_meshes`:
  Umeyama similarity on the expression-free points, inverted), giving the 468 surface
  points ``h_t`` in canonical centimetres. The expression of frame t is its change
  from the clip's anchor frame a (the first frame with both faces),
  ``e_t = h_t - h_a``, and ``AED_t = mean over the 468 points of |e_pred_t - e_ref_t|``
  divided by the canonical face's inter-ocular distance (:data:`CANONICAL_IOD`, 6.45
  cm), so it reads in the same unit as ``akd``; the anchor frame itself (0 by
  construction) is left out. Why so: pose and scale are removed by the fit, and the
  person's own face shape by the anchor, so cross-identity reenactment (a source
  face driven by another person) is not charged for the identity it is supposed to
  keep; that is measured by CSIM. The cost is that an expression error already
  present in the anchor frame is not seen. Papers differ: FOMM's "AED" is an
  *identity* distance (L2 between re-identification embeddings), PIRenderer's is a
  distance between 3DMM *expression* coefficients; ours is neither, and none of the
  three compare numerically.
"""

from __future__ import annotations

import numpy as np

from avatarlab.face.canonical import CANONICAL_FACE_3D, canonical_meshes
from avatarlab.face.landmarks68 import inter_ocular_distance, mesh_to_68
from avatarlab.metrics import _tracks
from avatarlab.metrics.base import LOWER, EvalContext, Metric, Requirements, register_metric

#: Surface points of the mesh (the 10 iris points after them are left out of AED).
SURFACE_POINTS = len(CANONICAL_FACE_3D)
#: Inter-ocular distance (eye centres of the 68-point eyes) of the canonical face, cm.
CANONICAL_IOD = float(inter_ocular_distance(mesh_to_68(CANONICAL_FACE_3D[None]))[0])
ANGLES = ("yaw", "pitch", "roll")


def keypoint_distance(pred68: np.ndarray, ref68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame AKD of ``(N, 68, 2)`` pixel landmarks: ``(pixels, inter-ocular units)``.

    Mean distance of the 68 point pairs; the second is divided by the reference's
    inter-ocular distance in that frame. ``(N,)`` float64 each, NaN where a face is missing.
    """
    p, r = np.asarray(pred68, np.float64), np.asarray(ref68, np.float64)
    px = np.linalg.norm(p - r, axis=-1).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return px, px / inter_ocular_distance(r)


def pose_distance(pred_pose: np.ndarray, ref_pose: np.ndarray) -> np.ndarray:
    """``(N, 3)`` absolute yaw, pitch, roll differences in degrees, wrapped to [0, 180]."""
    diff = np.asarray(pred_pose, np.float64) - np.asarray(ref_pose, np.float64)
    return np.abs((diff + 180.0) % 360.0 - 180.0)


def expression_distance(pred_mesh: np.ndarray, ref_mesh: np.ndarray) -> np.ndarray:
    """Per-frame AED (module docstring) of ``(N, 468 | 478, 3)`` pixel meshes, ``(N,)``.

    In units of the canonical inter-ocular distance; NaN at the anchor frame and where
    a face is missing; all NaN when no frame has both faces.
    """
    hp = canonical_meshes(pred_mesh)[:, :SURFACE_POINTS]
    hr = canonical_meshes(ref_mesh)[:, :SURFACE_POINTS]
    both = np.flatnonzero(np.isfinite(hp).all((1, 2)) & np.isfinite(hr).all((1, 2)))
    out = np.full(len(hp), np.nan)
    if len(both) == 0:
        return out
    a = both[0]
    change = (hp - hp[a]) - (hr - hr[a])
    out = np.linalg.norm(change, axis=-1).mean(-1) / CANONICAL_IOD
    out[a] = np.nan
    return out


class _ReenactMetric(_tracks.ClipSeries, Metric):
    """Per-clip comparison of the predicted and reference tracks: series, then means."""

    requires = Requirements(reference=True, face_track=True)
    per_clip = True

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        series = self._series(ctx.pred_track, ctx.ref_track)
        self._last = series
        self.clips.append({k: _tracks.nanmean(series[k]) for k in self.keys})

    def _series(self, pred_track: object, ref_track: object) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Mean over clips of each clip's mean over the frames with both faces."""
        return _tracks.mean_over_clips(self.clips, tuple(self.keys))


@register_metric("akd")
class AKDMetric(_ReenactMetric):
    """Average keypoint distance of the 68 iBUG points, lower is better (module docstring)."""

    name = "akd"
    keys = {"akd": LOWER, "akd_px": LOWER}
    conventions = (
        "all 68 iBUG points from the mesh, mean point distance on the reference grid, no "
        "alignment; akd: / reference inter-ocular distance (eye centres) per frame; akd_px: "
        "pixels (FOMM reports pixels at 256x256, FAN landmarks); mean over frames, then clips"
    )

    def _series(self, pred_track: object, ref_track: object) -> dict[str, np.ndarray]:
        p = _tracks.landmarks68(pred_track, "predicted")
        r = _tracks.landmarks68(ref_track, "reference")
        _tracks.same_length(p, r)
        px, norm = keypoint_distance(p, r)
        return {"akd": norm, "akd_px": px}


@register_metric("apd")
class APDMetric(_ReenactMetric):
    """Average head-pose distance in degrees, lower is better (module docstring)."""

    name = "apd"
    keys = {"apd": LOWER, **{f"apd_{a}": LOWER for a in ANGLES}}
    conventions = (
        "PnP head pose of the mesh (yaw, pitch, roll, degrees), mean absolute difference "
        "wrapped to [-180, 180), apd: mean of the 3 angles; not Hopenet or a 3DMM; mean "
        "over frames, then clips"
    )

    def _series(self, pred_track: object, ref_track: object) -> dict[str, np.ndarray]:
        p = _tracks.pose(pred_track, "predicted")
        r = _tracks.pose(ref_track, "reference")
        _tracks.same_length(p, r)
        diff = pose_distance(p, r)
        return {"apd": diff.mean(-1), **{f"apd_{a}": diff[:, i] for i, a in enumerate(ANGLES)}}


@register_metric("aed")
class AEDMetric(_ReenactMetric):
    """Average expression distance on the pose-free canonical mesh, lower is better."""

    name = "aed"
    keys = {"aed": LOWER}
    conventions = (
        "468 mesh points made pose-free (Umeyama on rigid points -> canonical cm), change "
        "from the clip's first frame with both faces, mean point distance / canonical "
        f"inter-ocular distance ({CANONICAL_IOD:.2f} cm); not FOMM's (identity) or "
        "PIRenderer's (3DMM) AED; mean over frames, then clips"
    )

    def _series(self, pred_track: object, ref_track: object) -> dict[str, np.ndarray]:
        p, r = _tracks.mesh(pred_track, "predicted"), _tracks.mesh(ref_track, "reference")
        _tracks.same_length(p, r)
        return {"aed": expression_distance(p, r)}


__all__ = [
    "ANGLES",
    "CANONICAL_IOD",
    "AEDMetric",
    "AKDMetric",
    "APDMetric",
    "expression_distance",
    "keypoint_distance",
    "pose_distance",
]
