"""LivePortrait's five files in the official layout, filled by rule B, built once a session.

Building and saving the full-size networks takes ~5 s; the contract test and the engine
tests share one folder (read only).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from pathlib import Path


@functools.cache
def liveportrait_fill_weights() -> Path:
    """The folder holding the filled checkpoints (removed when the test process ends)."""
    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.liveportrait.checkpoints import BASE_PARTS, save_official_layout
    from avatarlab.engines.liveportrait.networks import build

    folder = Path(tempfile.mkdtemp(prefix="lp_fill_"))
    weakref.finalize(liveportrait_fill_weights, shutil.rmtree, folder, True)
    base = {p: fill_state_dict(build(p), "B") for p in BASE_PARTS}
    mlps = {n: fill_state_dict(build(n), "B") for n in ("stitching", "lip", "eye")}
    return save_official_layout(folder, base, mlps)
