"""GFPGAN v1.3 / v1.4 ("clean" architecture): blind face restoration with a StyleGAN2 prior.

Importing this package registers the official checkpoints (``GFPGANv1.3.pth``,
``GFPGANv1.4.pth``) without importing torch; the network (:mod:`.model`) is imported on
first use. Run it on frames through :mod:`avatarlab.engines.enhance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avatarlab.engines.gfpgan.checkpoints import GFPGAN_V13, GFPGAN_V14, VERSIONS, load_gfpgan

if TYPE_CHECKING:
    from avatarlab.engines.gfpgan.model import GFPGANv1Clean


def __getattr__(name: str) -> Any:
    if name == "GFPGANv1Clean":
        return importlib.import_module("avatarlab.engines.gfpgan.model").GFPGANv1Clean
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GFPGAN_V13", "GFPGAN_V14", "VERSIONS", "GFPGANv1Clean", "load_gfpgan"]
