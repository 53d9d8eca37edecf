"""The ``warp`` engine: training-free talking heads by deforming the real face.

See :mod:`avatarlab.engines.warp.engine`; parts: :mod:`.topology` (triangulation),
:mod:`.rig` (mesh deformation), :mod:`.field` (piecewise-affine warps),
:mod:`.mouth` (mouth interior), :mod:`.motion` (blinks, head motion).
"""

from avatarlab.engines.warp.engine import WarpAvatar, WarpEngine, WarpOptions
from avatarlab.engines.warp.rig import FaceRig, Pose

__all__ = ["FaceRig", "Pose", "WarpAvatar", "WarpEngine", "WarpOptions"]
