"""The ``liveportrait`` engine end to end with rule-B-filled weights in the official layout.

Filled weights make no face, so these tests check the plumbing: the reenact task runs
with ``engine="liveportrait"`` on a shared portrait and frames of a shared clip (size,
frame count, fps; batch of 2), paste-back leaves
the pixels outside the crop mask bit-identical, a source video is reenacted frame by frame
(each output on its own source frame, with that frame's motion; loop and stop), and
missing or wrong files fail with one line. The networks take ~10 s per frame on a loaded 2-core CPU, so clips are 2 frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from avatarlab.engines import get_engine
from avatarlab.engines.reenact import MotionDriver, ReenactOptions
from avatarlab.errors import CheckpointError, MissingWeightsError
from tests.engines._lp_weights import liveportrait_fill_weights

N_FRAMES = 2


@pytest.fixture(scope="module")
def weights() -> Path:
    return liveportrait_fill_weights()


@pytest.fixture(scope="module")
def driving(data_dir, tmp_path_factory) -> Path:
    """The first frames of expressions_silent.mp4 (frames 0 and 40 of it)."""
    from avatarlab.media import VideoWriter, iter_frames, probe

    src = data_dir / "video" / "expressions_silent.mp4"
    out = tmp_path_factory.mktemp("lp_drive") / "drive.mp4"
    with VideoWriter(out, probe(src).fps, crf=10) as w:
        for i, (frame, _) in enumerate(iter_frames(src)):
            if i in (0, 40):
                w.write(frame)
            if i >= 40:
                break
    return out


@pytest.fixture(scope="module")
def portrait(data_dir) -> Path:
    return data_dir / "image" / "anime_girl.jpg"


@pytest.mark.slow
def test_reenact_task_runs_with_liveportrait(weights, driving, portrait, tmp_path):
    from avatarlab.media import probe, read_image
    from avatarlab.tasks.reenact import reenact

    torch.set_num_threads(2)
    out = tmp_path / "out.mp4"
    result = reenact(
        portrait,
        driving,
        out=out,
        options=ReenactOptions(engine="liveportrait", audio="none"),
        engine_options={"checkpoint": str(weights), "batch_size": 2, "device": "cpu"},
    )
    info = probe(out)
    h, w = read_image(portrait).shape[:2]
    assert result.frames == N_FRAMES and info.n_frames == N_FRAMES
    assert (info.width, info.height) == (w, h)
    assert result.fps == pytest.approx(float(probe(driving).fps))


@pytest.mark.slow
def test_paste_back_keeps_the_outside(weights, driving, portrait):
    from avatarlab.media import iter_frames

    engine = get_engine("liveportrait", {"checkpoint": str(weights), "device": "cpu"})
    avatar = engine.prepare(portrait)
    frame = next(iter_frames(driving))[0]
    (out,) = list(engine.reenact(avatar, MotionDriver(live=[frame])))
    assert out.shape == avatar.image.shape and out.dtype == np.uint8
    # outside the pasted crop's mask the portrait is untouched, bit for bit
    h, w = avatar.image.shape[:2]
    inv = np.linalg.inv(np.vstack([avatar.matrix, [0, 0, 1]]))
    corners = np.array([[0, 0, 1], [512, 0, 1], [0, 512, 1], [512, 512, 1]]) @ inv.T
    ys, xs = np.mgrid[0:h, 0:w]
    inside = np.zeros((h, w), bool)
    lo, hi = corners[:, :2].min(0) - 2, corners[:, :2].max(0) + 2
    inside[(xs >= lo[0]) & (xs <= hi[0]) & (ys >= lo[1]) & (ys <= hi[1])] = True
    assert (~inside).any()
    assert np.array_equal(out[~inside], avatar.image[~inside])
    assert not np.array_equal(out, avatar.image)  # and inside it, the decoded crop


def _copy_with(weights: Path, folder: Path, part: str, state: dict) -> Path:
    for sub in ("base_models", "retargeting_models"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for f in (weights / sub).iterdir():
            os.symlink(f, folder / sub / f.name)
    target = folder / "base_models" / f"{part}.pth"
    target.unlink()
    torch.save(state, target)
    return folder


def test_missing_wrong_key_wrong_shape_are_one_line(weights, portrait, tmp_path):
    from avatarlab.tasks.reenact import reenact

    def run(folder: Path, kind: type[Exception] = CheckpointError) -> str:
        with pytest.raises(kind) as err:
            reenact(
                portrait,
                portrait,
                out=tmp_path / "x.mp4",
                options=ReenactOptions(engine="liveportrait", duration=0.2),
                engine_options={"checkpoint": str(folder), "device": "cpu"},
            )
        msg = str(err.value)
        assert "\n" not in msg
        assert not (tmp_path / "x.mp4").exists()
        return msg

    (tmp_path / "empty").mkdir()
    msg = run(tmp_path / "empty", MissingWeightsError)
    assert (
        "'appearance_feature_extractor.pth'" in msg and "huggingface.co/KwaiVGI/LivePortrait" in msg
    )

    state = torch.load(weights / "base_models" / "appearance_feature_extractor.pth")
    state["second.weight_renamed"] = state.pop("second.weight")
    wrong_key = _copy_with(weights, tmp_path / "key", "appearance_feature_extractor", state)
    msg = run(wrong_key)
    assert "1 missing keys (second.weight)" in msg and "1 unexpected keys" in msg

    state = torch.load(weights / "base_models" / "appearance_feature_extractor.pth")
    state["second.weight"] = state["second.weight"][:, :128]
    wrong_shape = _copy_with(weights, tmp_path / "shape", "appearance_feature_extractor", state)
    assert "second.weight: file [512, 128, 1, 1] vs expected [512, 256, 1, 1]" in run(wrong_shape)


def _clip(src: Path, out: Path, keep: tuple[int, ...]) -> Path:
    """The frames ``keep`` of ``src``, re-encoded (near lossless) as a short clip."""
    from avatarlab.media import VideoWriter, iter_frames, probe

    with VideoWriter(out, probe(src).fps, crf=10) as w:
        for i, (frame, _) in enumerate(iter_frames(src)):
            if i in keep:
                w.write(frame)
            if i >= max(keep):
                break
    return out


@pytest.fixture(scope="module")
def source_video(data_dir, tmp_path_factory) -> Path:
    """Two frames of hands_half_body.mp4 (0 and 60: head and hands have moved)."""
    folder = tmp_path_factory.mktemp("lp_source")
    return _clip(data_dir / "video" / "hands_half_body.mp4", folder / "source.mp4", (0, 60))


@pytest.fixture(scope="module")
def driving3(data_dir, tmp_path_factory) -> Path:
    """Three frames of expressions_silent.mp4 (0, 20, 40)."""
    folder = tmp_path_factory.mktemp("lp_drive3")
    return _clip(data_dir / "video" / "expressions_silent.mp4", folder / "drive.mp4", (0, 20, 40))


def _outside(matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(H, W)`` True away from the pasted 512 crop of ``matrix`` (2 px margin)."""
    h, w = shape[:2]
    inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    corners = np.array([[0, 0, 1], [512, 0, 1], [0, 512, 1], [512, 512, 1]]) @ inv.T
    lo, hi = corners[:, :2].min(0) - 2, corners[:, :2].max(0) + 2
    ys, xs = np.mgrid[0:h, 0:w]
    return ~((xs >= lo[0]) & (xs <= hi[0]) & (ys >= lo[1]) & (ys <= hi[1]))


def _stub_generator(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Replace F, W and G by zeros (the ~10 s per frame); M stays the real network."""

    def feature(x):  # type: ignore[no-untyped-def]
        return torch.zeros(len(x), 32, 16, 64, 64)

    def decode(feature, x_s, x_d):  # type: ignore[no-untyped-def]
        return {"out": torch.zeros(len(x_d), 3, 512, 512)}

    monkeypatch.setattr(engine.models, "feature", feature)
    monkeypatch.setattr(engine.models, "warp_decode", decode)


@pytest.mark.slow
def test_source_video_each_frame_keeps_its_own_motion(weights, source_video, driving3, monkeypatch):
    """Video to video: output i is source frame i (looped) moved by the driving change;
    M runs on each source frame's own crop and the result is pasted into that frame
    (F, W and G are stubbed: the motion and the paste are under test, not the image)."""
    from avatarlab.engines.liveportrait import crop as C
    from avatarlab.engines.liveportrait import keypoints as kpt
    from avatarlab.media import iter_frames

    torch.set_num_threads(2)
    engine = get_engine(
        "liveportrait", {"checkpoint": str(weights), "device": "cpu", "batch_size": 3}
    )
    _stub_generator(engine, monkeypatch)  # the pasted crop is black; M is real
    avatar = engine.prepare(source_video)
    assert avatar.is_video and len(avatar.frames) == 2 and all(avatar.frames)
    assert avatar.fps == pytest.approx(30.0)
    matrices = [f.matrix for f in avatar.frames]
    assert np.abs(matrices[0] - matrices[1]).max() > 1.0  # each frame has its own crop

    seen: list[torch.Tensor] = []
    real = kpt.driven_keypoints

    def spy(source, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert kwargs["source_video"] is True
        seen.append(source["exp"].clone())
        return real(source, *args, **kwargs)

    monkeypatch.setattr(kpt, "driven_keypoints", spy)
    notes: list[str] = []
    out = list(engine.reenact(avatar, MotionDriver(video=driving3), ReenactOptions(), notes))
    source = [f for f, _ in iter_frames(source_video)]
    assert len(out) == 3  # one per driving frame, the 2-frame source looped
    for i, frame in enumerate(out):
        j = i % 2
        assert frame.shape == source[j].shape and frame.dtype == np.uint8
        keep = _outside(matrices[j], frame.shape)
        assert keep.any() and np.array_equal(frame[keep], source[j][keep])
        assert not np.array_equal(frame[keep], source[1 - j][keep])
    # the motion of output i is that of source frame i % 2: M on its own crop
    own = [
        engine.models.kp_info(
            engine._tensor([C.model_input(C.warp_crop(source[j], matrices[j]), area=True)])
        )["exp"]
        for j in range(2)
    ]
    assert len(seen) == 3
    for i, exp in enumerate(seen):
        torch.testing.assert_close(exp, own[i % 2], atol=1e-5, rtol=0)
    assert not torch.allclose(own[0], own[1], atol=1e-4)


@pytest.mark.slow
def test_source_video_stop_ends_with_the_source(weights, source_video, driving3, monkeypatch):
    """``loop="stop"``: a 2-frame source gives 2 frames for a 3-frame drive (F, W and G
    are stubbed: only the frame plumbing is under test here)."""
    engine = get_engine(
        "liveportrait", {"checkpoint": str(weights), "device": "cpu", "batch_size": 1}
    )

    _stub_generator(engine, monkeypatch)
    avatar = engine.prepare(source_video)
    drive = MotionDriver(video=driving3)
    stop = list(engine.reenact(avatar, drive, ReenactOptions(loop="stop")))
    looped = list(engine.reenact(avatar, drive, ReenactOptions(loop="loop")))
    assert (len(stop), len(looped)) == (2, 3)
    assert all(f.shape == avatar.image.shape for f in stop + looped)
    assert np.array_equal(stop[0], looped[0]) and np.array_equal(looped[2], looped[0])
