"""CodeFormer: blind face restoration by codebook lookup, with a fidelity weight.

Importing this package registers the official ``codeformer.pth`` (S-Lab License 1.0,
non-commercial) without importing torch; the network (:mod:`.model`) is imported on first
use. Run it on frames through :mod:`avatarlab.engines.enhance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avatarlab.engines.codeformer.checkpoints import CODEFORMER, load_codeformer

if TYPE_CHECKING:
    from avatarlab.engines.codeformer.model import CodeFormer


def __getattr__(name: str) -> Any:
    if name == "CodeFormer":
        return importlib.import_module("avatarlab.engines.codeformer.model").CodeFormer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CODEFORMER", "CodeFormer", "load_codeformer"]
