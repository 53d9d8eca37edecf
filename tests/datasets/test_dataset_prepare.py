"""End-to-end preparation of the shared clips with both executors (slow: face tracking).

One source folder holds links to the four talking clips (one at 22.13 fps with
irregular timestamps), the silent clip and a truncated copy made here. Each
executor prepares it once (module-scoped fixtures, 96 px crops); the tests then
read what was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avatarlab.cli import app
from avatarlab.datasets import PrepareOptions, prepare, read_clips, read_manifest, split_of
from avatarlab.datasets.pipeline import DONE_MARKER, load_result, prepare_clip
from tests.conftest import TALKING_CLIPS

pytestmark = pytest.mark.slow

SIZE = 96
OPTIONS = PrepareOptions(size=SIZE)


@pytest.fixture(scope="module")
def source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name in [*TALKING_CLIPS, "expressions_silent.mp4"]:
        (root / name).symlink_to(data_dir / "video" / name)
    whole = (data_dir / "video" / "talk_c.mp4").read_bytes()
    (root / "broken.mp4").write_bytes(whole[: len(whole) // 3])  # the moov atom is at the end
    return root


@pytest.fixture(scope="module")
def local_run(source: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("local")
    return prepare(source, out, OPTIONS, executor="local", workers=2)


@pytest.fixture(scope="module")
def ray_run(source: Path, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("ray")
    out = tmp_path_factory.mktemp("ray")
    return prepare(source, out, OPTIONS, executor="ray", workers=2)


def rows_by_speaker(out: Path) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in read_manifest(out).to_pylist():
        rows.setdefault(row["speaker_id"], []).append(row)
    return rows


def test_both_executors_write_identical_manifests(local_run, ray_run) -> None:
    assert (local_run.executor, ray_run.executor) == ("local", "ray")
    local = read_manifest(local_run.out_dir)
    assert local.equals(read_manifest(ray_run.out_dir))
    assert (local_run.out_dir / "manifest.parquet").read_bytes() == (
        ray_run.out_dir / "manifest.parquet"
    ).read_bytes()
    for name in ("train", "val", "test"):
        a = (local_run.out_dir / "filelists" / f"{name}.txt").read_text()
        assert a == (ray_run.out_dir / "filelists" / f"{name}.txt").read_text()


def test_outcome_per_clip(local_run) -> None:
    rows = rows_by_speaker(local_run.out_dir)
    assert (local_run.clips, local_run.ok, local_run.dropped, local_run.failed) == (6, 4, 1, 1)
    silent = rows["expressions_silent"]
    assert [(r["segment"], r["status"], r["reason"]) for r in silent] == [
        (-1, "dropped", "no audio")
    ]
    broken = rows["broken"]
    assert [(r["segment"], r["status"]) for r in broken] == [(-1, "failed")]
    assert "broken.mp4" in broken[0]["reason"] and broken[0]["reason"]
    for name in TALKING_CLIPS:
        kept = [r for r in rows[Path(name).stem] if r["status"] == "kept"]
        assert len(kept) == 1, rows[Path(name).stem]  # one shot, face always visible
        row = kept[0]
        assert row["sharpness"] > OPTIONS.min_sharpness and row["face_px"] > 200
        assert row["max_yaw"] < OPTIONS.max_yaw and row["source"] == name


def test_outputs_are_25_fps_16_khz_and_complete(local_run) -> None:
    from avatarlab.media import probe, read_audio

    out = local_run.out_dir
    for row in read_manifest(out).to_pylist():
        if row["status"] != "kept":
            continue
        folder = out / row["output"]
        n = row["n_frames"]
        # frames at 25 fps over the segment's span, from its first source frame
        assert n == int(np.floor((row["end_s"] - row["start_s"]) * 25 + 1e-3))
        assert row["duration_s"] == pytest.approx(n / 25)
        jpgs = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))
        assert [int(p.stem) for p in jpgs] == list(range(n))
        info = probe(folder / "audio.wav")
        assert (info.sample_rate, info.channels, info.has_video) == (16000, 1, False)
        assert len(read_audio(folder / "audio.wav", sample_rate=None)) == n * 640
        faces = np.load(folder / "faces.npz")
        assert faces["landmarks"].shape == (n, 478, 3) and faces["pose"].shape == (n, 3)
        times = faces["source_time"]
        targets = row["start_s"] + np.arange(n) / 25
        assert np.all(np.diff(times) >= 0) and np.all(times <= targets + 1e-3)
        assert np.all(targets - times < 1 / 15 + 1e-3)  # the frame on screen at each target
    talk_a = rows_by_speaker(out)["talk_a"][0]
    assert talk_a["source_fps"] == pytest.approx(22.1311, abs=1e-3)
    index = np.load(out / talk_a["output"] / "faces.npz")["source_index"]
    # 22.13 fps on average, in 1/15 s and 1/30 s steps: 25 fps repeats some frames, skips others
    assert len(index) == 151 and np.all(np.diff(index) >= 0)
    assert np.any(np.diff(index) == 0) and np.any(np.diff(index) == 2) and index[-1] >= 133


def test_crops_contain_the_tracked_face(local_run) -> None:
    import cv2

    from avatarlab.face.detect import FaceDetector

    detector = FaceDetector()
    out = local_run.out_dir
    for row in read_manifest(out).to_pylist():
        if row["status"] != "kept":
            continue
        folder = out / row["output"]
        landmarks = np.load(folder / "faces.npz")["landmarks"].astype(np.float32)
        for k in (0, row["n_frames"] // 2, row["n_frames"] - 1):
            crop = cv2.cvtColor(cv2.imread(str(folder / f"{k}.jpg")), cv2.COLOR_BGR2RGB)
            assert crop.shape == (SIZE, SIZE, 3)
            faces = detector.detect(crop)
            assert faces, f"no face in {folder}/{k}.jpg"
            x0, y0, x1, y1 = faces[0].box
            assert abs((x0 + x1) / 2 - SIZE / 2) < SIZE * 0.15
            assert abs((y0 + y1) / 2 - SIZE / 2) < SIZE * 0.2
            assert (x1 - x0) > SIZE * 0.4
            # the stored landmarks are in crop pixels: the face mesh lies inside the crop
            xy = landmarks[k, :468, :2]
            assert xy.min() > -2 and xy.max() < SIZE + 2


def test_splits_group_by_speaker(local_run) -> None:
    out = local_run.out_dir
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for line in (out / "filelists" / f"{split}.txt").read_text().split():
            speaker = line.split("/")[0]
            assert seen.setdefault(speaker, split) == split
            assert split_of(speaker) == split
    assert sorted(seen) == sorted(Path(n).stem for n in TALKING_CLIPS)
    for row in read_manifest(out).to_pylist():
        assert row["split"] == split_of(row["speaker_id"])


def test_rerun_skips_and_a_crashed_clip_is_redone(local_run, source: Path) -> None:
    out = local_run.out_dir
    manifest = (out / "manifest.parquet").read_bytes()
    result = CliRunner().invoke(
        app, ["prepare", str(source), "-o", str(out), "--size", str(SIZE), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "(6 already done)" in result.output
    assert (out / "manifest.parquet").read_bytes() == manifest
    # simulate a crash in the middle of talk_c: its folder was never renamed into place
    finished = out / "talk_c" / "talk_c"
    partial = out / "talk_c" / ".talk_c.partial"
    shutil.move(finished, partial)
    (partial / DONE_MARKER).unlink()
    (partial / "00" / "3.jpg").write_bytes(b"half-written")
    again = prepare(source, out, OPTIONS, workers=2)
    assert (again.processed, again.skipped) == (1, 5)
    assert not partial.exists() and (finished / DONE_MARKER).is_file()
    assert (out / "manifest.parquet").read_bytes() == manifest
    log = (out / "run-log.jsonl").read_text().splitlines()
    assert len(log) == 3  # one line per run; hosts and times live here, not in the manifest


def test_resume_with_other_options_is_refused(local_run, source: Path) -> None:
    from avatarlab.errors import OptionError

    out = local_run.out_dir
    manifest = (out / "manifest.parquet").read_bytes()
    assert load_result(out / "talk_c" / "talk_c").fps == 25.0
    other = PrepareOptions(size=256, fps=50.0, preset="hdtf")
    with pytest.raises(OptionError, match="size=96") as err:
        prepare(source, out, other, workers=2)
    assert "fps=25.0" in str(err.value) and "preset=wav2lip" in str(err.value)
    assert (out / "manifest.parquet").read_bytes() == manifest  # nothing was touched


def test_mp4_presets_are_25_fps_with_16_khz_audio(source: Path, tmp_path: Path) -> None:
    from avatarlab.media import probe

    clip = next(c for c in read_clips(source) if c.speaker_id == "talk_c")
    for preset in ("syncnet", "hdtf"):
        result = prepare_clip(clip, PrepareOptions(preset=preset, size=SIZE), tmp_path / preset)
        assert result.status == "ok" and load_result(tmp_path / preset / clip.key) == result
        segment = result.segments[0]
        info = probe(tmp_path / preset / segment.output / "video.mp4")
        assert info.fps == pytest.approx(25.0) and info.n_frames == segment.n_frames == 125
        assert (info.width, info.height) == (SIZE, SIZE)
        assert (info.has_audio, info.sample_rate) == (True, 16000)
        assert info.duration == pytest.approx(5.0, abs=0.05)
    fixed = np.load(tmp_path / "hdtf" / clip.key / "00" / "faces.npz")["crop_matrix"]
    assert np.ptp(fixed, axis=0).max() == 0  # hdtf: one window for the whole segment


def test_wav2lip_dataset_reads_prepared_output(local_run) -> None:
    torch = pytest.importorskip("torch")
    from avatarlab.datasets.torch import Wav2LipDataset

    data = Wav2LipDataset(local_run.out_dir, "train", img_size=48, seed=3)
    assert len(data.segments) == 4 and len(data) == sum(n - 4 for _, n in data.segments)
    frames, mel, label = data[0]
    assert frames.shape == (5, 3, 48, 48) and frames.dtype == torch.float32
    assert mel.shape == (1, 80, 16) and label.shape == (1,)
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
