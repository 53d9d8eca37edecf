"""Install-time warm-up of the compiled metric kernels: it fills a cache the next process reuses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _warm(cache: str) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run(
        [sys.executable, "-m", "avatarlab.metrics._warmup"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return out.stdout


@pytest.mark.slow  # the first run compiles every kernel (~20 s of CPU)
def test_warm_up_fills_a_cache_that_a_fresh_process_reuses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = str(tmp_path / "numba")
    first = _warm(cache)
    assert "0 loaded from the cache" in first and str(tmp_path) in first
    second = _warm(cache)
    assert " 0 compiled" in second, second
    assert "0 loaded" not in second
    assert any(p.suffix == ".nbc" for p in (tmp_path / "numba").rglob("*"))
