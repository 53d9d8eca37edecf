"""Shared test fixtures: paths to ../shared data and fixtures, skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVATARLAB_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures"

os.environ.setdefault("AVATARLAB_PROGRESS", "0")

SERIAL = (
    "serve/",
    "engines/test_toy_engine.py",
    "speech/test_interrupt.py",
    "speech/test_listen.py",
    "speech/test_silence.py",
    "media/test_media_limits.py",
    "datasets/test_dataset_robustness.py",
)
"""Test files (under ``tests/``) that bound latencies, wall time or memory: marked
``serial``, so ``make test`` runs them alone after the parallel run of the others."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(tests) and path.relative_to(tests).as_posix().startswith(SERIAL):
            item.add_marker(pytest.mark.serial)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: integration tests need ../shared beside the repo")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (real clips, speech, portraits)."""
    return _need(DATA)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` (reference-implementation outputs)."""
    return _need(FIXTURES)


TALKING_CLIPS = ["hdtf_aoc_8s.mp4", "talk_a.mp4", "talk_b.mp4", "talk_c.mp4"]
