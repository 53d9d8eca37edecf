"""Fixtures of the training tests: the shared clips prepared once, one torch thread."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Two talking clips (5 s each, 25 fps): 250 frames of 96x96 crops in the train split.
CLIPS = ("talk_b.mp4", "talk_c.mp4")


@pytest.fixture(scope="session")
def prepared(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``avatarlab prepare --preset wav2lip --size 96`` of :data:`CLIPS` (about 20 s)."""
    from avatarlab.datasets import PrepareOptions, prepare

    src = tmp_path_factory.mktemp("train_src")
    for name in CLIPS:
        (src / name).symlink_to(data_dir / "video" / name)
    out = tmp_path_factory.mktemp("train_prepared")
    summary = prepare(src, out, PrepareOptions(preset="wav2lip", size=96), workers=2)
    assert summary.kept_segments == len(CLIPS), summary
    return out


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one thread: on a shared 2-core machine two torch threads contending with
    other processes ran a SyncNet step ~6x slower than one thread did."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
