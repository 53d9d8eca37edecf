"""Fill the on-disk cache of the compiled metric kernels (install-time warm-up).

The numba kernels of :mod:`avatarlab.metrics._kernels` (SSIM, CPBD, NIQE) compile on
first use, about 30 s in all, and are cached on disk (``cache=True``). Running the
public metric functions once on tiny synthetic frames compiles exactly the signatures
an evaluation uses (uint8 RGB frames, float64 planes; float64 SSIM for the Y-channel
option), so a user's first ``avatarlab eval`` loads them in well under a second.
``scripts/bootstrap.sh`` runs it after the install::

    python -m avatarlab.metrics._warmup
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WarmUp:
    """What a warm-up did: kernels loaded from the cache or compiled, where, how long."""

    hits: int
    misses: int
    cache_dirs: tuple[str, ...]
    seconds: float


def _frames(n: int = 2, size: int = 192) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 frames with edges and texture (every kernel path runs)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    base = ((x // 24 + y // 24) % 2 * 160 + 40).astype(np.float64)
    frames = base[None, :, :, None] + rng.normal(0, 12, (n, size, size, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def _dispatchers() -> list[object]:
    from numba.core.registry import CPUDispatcher

    from avatarlab.metrics import _kernels

    return [v for v in vars(_kernels).values() if isinstance(v, CPUDispatcher)]


def warm_up() -> WarmUp:
    """Run SSIM (RGB and Y), CPBD and NIQE once on synthetic frames; report cache use.

    ``hits``/``misses``: kernel signatures loaded from / compiled into the cache (a
    second run in a fresh process has no misses when the cache folder is writable).
    """
    from avatarlab.metrics.cpbd import cpbd
    from avatarlab.metrics.niqe import niqe
    from avatarlab.metrics.quality import PixelOptions, ssim

    start = time.perf_counter()
    a = _frames()
    b = np.ascontiguousarray(a[::-1])
    ssim(a, b)
    ssim(a, b, PixelOptions(y_channel=True))
    cpbd(a)
    niqe(a)
    hits = misses = 0
    dirs: set[str] = set()
    for d in _dispatchers():
        hits += sum(d.stats.cache_hits.values())  # type: ignore[attr-defined]
        misses += sum(d.stats.cache_misses.values())  # type: ignore[attr-defined]
        cache = getattr(d, "_cache", None)
        if getattr(cache, "_cache_path", None):
            dirs.add(str(cache._cache_path))  # type: ignore[union-attr]
    return WarmUp(hits, misses, tuple(sorted(dirs)), time.perf_counter() - start)


def main() -> int:
    """Command line: warm the cache and say where it is (exit 1 when nothing is cached)."""
    res = warm_up()
    where = ", ".join(res.cache_dirs) or "nowhere (no writable cache folder)"
    print(
        f"[warm-up] metric kernels: {res.misses} compiled, {res.hits} loaded from the cache "
        f"in {res.seconds:.1f} s; cache: {where}"
    )
    return 0 if res.cache_dirs else 1


if __name__ == "__main__":
    sys.exit(main())
