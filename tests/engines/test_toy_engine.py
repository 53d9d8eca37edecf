"""A toy engine from one file (``_toy_engine.py``) through speak, dub, the CLI and the server.

Nothing outside that file names the engine: registering it is all it takes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.engines import list_engines, register_engine, unregister_engine
from avatarlab.errors import OptionError
from avatarlab.media import probe, read_video, write_video
from avatarlab.media.files import write_image
from tests.engines._toy_engine import ToyEngine, ToyOptions

SIZE = (96, 64)  # width, height


@pytest.fixture
def toy() -> Iterator[str]:
    register_engine("toy")(ToyEngine)
    try:
        yield "toy"
    finally:
        unregister_engine("toy")


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "toy.png"
    write_image(path, np.full((SIZE[1], SIZE[0], 3), 120, np.uint8))
    return path


def test_speak_and_dub_run_the_toy_engine(toy: str, picture: Path, tmp_path: Path) -> None:
    from avatarlab.tasks import DubOptions, SpeakOptions, dub, speak

    assert "toy" in list_engines()
    out = tmp_path / "said.mp4"
    result = speak(
        picture,
        text="Hello there.",
        out=out,
        options=SpeakOptions(engine="toy"),
        engine_options={"shade": 30, "fps": 20.0},
    )
    info = probe(out)
    assert (info.width, info.height) == SIZE and info.fps == 20.0 and info.has_audio
    assert result.frames == info.n_frames > 10 and result.fps == 20.0
    assert "toy picture 96x64" in result.notes
    frames = read_video(out).frames
    assert abs(float(np.median(frames)) - 150) < 4  # 120 + shade 30
    assert frames.min() < 30  # the bar opened while speaking

    clip = tmp_path / "clip.mp4"
    write_video(clip, np.full((10, SIZE[1], SIZE[0], 3), 90, np.uint8), 25.0)
    dubbed = dub(clip, out, out=tmp_path / "dub.mp4", options=DubOptions(engine="toy"))
    assert dubbed.fps == 25.0 and probe(dubbed.path).n_frames == dubbed.frames > 10
    with pytest.raises(OptionError, match="only apply to still portraits"):
        dub(clip, out, out=tmp_path / "x.mp4", options=DubOptions(engine="toy"),
            engine_options=ToyOptions(fps=30.0))  # fmt: skip
    with pytest.raises(
        OptionError,
        match="engine 'toy' has no option head_motion: its options are shade, seed, fps",
    ):
        speak(picture, text="hi", out=tmp_path / "y.mp4", options=SpeakOptions(engine="toy"),
              engine_options={"head_motion": 0.3})  # fmt: skip
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "y.mp4").exists()


def test_cli_offers_the_toy_engine_options(toy: str, picture: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["speak", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    assert "--shade" in shown.output and "toy" in shown.output
    out = tmp_path / "cli.mp4"
    args = [
        "speak",
        "--engine",
        "toy",
        "--image",
        str(picture),
        "--text",
        "Hi there.",
        "-o",
        str(out),
    ]
    res = runner.invoke(app, [*args, "--shade", "40", "--json"])
    assert res.exit_code == 0, res.output
    assert abs(float(np.median(read_video(out).frames)) - 160) < 4
    result = json.loads(res.stdout)
    assert result["path"] == str(out) and result["fps"] == 25.0
    assert result["frames"] == probe(out).n_frames and "toy picture 96x64" in result["notes"]
    noisy = runner.invoke(app, args)
    assert noisy.exit_code == 0 and "toy picture 96x64" in noisy.stderr
    quiet = runner.invoke(app, ["-q", *args])
    assert (
        quiet.exit_code == 0 and "toy picture" not in quiet.output and "frames at" in quiet.stderr
    )
    bad = runner.invoke(app, [*args, "--head-motion", "0.3"])
    assert bad.exit_code != 0 and isinstance(bad.exception, OptionError)
    assert "head_motion" in str(bad.exception) and "shade, seed, fps" in str(bad.exception)


def test_server_streams_the_toy_engine(toy: str, picture: Path) -> None:
    from fastapi.testclient import TestClient

    from avatarlab.serve import ServeOptions, create_app

    options = ServeOptions(avatars=(picture,), engine="toy", engine_options={"shade": 10})
    with TestClient(create_app(options), base_url="http://127.0.0.1:8010") as client:
        deadline = time.monotonic() + 30
        while not client.get("/health").json()["ready"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/health").json()["engine"] == "toy"
        sid = client.post("/sessions", json={}).json()["id"]
        status = client.get(f"/sessions/{sid}").json()
        assert (status["width"], status["height"], status["fps"]) == (*SIZE, 25)
        stream = client.app.state.manager.get(sid).stream  # type: ignore[attr-defined]
        idle = stream.next_tick()
        assert idle.frame.shape == (SIZE[1], SIZE[0], 3) and int(idle.frame.min()) == 130
        said = client.post(f"/sessions/{sid}/say", json={"text": "Hello there, how are you?"})
        assert said.status_code == 202, said.text
        darkest = 255
        while darkest > 0 and time.monotonic() < deadline:
            tick = stream.next_tick()
            if tick.utterance is not None:
                darkest = min(darkest, int(tick.frame.min()))
            else:
                time.sleep(0.01)
        assert darkest == 0  # the bar opened with the speech
