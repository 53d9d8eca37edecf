"""End-to-end tests of the foundation CLI commands: info, faces, crop, speak, demo, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.media import probe, write_video
from avatarlab.media.files import write_image

runner = CliRunner()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point (with its error handling), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "avatarlab", *args], capture_output=True, text=True, timeout=300
    )


def test_help_lists_commands() -> None:
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("info", "faces", "crop", "speak", "dub", "demo", "eval", "prepare", "serve"):
        assert cmd in out.output


def test_info_reports_streams_and_faces(data_dir: Path) -> None:
    out = runner.invoke(app, ["info", str(data_dir / "video" / "talk_a.mp4"), "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["n_frames"] == 135 and abs(info["fps"] - 22.13) < 0.01
    assert info["has_audio"] and info["faces"] == 1 and info["frames_with_face"] == 5


def test_faces_on_image_and_video(data_dir: Path, tmp_path: Path) -> None:
    img = data_dir / "image" / "woman_photo.jpg"
    out = runner.invoke(
        app,
        [
            "faces",
            str(img),
            "-o",
            str(tmp_path / "img.json"),
            "--annotate",
            str(tmp_path / "a.png"),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "img.json").read_text())
    assert data["format"] == "avatarlab.Faces/2" and data["kind"] == "image"
    faces = data["frames"][0]["faces"]
    assert len(faces) >= 1 and len(faces[0]["landmarks68"]) == 68
    assert len(faces[0]["mesh"]) == 478
    # Rounded to 0.01 px: no float32 tails such as 144.83999633789062.
    assert all(round(v, 2) == v for v in np.ravel(faces[0]["landmarks68"]))
    assert (tmp_path / "a.png").stat().st_size > 1000

    # 1 s of a real clip: track JSON with one row per frame, annotated MP4 of the same length
    from avatarlab.media import read_video

    clip = read_video(data_dir / "video" / "talk_c.mp4")
    short = tmp_path / "short.mp4"
    write_video(short, clip.frames[:25], clip.fps)
    out = runner.invoke(
        app,
        [
            "faces",
            str(short),
            "-o",
            str(tmp_path / "t.json"),
            "--annotate",
            str(tmp_path / "t.mp4"),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["format"] == "avatarlab.Faces/2" and data["kind"] == "video"
    frames = data["frames"]
    assert len(frames) == 25 and all(len(f["faces"]) == 1 for f in frames)
    faces = [f["faces"][0] for f in frames]
    assert np.array([f["mesh"] for f in faces]).shape == (25, 478, 3)
    assert np.array([f["landmarks68"] for f in faces]).shape == (25, 68, 2)
    assert all(np.isfinite(list(f["pose"].values())).all() for f in faces)
    # Image and video results share one layout: the same keys per face.
    assert set(faces[0]) == {"box", "score", "pose", "landmarks68", "mesh"}
    assert probe(tmp_path / "t.mp4").n_frames == 25


def test_crop_reports_no_face_and_failures(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "blank.png", np.full((200, 200, 3), 127, np.uint8))
    (src / "broken.jpg").write_bytes(b"not an image at all")
    inputs = [str(data_dir / "image" / "man_green.jpg"), str(src)]
    out = runner.invoke(app, ["crop", *inputs, "-o", str(tmp_path / "crops"), "--size", "128"])
    assert out.exit_code == 1  # a failure was recorded, but the job carried on
    report = json.loads((tmp_path / "crops" / "report.json").read_text())
    assert len(report["written"]) == 1 and Path(report["written"][0]).name == "man_green.jpg"
    assert list(report["no_face"]) == [str(src / "blank.png")]
    assert list(report["failed"]) == [str(src / "broken.jpg")]
    crop = probe(report["written"][0])
    assert (crop.width, crop.height) == (128, 128)


def test_user_errors_are_one_line_and_leave_no_output(tmp_path: Path) -> None:
    missing = _run("info", str(tmp_path / "nope.mp4"))
    assert missing.returncode == 2
    assert "not found" in missing.stderr and "Traceback" not in missing.stderr

    blank = tmp_path / "blank.png"
    write_image(blank, np.full((256, 256, 3), 200, np.uint8))
    target = tmp_path / "out.mp4"
    noface = _run("speak", "--image", str(blank), "--text", "hello", "-o", str(target))
    assert noface.returncode == 3, noface.stderr
    assert "no face" in noface.stderr.lower() and "Traceback" not in noface.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == [blank]

    both = _run("speak", "--image", str(blank), "-o", str(target))
    assert both.returncode != 0 and "exactly one" in both.stderr


def test_demo_writes_its_outputs(tmp_path: Path) -> None:
    out = runner.invoke(app, ["demo", "-o", str(tmp_path), "--text", "Hello there."])
    assert out.exit_code == 0, out.output
    for name in ("portrait.png", "portrait_annotated.png", "portrait_faces.json"):
        assert (tmp_path / name).stat().st_size > 0
    video = probe(tmp_path / "talking.mp4")
    assert video.has_audio and video.n_frames > 10 and (video.width, video.height) == (512, 512)
    faces = json.loads((tmp_path / "portrait_faces.json").read_text())["frames"][0]["faces"]
    assert len(faces) == 1


@pytest.mark.parametrize(("bad", "word"), [("--head-motion=2", "head_motion"), ("--crf=99", "crf")])
def test_speak_rejects_out_of_range_options(
    bad: str, word: str, data_dir: Path, tmp_path: Path
) -> None:
    image = str(data_dir / "image" / "woman_photo.jpg")
    res = _run("speak", "--image", image, "--text", "hi", "-o", str(tmp_path / "o.mp4"), bad)
    assert res.returncode == 2, res.stderr
    assert word.replace("_", "") in res.stderr.replace("_", "").replace("-", "")
    assert "Traceback" not in res.stderr and not (tmp_path / "o.mp4").exists()


def test_neural_engine_without_weights_names_file_and_source(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVATARLAB_WEIGHTS", str(tmp_path / "cache"))
    target = tmp_path / "w.mp4"
    image = str(data_dir / "image" / "woman_photo.jpg")
    res = _run("speak", "--engine", "wav2lip", "--image", image, "--text", "hi", "-o", str(target))
    assert res.returncode == 4, res.stderr
    assert "wav2lip.pth" in res.stderr and "github.com/Rudrabha/Wav2Lip" in res.stderr
    assert not target.exists()


def test_bad_output_paths_fail_early_with_one_line(data_dir: Path, tmp_path: Path) -> None:
    image = str(data_dir / "image" / "woman_photo.jpg")
    for out in (tmp_path / "noext", tmp_path / "clip.webm", tmp_path):
        res = _run("speak", "--image", image, "--text", "hi", "-o", str(out))
        assert res.returncode == 2, (out, res.stderr)
        assert "Traceback" not in res.stderr and (
            "use one of" in res.stderr or "folder" in res.stderr
        )
    blocked = tmp_path / "file.txt"
    blocked.write_text("x")
    res = _run("speak", "--image", image, "--text", "hi", "-o", str(blocked / "o.mp4"))
    assert res.returncode == 2 and "cannot write" in res.stderr, res.stderr
    # the preview's name is checked before the analysis, so no JSON is left behind
    res = _run("faces", image, "-o", str(tmp_path / "f.json"), "--annotate", str(tmp_path / "a"))
    assert res.returncode == 2 and not (tmp_path / "f.json").exists(), res.stderr


def test_crop_keeps_inputs_with_the_same_name_apart(data_dir: Path, tmp_path: Path) -> None:
    import shutil

    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(data_dir / "image" / "woman_photo.jpg", tmp_path / "in" / sub / "x.jpg")
    out = runner.invoke(
        app, ["crop", str(tmp_path / "in"), "-o", str(tmp_path / "c"), "--size", "64"]
    )
    assert out.exit_code == 0, out.output
    written = json.loads((tmp_path / "c" / "report.json").read_text())["written"]
    assert sorted(Path(p).name for p in written) == ["x.jpg", "x_2.jpg"]
    assert all(Path(p).is_file() for p in written)
    res = _run("crop", str(tmp_path / "in"), "-o", str(tmp_path / "c2"), "--size", "100000")
    assert res.returncode == 2 and "16..4096" in res.stderr, res.stderr
