"""Post-processing of generated frames: ``--enhance`` (face restoration) and ``--background``.

Runs are a few frames long and written losslessly (``crf=0``), so pixels can be compared
with an un-processed run of the same job; H.264 keeps chroma at half resolution, which
spreads a change by a pixel or two, hence the small dilation of the face region.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from avatarlab.body.masks import BackgroundReplacer, cover, parse_background
from avatarlab.engines.enhance import face_region
from avatarlab.errors import MediaError, MissingWeightsError, OptionError
from avatarlab.media import SPEECH_RATE, read_audio, read_video, write_video
from avatarlab.tasks import (
    DubOptions,
    EnhanceOptions,
    PostOptions,
    ReenactOptions,
    SpeakOptions,
    dub,
    reenact,
    speak,
)

PORTRAIT = "image/painting.jpg"  # head and shoulders in front of a plain wall
GREEN = (0, 255, 0)


class Invert:
    """A stand-in restorer that changes every pixel of the crop (255 - x)."""

    name = "invert"

    def restore(self, faces: np.ndarray) -> np.ndarray:
        return 255 - faces


@pytest.fixture(scope="module")
def media(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 0.16 s speech clip, a 4-frame talking video and a 4-frame driving clip."""
    folder = tmp_path_factory.mktemp("post")
    speech = read_audio(data_dir / "audio" / "english_radio_8s.wav", SPEECH_RATE)
    clip = read_video(data_dir / "video" / "talk_c.mp4", end=4 / 25)
    video = folder / "talk4.mp4"
    write_video(video, clip.frames, clip.fps)
    drive = read_video(data_dir / "video" / "expressions_silent.mp4", end=4 / 25)
    driving = folder / "drive4.mp4"
    write_video(driving, drive.frames, drive.fps)
    return {
        "portrait": data_dir / PORTRAIT,
        "speech": speech[SPEECH_RATE : SPEECH_RATE + int(0.16 * SPEECH_RATE)],
        "video": video,
        "driving": driving,
    }


def _job(task: str, media: dict[str, Any], out: Path, post: PostOptions | None) -> np.ndarray:
    """Run ``task`` losslessly; its decoded frames ``(N, H, W, 3)``."""
    if task == "speak":
        speak(
            media["portrait"],
            audio=media["speech"],
            sample_rate=SPEECH_RATE,
            out=out,
            options=SpeakOptions(crf=0),
            post=post,
        )
    elif task == "dub":
        dub(
            media["video"],
            media["speech"],
            sample_rate=SPEECH_RATE,
            out=out,
            options=DubOptions(crf=0),
            post=post,
        )
    else:
        reenact(
            media["portrait"],
            media["driving"],
            out=out,
            options=ReenactOptions(crf=0, audio="none"),
            post=post,
        )
    return read_video(out).frames


@pytest.fixture(scope="module")
def plain(media: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each task's frames without post-processing, with the tracked face of each frame."""
    from avatarlab.face import FaceTracker

    folder = tmp_path_factory.mktemp("plain")
    runs = {}
    for task in ("speak", "dub", "reenact"):
        frames = _job(task, media, folder / f"{task}.mp4", None)
        with FaceTracker() as tracker:
            faces = [tracker.update(f, i / 25).landmarks for i, f in enumerate(frames)]
        runs[task] = (frames, faces)
    return runs


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


@pytest.mark.parametrize("task", ["speak", "dub", "reenact"])
def test_enhance_changes_only_the_face(
    task: str, media: dict[str, Any], plain: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    import avatarlab.tasks.postprocess as post

    monkeypatch.setattr(post, "make_restorer", lambda options: Invert())
    frames = _job(task, media, tmp_path / "e.mp4", PostOptions(enhance="gfpgan"))
    ref, faces = plain[task]
    assert frames.shape == ref.shape
    for got, want, lm in zip(frames, ref, faces, strict=True):
        hull = face_region(lm, got.shape[:2])
        outside = ~_dilate(hull, 4)
        assert np.array_equal(got[outside], want[outside])  # bit for bit
        core = hull & ~_dilate(~hull, 40)
        assert np.abs(got[core].astype(int) - want[core].astype(int)).mean() > 40


def test_enhance_with_gfpgan_fill_weights_end_to_end(
    media: dict[str, Any], plain: dict[str, Any], tmp_path: Path
) -> None:
    """The real checkpoint path: a rule-B GFPGANv1.4 file, one frame through the network."""
    import torch

    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.gfpgan.model import GFPGANv1Clean

    checkpoint = tmp_path / "GFPGANv1.4.pth"
    torch.save(fill_state_dict(GFPGANv1Clean(), rule="B").state_dict(), checkpoint)
    out = tmp_path / "g.mp4"
    settings = EnhanceOptions(checkpoint=str(checkpoint), device="cpu")
    speak(
        media["portrait"],
        audio=media["speech"][: SPEECH_RATE // 25],
        sample_rate=SPEECH_RATE,
        out=out,
        options=SpeakOptions(crf=0),
        post=PostOptions(enhance="gfpgan", enhancer=settings),
    )
    (got,) = read_video(out).frames
    want, lm = plain["speak"][0][0], plain["speak"][1][0]
    hull = face_region(lm, got.shape[:2])
    assert np.array_equal(got[~_dilate(hull, 4)], want[~_dilate(hull, 4)])
    assert np.abs(got[hull].astype(int) - want[hull].astype(int)).mean() > 5


@pytest.mark.parametrize(
    ("model", "filename"), [("gfpgan", "GFPGANv1.4.pth"), ("codeformer", "codeformer.pth")]
)
def test_missing_weights_is_one_line_before_any_work(
    media: dict[str, Any], tmp_path: Path, monkeypatch: Any, model: str, filename: str
) -> None:
    from avatarlab.engines.warp.engine import WarpEngine

    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "cache"))
    monkeypatch.setattr(WarpEngine, "prepare", _never)
    out = tmp_path / "o.mp4"
    post = PostOptions(enhance=model, enhancer=EnhanceOptions(device="cpu"))  # type: ignore[arg-type]
    with pytest.raises(MissingWeightsError) as err:
        _job("speak", media, out, post)
    msg = str(err.value)
    assert "\n" not in msg and f"'{filename}'" in msg and "/releases/download/" in msg
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def _never(*args: object) -> None:
    raise AssertionError("the portrait was analysed before the options were checked")


def test_background_colour_replaces_what_is_not_the_person(
    media: dict[str, Any], plain: dict[str, Any], tmp_path: Path
) -> None:
    frames = _job("speak", media, tmp_path / "b.mp4", PostOptions(background="#00ff00"))
    ref, faces = plain["speak"]
    h, w = frames.shape[1:3]
    corners = np.zeros((h, w), bool)
    corners[: h // 8, : w // 8] = corners[: h // 8, -w // 8 :] = True  # the wall, far from him
    for got, want, lm in zip(frames, ref, faces, strict=True):
        assert np.abs(got[corners].astype(int) - GREEN).max() <= 3  # YUV 4:2:0 rounding
        core = face_region(lm, (h, w)) & ~_dilate(~face_region(lm, (h, w)), 20)
        assert np.abs(got[core].astype(int) - want[core].astype(int)).max() <= 3
        assert not np.array_equal(got, want)


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("plaid", OptionError, "not blur, a colour"),
        ("nope/sky.png", OptionError, "nor an existing image file"),
        ("#12345", OptionError, "nor an existing image file"),
        ("", OptionError, "empty"),
    ],
)
def test_bad_backgrounds_are_one_line(value: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words) as err:
        PostOptions(background=value)
    assert "\n" not in str(err.value)


def test_unreadable_background_image_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "sky.png"
    fake.write_text("not a picture")
    with pytest.raises(MediaError) as err:
        PostOptions(background=str(fake))
    assert "\n" not in str(err.value) and "sky.png" in str(err.value)


def test_colours_and_options() -> None:
    assert parse_background("green") == (0, 177, 64)  # our chroma-key green first
    assert parse_background("#0f0") == GREEN
    assert parse_background("orange") == (255, 165, 0)  # CSS names
    with pytest.raises(OptionError, match="upscale"):
        PostOptions(enhance="gfpgan", enhancer=EnhanceOptions(upscale=2))
    with pytest.raises(OptionError, match="mask_smoothing"):
        PostOptions(mask_smoothing=1.0)


def test_cover_keeps_the_aspect_and_centres() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # the centre square
    out = cover(image, (60, 60))
    assert out.shape == (60, 60, 3) and out.min() == 255  # only the centre is left


def test_mask_smoothing_is_an_exponential_average() -> None:
    class Steps:
        masks = iter([np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)])

        def mask(self, frame: np.ndarray) -> np.ndarray:
            return next(self.masks)

        def close(self) -> None:
            pass

    replacer = BackgroundReplacer(GREEN, smoothing=0.25)
    replacer._segmenter = Steps()  # type: ignore[assignment]
    frame = np.full((4, 4, 3), 100, np.uint8)
    assert replacer(frame)[0, 0].tolist() == [0, 255, 0]
    np.testing.assert_allclose(replacer.mask(frame), 0.75)  # 0.75 * 1 + 0.25 * 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarlab", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_refuses_bad_post_options_in_one_line(media: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    portrait = str(media["portrait"])
    res = _cli(
        "speak", "--image", portrait, "--text", "hi", "-o", str(out), "--background", "plaid"
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "plaid" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _cli("serve", "--background", str(tmp_path / "none.jpg"), "--port", "1")
    assert res.returncode == 2 and "none.jpg" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["speak", "dub", "reenact", "serve"])
def test_help_lists_the_post_processing_flags(command: str) -> None:
    from typer.testing import CliRunner

    from avatarlab.cli import app

    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "--background" in res.output and "--mask-smoothing" in res.output
    flags = ("--enhance ", "--enhance-fidelity", "--enhance-checkpoint", "--enhance-temporal")
    for flag in flags:
        assert (flag in res.output) == (command != "serve"), flag
