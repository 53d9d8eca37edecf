"""Named index groups of MediaPipe's 478-point face mesh, in one place.

"Left" and "right" are the *subject's* sides, as in MediaPipe: the subject's
right eye appears on the image's left in a frontal, non-mirrored picture.
Contours are ordered loops (the last point connects back to the first), taken
from MediaPipe's ``face_mesh_connections`` edge sets.
"""

from __future__ import annotations

# fmt: off
NUM_MESH_POINTS = 478
"""Points with ``refine_landmarks=True`` (468 face points + 2 x 5 iris points)."""

NUM_FACE_POINTS = 468
"""Points of the face surface without the iris refinement."""

LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
"""Outer lip contour, from the subject's right mouth corner over the upper lip."""

LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
"""Inner lip contour (the mouth opening), same orientation as ``LIPS_OUTER``."""

MOUTH_CORNERS = (61, 291)
"""Subject's right, left outer mouth corners."""

UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
UPPER_LIP_OUTER = 0
LOWER_LIP_OUTER = 17

RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
"""Subject's right eye contour, from the outer corner over the upper lid."""

LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
"""Subject's left eye contour, from the outer corner over the upper lid."""

RIGHT_EYE_CORNERS = (33, 133)
"""Subject's right eye: outer, inner corner."""

LEFT_EYE_CORNERS = (263, 362)
"""Subject's left eye: outer, inner corner."""

RIGHT_EYE_LIDS = (159, 145)
"""Subject's right eye: upper, lower lid midpoints (for eye openness)."""

LEFT_EYE_LIDS = (386, 374)
"""Subject's left eye: upper, lower lid midpoints."""

RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473
RIGHT_IRIS = (468, 469, 470, 471, 472)
"""Subject's right iris: centre then four boundary points (needs the 478-point mesh)."""
LEFT_IRIS = (473, 474, 475, 476, 477)
"""Subject's left iris: centre then four boundary points."""

RIGHT_EYEBROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
"""Subject's right eyebrow loop: lower edge outward-in, then upper edge back."""
LEFT_EYEBROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
"""Subject's left eyebrow loop."""

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
"""Face outline from the forehead top (10) over the subject's left side to the chin (152)."""

JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
"""Lower part of ``FACE_OVAL``: ear level on the subject's right, over the chin, to the left."""

NOSE_TIP = 1
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)
"""Nose ridge from between the eyes down to just above the tip."""
NOSE_BOTTOM = (98, 97, 2, 326, 327)
"""Lower nose edge, subject's right alar base to the left one."""
CHIN = 152
FOREHEAD = 10

# fmt: on
MOUTH_REGION = tuple(sorted(set(LIPS_OUTER) | set(LIPS_INNER)))
"""Every lip point, for mouth crops and masks."""
