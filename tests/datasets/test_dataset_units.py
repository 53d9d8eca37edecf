"""Pure parts of the pipeline: frame selection, runs, smoothing, segmentation, splits,
manifest, executors, options."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avatarlab.datasets import pipeline
from avatarlab.datasets.executors import LocalExecutor, get_executor
from avatarlab.datasets.manifest import (
    MANIFEST_SCHEMA,
    read_manifest,
    split_of,
    write_filelists,
    write_manifest,
)
from avatarlab.datasets.options import PRESETS, PrepareOptions
from avatarlab.datasets.segments import runs, select_frames, shot_ranges, smooth
from avatarlab.errors import MediaError, OptionError


def test_select_frames_identity_and_rates() -> None:
    t25 = np.arange(50) / 25
    assert np.array_equal(select_frames(t25, 0.0, 2.0, 25), np.arange(50))
    # 50 fps -> every other frame; 12.5 fps -> each frame twice
    t50 = np.arange(100) / 50
    assert np.array_equal(select_frames(t50, 0.0, 2.0, 25), np.arange(0, 100, 2))
    t12 = np.arange(25) / 12.5
    assert np.array_equal(select_frames(t12, 0.0, 2.0, 25), np.repeat(np.arange(25), 2))


def test_select_frames_variable_rate_takes_frame_on_screen() -> None:
    # irregular timestamps (as talk_a.mp4, 22.13 fps average with 1/15 and 1/30 s gaps)
    times = np.array([0.0, 1 / 15, 1 / 15 + 1 / 30, 0.2, 0.26, 0.33])
    idx = select_frames(times, 0.0, 0.36, 25)
    targets = np.arange(len(idx)) / 25
    assert len(idx) == 9
    for k, i in enumerate(idx):
        assert times[i] <= targets[k] + 1e-9  # never a frame from the future
        if i + 1 < len(times):
            assert times[i + 1] > targets[k] + 1e-9  # the latest one shown at that time
    # a start offset shifts the grid
    assert select_frames(times, 0.2, 0.36, 25).tolist() == [3, 3, 4, 4]
    assert select_frames(times, 0.3, 0.3, 25).size == 0


def test_runs_shots_smooth() -> None:
    r = runs(np.array([0, 0, 1, 1, 1, 0]))
    assert [(x.start, x.end, x.label) for x in r] == [(0, 2, 0), (2, 5, 1), (5, 6, 0)]
    assert runs(np.array([])) == []
    assert shot_ranges(np.array([3, 0, 7, 3]), 10) == [(0, 3), (3, 7), (7, 10)]
    x = np.array([0.0, 0.0, 3.0, 0.0, 0.0])
    assert np.allclose(smooth(x, 3), [0, 1, 1, 1, 0])
    assert np.allclose(smooth(np.arange(6.0)[:, None], 5)[:, 0], [1, 1.5, 2, 3, 3.5, 4])
    assert np.array_equal(smooth(x, 1), x)


def _analysis(n: int, fps: float = 25.0) -> pipeline._Analysis:
    return pipeline._Analysis(
        times=np.arange(n) / fps,
        cuts=[],
        found=np.ones(n, dtype=bool),
        boxes=np.tile(np.array([100, 100, 200, 220], dtype=np.float32), (n, 1)),
        landmarks=np.zeros((n, 478, 3), dtype=np.float32),
        pose=np.zeros((n, 3), dtype=np.float32),
        sharpness=np.full(n, 0.5, dtype=np.float32),
    )


def test_plan_segments_reasons() -> None:
    a = _analysis(200)
    a.cuts = [100]
    a.found[10:20] = False  # absent 0.4-0.8 s
    a.boxes[120:150, 3] = a.boxes[120:150, 1] + 30  # small face 4.8-6.0 s
    a.pose[160:170, 0] = 60.0  # turned
    a.sharpness[170:] = 0.01  # blurred tail
    plans = pipeline._plan_segments(a, PrepareOptions(), audio_seconds=7.9)
    got = [(p.first, p.last, p.result.status, p.result.reason) for p in plans]
    assert got == [
        (0, 10, "dropped", "too short"),
        (10, 20, "dropped", "no face"),
        (20, 100, "kept", ""),  # the cut at frame 100 ends it
        (100, 120, "dropped", "too short"),
        (120, 150, "dropped", "face too small"),
        (150, 160, "dropped", "too short"),
        (160, 170, "dropped", "head turned"),
        (170, 200, "dropped", "blurred"),
    ]
    kept = plans[2].result
    assert kept.start == pytest.approx(0.8) and kept.end == pytest.approx(4.0)
    assert kept.face_px == pytest.approx(120) and kept.sharpness == pytest.approx(0.5)
    assert plans[-1].result.end == pytest.approx(7.9)  # clipped to the audio
    assert [p.result.index for p in plans] == list(range(8))


def test_crop_matrices_box_and_fixed() -> None:
    boxes = np.array([[100, 100, 200, 200], [110, 100, 210, 200]], dtype=np.float32)
    box = pipeline._crop_matrices(boxes, PRESETS["wav2lip"], 96, 1)
    # the face box centre maps to the crop centre, side 1.2 * 100 px -> 96 px
    assert np.allclose(box[0] @ [150, 150, 1], [48, 48])
    assert box[0][0, 0] == pytest.approx(96 / 120)
    fixed = pipeline._crop_matrices(boxes, PRESETS["hdtf"], 96, 1)
    assert np.array_equal(fixed[0], fixed[1])  # one window for the whole segment
    corners = [fixed[0] @ [x, y, 1] for x in (100, 210) for y in (100, 200)]
    assert all(-1e-6 <= c[0] <= 96 + 1e-6 and -1e-6 <= c[1] <= 96 + 1e-6 for c in corners)


def test_segment_audio_is_exact_length() -> None:
    audio = np.arange(16000, dtype=np.float32)
    chunk = pipeline._segment_audio(audio, 0.5, 20, PrepareOptions())
    assert chunk.shape == (12800,) and chunk[0] == 8000
    assert np.all(chunk[8000:] == 0)  # padded past the end


def test_split_of_is_stable_and_grouped() -> None:
    speakers = [f"id{i:05d}" for i in range(20000)]
    counts = Counter(split_of(s) for s in speakers)
    assert abs(counts["test"] / 20000 - 0.05) < 0.01 and abs(counts["val"] / 20000 - 0.05) < 0.01
    assert split_of("id00012") == split_of("id00012")
    # golden values: the hash must never change between versions
    assert [split_of(s) for s in ("id00012", "id00017", "talk_a")] == ["train", "train", "train"]
    assert split_of("x", 0.0, 1.0) == "test" and split_of("x", 0.0, 0.0) == "train"
    with pytest.raises(OptionError):
        split_of("x", 0.6, 0.6)


def _row(speaker: str, utt: str, segment: int, split: str, status: str = "kept") -> dict:
    return {
        "dataset": "folder",
        "speaker_id": speaker,
        "utterance_id": utt,
        "segment": segment,
        "status": status,
        "reason": "",
        "split": split,
        "source": f"{speaker}.mp4",
        "transcript": "",
        "start_s": 0.0,
        "end_s": 1.0,
        "duration_s": 1.0,
        "n_frames": 25,
        "source_fps": 25.0,
        "face_px": None,
        "sharpness": 0.5,
        "max_yaw": 1.0,
        "max_pitch": 2.0,
        "output": f"{speaker}/{utt}/{segment:02d}" if status == "kept" else "",
    }


def test_manifest_sorted_roundtrip_and_filelists(tmp_path: Path) -> None:
    rows = [
        _row("b", "u1", 1, "val"),
        _row("a", "u2", 0, "train"),
        _row("b", "u1", 0, "val"),
        _row("a", "u1", -1, "train", "failed"),
    ]
    table = write_manifest(rows, tmp_path / "manifest.parquet")
    assert table.schema == MANIFEST_SCHEMA
    back = read_manifest(tmp_path)
    assert back.equals(table)
    keys = [(r["speaker_id"], r["utterance_id"], r["segment"]) for r in back.to_pylist()]
    assert keys == [("a", "u1", -1), ("a", "u2", 0), ("b", "u1", 0), ("b", "u1", 1)]
    assert write_manifest(list(reversed(rows)), tmp_path / "again.parquet").equals(table)
    counts = write_filelists(table, tmp_path)
    assert counts == {"train": 1, "val": 2, "test": 0}
    assert (tmp_path / "filelists/val.txt").read_text() == "b/u1/00\nb/u1/01\n"


def _square(x: int) -> int:
    return x * x


def _square_or_die(x: int) -> int:
    if x == 3:
        os._exit(1)  # a worker killed in native code looks like this
    return x * x


def test_local_executor_runs_items_in_worker_processes() -> None:
    pool = LocalExecutor(workers=2)
    assert sorted(pool.imap_unordered(_square, [(i,) for i in range(6)])) == [0, 1, 4, 9, 16, 25]
    assert list(LocalExecutor(workers=1).imap_unordered(_square, [])) == []
    with pytest.raises(OptionError):
        get_executor("dask")
    with pytest.raises(OptionError, match="only applies"):
        get_executor("local", address="auto")


def test_local_executor_survives_a_dying_worker() -> None:
    crashed: list[tuple] = []

    def on_crash(args: tuple, err: BaseException) -> int:
        crashed.append(args)
        return -1

    pool = LocalExecutor(workers=2)
    results = sorted(pool.imap_unordered(_square_or_die, [(i,) for i in range(6)], on_crash))
    assert results == [-1, 0, 1, 4, 16, 25]
    assert crashed == [(3,)]


def test_options_validation() -> None:
    assert PrepareOptions().layout.container == "frames"
    assert PrepareOptions(preset="hdtf", scale=2.0).layout.scale == 2.0
    for bad in ({"preset": "lrs"}, {"size": 8}, {"min_sharpness": 2}, {"val_fraction": -0.1}):
        with pytest.raises(OptionError):
            PrepareOptions(**bad)


def test_clip_result_json_roundtrip() -> None:
    seg = pipeline.SegmentResult(
        index=0, start=0.0, end=1.0, status="kept", n_frames=25, output="a/b/00"
    )
    result = pipeline.ClipResult(
        "folder", "a", "b", "/src/a/b.mp4", "", "ok", segments=[seg], seconds=1.5
    )
    back = pipeline.ClipResult.from_json(result.to_json())
    assert back == result
    rows = back.rows(Path("/src"), PrepareOptions())
    assert rows[0]["source"] == "a/b.mp4" and rows[0]["duration_s"] == 1.0


def test_rows_take_the_fps_the_clip_was_prepared_at() -> None:
    seg = pipeline.SegmentResult(0, 0.0, 5.0, "kept", n_frames=250, output="a/b/00")
    result = pipeline.ClipResult("folder", "a", "b", "/src/b.mp4", "", "ok", fps=50.0)
    result.segments = [seg]
    assert pipeline.ClipResult.from_json(result.to_json()).fps == 50.0
    assert result.rows(Path("/src"), PrepareOptions(fps=25.0))[0]["duration_s"] == 5.0
    result.fps = 0.0  # written before fps was recorded: the run's options decide
    assert result.rows(Path("/src"), PrepareOptions(fps=25.0))[0]["duration_s"] == 10.0


def test_resume_refuses_other_output_options(tmp_path: Path) -> None:
    first = PrepareOptions(size=96)
    pipeline.check_output_options(tmp_path, first)
    stored = (tmp_path / pipeline.OPTIONS_NAME).read_text()
    assert '"size": 96' in stored and "retry_failed" not in stored
    # same output options (splits and retry_failed may change): accepted, file unchanged
    pipeline.check_output_options(tmp_path, PrepareOptions(size=96, retry_failed=True))
    pipeline.check_output_options(tmp_path, PrepareOptions(size=96, val_fraction=0.2))
    assert (tmp_path / pipeline.OPTIONS_NAME).read_text() == stored
    with pytest.raises(OptionError) as err:
        pipeline.check_output_options(tmp_path, PrepareOptions(size=256, fps=50.0, preset="hdtf"))
    message = str(err.value)
    assert "prepared with preset=wav2lip, size=96, fps=25.0" in message
    assert "use another output folder or the same options" in message
    (tmp_path / pipeline.OPTIONS_NAME).write_text("{broken")
    with pytest.raises(MediaError, match="unreadable"):
        pipeline.check_output_options(tmp_path, first)


def test_prepare_output_must_be_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "taken.txt"
    file.write_text("x")
    with pytest.raises(OptionError, match="taken.txt.* is a file"):
        pipeline.prepare(tmp_path / "no-such-src", file)
    with pytest.raises(OptionError, match="/dev/null.* is not a folder"):
        pipeline.prepare(tmp_path / "no-such-src", "/dev/null/x")
    with pytest.raises(OptionError, match="taken.txt.* is not a folder"):
        pipeline.prepare(tmp_path / "no-such-src", file / "sub")


def test_image_sequence_source_uses_file_name_timestamps(tmp_path: Path) -> None:
    import cv2

    from avatarlab.datasets.readers import Clip

    folder = tmp_path / "M1" / "COLOR_IMAGE" / "1"
    folder.mkdir(parents=True)
    names = ["1000_000100000_color.jpg", "999_000066667_color.jpg", "005_000000000_color.jpg"]
    for level, name in zip((30, 20, 10), names, strict=True):
        cv2.imwrite(str(folder / name), np.full((8, 8, 3), level, dtype=np.uint8))
    source = pipeline._open_source(Clip(folder, "mavd", "M1", "1"))
    frames = list(source.frames())
    assert [t for _, t in frames] == pytest.approx([0.0, 0.066667, 0.1])
    assert [int(f[0, 0, 0]) for f, _ in frames] == [10, 20, 30]  # sorted by time, not name
    assert source.fps == pytest.approx(1 / 0.05, rel=0.01) and not source.has_audio
