"""The ``warp`` engine: training-free talking heads by deforming the real face.

See :mod:`avatarlab.engines.warp.engine`; parts: :mod:`.topology` (triangulation),
:mod:`.rig` (mesh deformation), :mod:`.field` (piecewise-affine warps),
:mod:`.mouth` (mouth interior), :mod:`.motion` (blinks, head motion). The options
(:mod:`.options`) import nothing heavy; the rest is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatarlab._lazy import lazy_exports
from avatarlab.engines.warp.options import WarpOptions

if TYPE_CHECKING:
    from avatarlab.engines.warp.engine import WarpAvatar, WarpEngine
    from avatarlab.engines.warp.rig import FaceRig, Pose

_LAZY = {"WarpAvatar": ".engine", "WarpEngine": ".engine", "FaceRig": ".rig", "Pose": ".rig"}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["FaceRig", "Pose", "WarpAvatar", "WarpEngine", "WarpOptions"]
