"""The evaluation end to end: pairing, timeline resampling, face crops, skips, failures, the pool.

A folder of generated pairs is made from the first 2 s of shared clips: ``a`` is the
reference itself (identical), ``b`` is blurred, resized to 300x300 and re-timed to
20 fps; ``c`` is a corrupt file; ``extra`` has no reference.
"""

from __future__ import annotations

import math
import shutil
from html import escape
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from avatarlab.errors import MediaError, OptionError
from avatarlab.metrics import base
from avatarlab.metrics.alignment import audio_envelope
from avatarlab.metrics.base import (
    NEUTRAL,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)
from avatarlab.metrics.evaluate import evaluate, parse_metric_options, parse_weights
from avatarlab.metrics.pairing import match_pairs
from avatarlab.metrics.planning import plan_metrics

SECONDS = 2.0
METRICS = ["psnr", "ssim", "mae", "lmd", "ma", "head_diversity", "lse"]


@pytest.fixture(scope="module")
def no_weights(tmp_path_factory: pytest.TempPathFactory):
    """An empty weights cache, so no checkpoint is found unless passed explicitly."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AVATARLAB_WEIGHTS", str(tmp_path_factory.mktemp("empty_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def pairs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avatarlab.media import read_audio, read_video, write_video

    root = tmp_path_factory.mktemp("pairs")
    pred, ref = root / "pred", root / "ref"
    pred.mkdir()
    ref.mkdir()
    for name, clip in (("a", "hdtf_aoc_8s.mp4"), ("b", "talk_c.mp4")):
        video = read_video(data_dir / "video" / clip, end=SECONDS)
        audio = read_audio(data_dir / "video" / clip)[: int(SECONDS * 16000)]
        write_video(ref / f"{name}.mp4", video.frames, video.fps, audio=audio, sample_rate=16000)
    shutil.copy(ref / "a.mp4", pred / "a.mp4")
    real_b = read_video(ref / "b.mp4")
    pick = np.round(np.arange(int(SECONDS * 20)) * 25 / 20).astype(int)
    blurred = [
        cv2.resize(cv2.GaussianBlur(real_b.frames[i], (0, 0), 2.0), (300, 300), cv2.INTER_AREA)
        for i in pick
    ]
    write_video(pred / "b.mp4", blurred, 20, audio=read_audio(ref / "b.mp4"), sample_rate=16000)
    (pred / "c.mp4").write_bytes(b"not a video at all" * 10)
    shutil.copy(ref / "a.mp4", ref / "c.mp4")
    write_video(pred / "extra.mp4", real_b.frames[:3], 25)
    return root


@pytest.fixture(scope="module")
def run1(pairs: Path, no_weights, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out1")
    return evaluate(pairs / "pred", pairs / "ref", metrics=METRICS, out_dir=out, jobs=1)


def test_pairs_are_matched_by_name_and_mismatches_listed(run1, pairs):
    assert [c.name for c in run1.clips] == ["a", "b", "c"]
    assert run1.plan.unmatched_pred == (pairs / "pred" / "extra.mp4",)
    assert run1.plan.unmatched_ref == ()


def test_tables_have_one_row_per_clip_and_per_frame(run1):
    video = pq.read_table(run1.files["per_video.parquet"]).to_pylist()
    assert [r["clip"] for r in video] == ["a", "b", "c"]
    frames = pq.read_table(run1.files["per_frame.parquet"]).to_pandas()
    # both pairs are compared on the reference's 50 frames (2 s at 25 fps)
    assert frames.groupby("clip").size().to_dict() == {"a": 50, "b": 50}
    np.testing.assert_allclose(frames[frames["clip"] == "a"].t, np.arange(50) / 25, atol=1e-6)
    for col in ("psnr", "ssim", "mae", "lmd", "ma", "yaw", "mouth_open_pred", "audio_env"):
        assert col in frames.columns, col
    csv_lines = run1.files["per_frame.csv"].read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 100


def test_identical_pair_scores_perfectly_and_blurred_pair_lower(run1):
    frames = pq.read_table(run1.files["per_frame.parquet"]).to_pandas()
    a, b = frames[frames["clip"] == "a"], frames[frames["clip"] == "b"]
    assert np.isinf(a.psnr).all() and (a.ssim == 1.0).all() and (a.mae == 0).all()
    assert np.isfinite(b.psnr).all() and b.psnr.max() < 40 and b.ssim.max() < 0.99
    assert 20 < run1.value("b", "psnr") < 40
    assert run1.value("b", "ssim") < run1.value("a", "ssim") == 1.0
    # same frames give the same track: zero landmark distance, full mouth overlap
    assert run1.value("a", "lmd") == 0.0 and run1.value("a", "ma") == 1.0
    assert run1.value("b", "lmd") > 0.5 and run1.value("b", "ma") < 1.0


def test_identical_clip_has_infinite_psnr(run1):
    assert "psnr" not in next(c for c in run1.clips if c.name == "a").errors
    assert math.isinf(run1.value("a", "psnr"))
    assert math.isinf(run1.summary["psnr"]["psnr"])


def test_different_fps_and_size_are_resampled_with_a_note(run1):
    b = next(c for c in run1.clips if c.name == "b")
    assert b.resampled and b.resized
    assert (b.fps, b.width, b.pred_fps, b.pred_size) == (25.0, 590, 20.0, (300, 300))
    assert any("20.000 fps resampled" in n for n in b.notes)
    assert any("300x300 resized to the reference's 590x590" in n for n in b.notes)
    # nearest timestamp: reference frame i (t = i / 25) shows prediction frame round(0.8 i)
    np.testing.assert_array_equal(b.series["pred_frame"], np.round(np.arange(50) * 0.8))
    assert "resampled" in run1.files["report.html"].read_text()


def test_missing_weights_are_skipped_with_file_and_source(run1):
    import json

    (skip,) = [s for s in run1.skipped if s.metric == "lse"]
    assert skip.file == "syncnet_v2.model"
    assert "robots.ox.ac.uk" in skip.source and "syncnet_v2.model" in skip.reason
    doc = json.loads(run1.files["results.json"].read_text())
    (entry,) = [s for s in doc["skipped"] if s["metric"] == "lse"]
    assert entry["file"] == "syncnet_v2.model" and entry["source"] == skip.source
    html = run1.files["report.html"].read_text()
    assert "syncnet_v2.model" in html and skip.source in html
    assert "lse" not in run1.metrics and "lse" not in run1.summary


def test_a_broken_clip_is_recorded_and_the_run_goes_on(run1):
    c = next(c for c in run1.clips if c.name == "c")
    assert c.status == "failed" and "c.mp4" in c.error
    assert [x.status for x in run1.clips if x.name != "c"] == ["ok", "ok"]
    assert run1.summary_method["ssim"] == "mean over 2 clips"


def test_json_is_strict_and_holds_the_summary(run1):
    import json

    doc = json.loads(run1.files["results.json"].read_text())  # strict JSON: no NaN tokens
    clip_a = next(c for c in doc["clips"] if c["name"] == "a")
    assert clip_a["values"]["ssim"]["ssim"] == 1.0 and clip_a["frames"] == 50
    assert doc["unmatched"]["pred"][0].endswith("extra.mp4")
    assert doc["summary"]["ssim"]["ssim"] == pytest.approx(
        (1.0 + run1.value("b", "ssim")) / 2, abs=1e-12
    )
    assert set(doc["metrics"]) == set(run1.metrics)


def test_report_is_offline_with_inline_plots(run1):
    html = run1.files["report.html"].read_text()
    assert html.count('src="data:image/png;base64,') >= 4  # curves + mouth plot, 2 clips
    for external in ('src="http', "href=", "<script", "<link", "url("):
        assert external not in html
    assert "extra.mp4" in html and "mouth opening" in html
    for metric in run1.metrics:
        assert run1.conventions[metric] and escape(run1.conventions[metric][:40]) in html


def test_jobs_2_gives_the_same_numbers(pairs, run1, no_weights, tmp_path):
    run2 = evaluate(pairs / "pred", pairs / "ref", metrics=METRICS, out_dir=tmp_path, jobs=2)
    assert run2.jobs == 2
    for c1, c2 in zip(run1.clips, run2.clips, strict=True):
        assert (c1.name, c1.status) == (c2.name, c2.status)
        assert c1.values == c2.values
        assert c1.series.keys() == c2.series.keys()
        for key in c1.series:
            np.testing.assert_array_equal(c1.series[key], c2.series[key], err_msg=key)
    assert run1.summary == run2.summary


@pytest.mark.slow
def test_lse_runs_on_the_shared_crops_with_given_weights(pairs, no_weights, tmp_path):
    """Plumbing only: fill-rule weights (real offsets need the official file)."""
    import torch

    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.metrics import syncnet

    weights = tmp_path / "syncnet_v2.model"
    torch.save(fill_state_dict(syncnet.new_syncnet()).state_dict(), weights)
    res = evaluate(
        pairs / "pred" / "a.mp4",
        pairs / "ref" / "a.mp4",
        metrics=["lse"],
        weights={"lse": weights},
        out_dir=tmp_path / "out",
        jobs=1,
    )
    (clip,) = res.clips
    assert set(clip.values["lse"]) == {"lse_d", "lse_c", "av_offset"}
    assert -15 <= clip.values["lse"]["av_offset"] <= 15
    assert clip.timings["crops"] > 0  # LSE declares requires.crops: the second pass ran
    assert np.isfinite(clip.series["sync_conf"][:45]).all()  # 50 frames -> 45 windows
    assert 'alt="sync offset histogram"' in res.files["report.html"].read_text()
    assert res.weights == {"syncnet_v2": str(weights)}


def test_metrics_needing_audio_are_skipped_per_clip_without_audio(data_dir, tmp_path):
    from avatarlab.media import read_video, write_video

    clip = tmp_path / "silent.mp4"
    write_video(clip, read_video(data_dir / "video" / "expressions_silent.mp4").frames[:8], 25)
    res = evaluate(clip, clip, metrics=["beat_align", "mae"], out_dir=tmp_path / "o", jobs=1)
    (skip,) = [s for s in res.skipped if s.metric == "beat_align"]
    assert "needs audio" in skip.reason and skip.clips == ("silent",)
    assert res.clips[0].audio_source == "none" and res.value("silent", "mae") == 0.0


def test_face_crops_are_cut_only_for_metrics_that_require_them(pairs, tmp_path):
    """Per-clip metrics get the 224x224 crops (a second decoding pass) only when they
    declare ``requires.crops``; the others get (N, 0, 0, 3) placeholders and the tracks."""
    seen: dict[str, tuple[tuple[int, ...], tuple[int, ...] | None, int]] = {}

    def per_clip_metric(name: str, crops: bool) -> type[Metric]:
        class Shapes(Metric):
            keys = {"mean": NEUTRAL}
            requires = Requirements(reference=True, face_track=True, crops=crops)
            per_clip = True
            conventions = "mean pixel of the frames it is given"

            def reset(self) -> None:
                self.value = math.nan

            def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
                assert ref is not None and ctx.pred_track is not None
                seen[self.name] = (pred.shape, ref.shape, len(ctx.pred_track))
                self.value = float(pred.mean()) if pred.size else 0.0

            def compute(self) -> dict[str, float]:
                return {"mean": self.value}

        Shapes.name = name
        return register_metric(name)(Shapes)

    per_clip_metric("_test_tracks_only", crops=False)
    try:
        res = evaluate(
            pairs / "pred" / "a.mp4",
            pairs / "ref" / "a.mp4",
            metrics=["_test_tracks_only", "head_diversity"],
            out_dir=tmp_path / "tracks",
            jobs=1,
            max_plots=0,
        )
        (clip,) = res.clips
        assert "crops" not in clip.timings and not clip.errors
        assert seen["_test_tracks_only"] == ((50, 0, 0, 3), (50, 0, 0, 3), 50)
        assert clip.values["head_diversity"]["head_diversity"] > 0
        per_clip_metric("_test_crops", crops=True)
        res = evaluate(
            pairs / "pred" / "a.mp4",
            pairs / "ref" / "a.mp4",
            metrics=["_test_tracks_only", "_test_crops"],
            out_dir=tmp_path / "crops",
            jobs=1,
            max_plots=0,
        )
    finally:
        for name in ("_test_tracks_only", "_test_crops"):
            if name in base.METRICS:
                base.METRICS.unregister(name)
    (clip,) = res.clips
    assert clip.timings["crops"] > 0 and not clip.errors
    assert seen["_test_crops"] == ((50, 224, 224, 3), (50, 224, 224, 3), 50)
    assert seen["_test_tracks_only"] == ((50, 0, 0, 3), (50, 0, 0, 3), 50)
    assert 20 < clip.values["_test_crops"]["mean"] < 235


def test_pooled_metrics_merge_states_across_clips(pairs, tmp_path):
    """A set-level metric (state/merge_state) is pooled, not averaged over clips."""

    @register_metric("_test_pooled")
    class Pooled(Metric):
        name = "_test_pooled"
        keys = {"frames": NEUTRAL}
        requires = Requirements(reference=False)
        mergeable = True
        conventions = "frame count"

        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            self.n = 0

        def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
            assert pred.ndim == 4 and len(pred) <= 8  # batches of FRAME_BATCH frames
            self.n += len(pred)

        def compute(self) -> dict[str, float]:
            return {"frames": float(self.n)}

        def state(self) -> int:
            return self.n

        def merge_state(self, state: int) -> None:
            self.n += state

    try:
        res = evaluate(
            pairs / "ref", metrics=["_test_pooled"], out_dir=tmp_path, jobs=1, max_plots=0
        )
    finally:
        base.METRICS.unregister("_test_pooled")
    assert [res.value(c, "frames") for c in ("a", "b", "c")] == [50.0, 50.0, 50.0]
    assert res.summary["_test_pooled"] == {"frames": 150.0}
    assert res.summary_method["_test_pooled"] == "pooled over 3 clips"


def test_pooled_metric_keeps_clips_whose_own_compute_fails(pairs, tmp_path):
    """A clip too short for a set-level metric's per-clip value is still pooled (FID/IS)."""

    @register_metric("_test_short")
    class Short(Metric):
        name = "_test_short"
        requires = Requirements(reference=False)
        mergeable = True
        conventions = "frame count, needs > 60 frames"
        keys = {"frames": NEUTRAL}

        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            self.n = 0

        def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
            self.n += len(pred)

        def compute(self) -> dict[str, float]:
            if self.n <= 60:
                raise OptionError(f"needs more than 60 frames, got {self.n}")
            return {"frames": float(self.n)}

        def state(self) -> int:
            return self.n

        def merge_state(self, state: int) -> None:
            self.n += state

    @register_metric("_test_pooled_only")
    class PooledOnly(Short):
        name = "_test_pooled_only"
        pooled_only = True

        def compute(self) -> dict[str, float]:
            assert self.n == 0 or self.n > 60, "per-clip compute() called"
            return {"frames": float(self.n)}

    try:
        res = evaluate(
            pairs / "ref",
            metrics=["_test_short", "_test_pooled_only"],
            out_dir=tmp_path,
            jobs=1,
            max_plots=0,
        )
    finally:
        base.METRICS.unregister("_test_short")
        base.METRICS.unregister("_test_pooled_only")
    for name in ("_test_short", "_test_pooled_only"):
        assert res.summary[name] == {"frames": 150.0}
        assert res.summary_method[name] == "pooled over 3 clips"
    for clip in res.clips:
        assert clip.errors == {}
        assert math.isnan(clip.values["_test_short"]["frames"])
        assert math.isnan(clip.values["_test_pooled_only"]["frames"])
        assert any("_test_short: no per-clip value" in n for n in clip.notes)
        assert not any("_test_pooled_only" in n for n in clip.notes)
    table = pq.read_table(tmp_path / "per_video.parquet").to_pydict()
    for col in ("frames", "_test_pooled_only.frames"):  # NaN cells, column kept
        assert len(table[col]) == 3 and all(v is None or math.isnan(v) for v in table[col])


def test_audio_envelope_is_the_rms_per_frame():
    rate, fps = 16000, 25.0
    t = np.arange(rate) / rate
    audio = (0.5 * np.sin(2 * np.pi * 200 * t) * (t < 0.5)).astype(np.float32)
    env = audio_envelope(audio, rate, np.arange(25) / fps, fps)
    np.testing.assert_allclose(env[2:11], 0.5 / np.sqrt(2), rtol=1e-3)
    assert env[14:].max() == 0.0


def test_match_pairs_rules(pairs, tmp_path):
    plan = match_pairs(pairs / "pred" / "b.mp4", pairs / "ref" / "a.mp4")
    assert [p.name for p in plan.pairs] == ["b"] and plan.pairs[0].ref.name == "a.mp4"
    with pytest.raises(OptionError, match="two files or two folders"):
        match_pairs(pairs / "pred", pairs / "ref" / "a.mp4")
    with pytest.raises(MediaError, match="does not exist"):
        match_pairs(tmp_path / "nothing")
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "b.wav").write_bytes(b"")
    plan = match_pairs(pairs / "pred", pairs / "ref", audio)
    assert {p.name: p.audio for p in plan.pairs}["b"] == audio / "b.wav"
    assert {p.name: p.audio for p in plan.pairs}["a"] is None
    solo = match_pairs(pairs / "pred")  # no reference: every prediction on its own
    assert [p.name for p in solo.pairs] == ["a", "b", "c", "extra"]


def test_plan_validates_names_options_and_weights(no_weights):
    with pytest.raises(OptionError, match="unknown metric"):
        plan_metrics(["psnr", "nope"], True)
    with pytest.raises(OptionError, match="do not run"):
        plan_metrics(["psnr"], True, options={"ssim": {"y_channel": True}})
    with pytest.raises(OptionError, match="neither a checkpoint"):
        plan_metrics(["psnr"], True, weights={"bogus": "x"})
    plan = plan_metrics(["psnr", "lmd", "head_diversity"], has_reference=False)
    assert plan.names == ("head_diversity",)
    assert {s.metric: s.reason for s in plan.skipped}["psnr"].startswith("needs a reference")
    by_name = {s.name: s for s in plan_metrics(["psnr", "lmd", "lse", "beat_align"], True).specs}
    assert not by_name["psnr"].per_clip and not by_name["lmd"].per_clip
    assert by_name["beat_align"].per_clip
    assert parse_weights(["syncnet_v2=/w/s.model", "/x/syncnet_v2.model"]) == {
        "syncnet_v2": "/w/s.model",
        "syncnet_v2.model": "/x/syncnet_v2.model",
    }
    assert parse_metric_options(["psnr.y_channel=true", "psnr.crop_border=4"]) == {
        "psnr": {"y_channel": True, "crop_border": 4}
    }


def test_unusable_output_folder_fails_before_any_clip_is_scored(tmp_path, monkeypatch):
    import re

    import avatarlab.metrics.evaluate as ev

    def no_scoring(*args, **kwargs):
        raise AssertionError("clips were scored before the output folder was checked")

    monkeypatch.setattr(ev, "match_pairs", no_scoring)
    monkeypatch.setattr(ev, "run_clips", no_scoring)
    existing = tmp_path / "existing_file"
    existing.write_text("x")
    for out in (existing, existing / "sub", Path("/dev/null/x")):
        with pytest.raises(OptionError, match=re.escape(str(out))):
            evaluate(tmp_path / "missing.mp4", out_dir=out, jobs=1)
    assert existing.read_text() == "x"
    assert not (tmp_path / "missing.mp4").exists()


def test_library_messages_name_no_cli_flags(pairs, no_weights, tmp_path):
    """Errors and skip reasons say what is missing in API terms; the CLI translates."""
    import re

    messages = []
    for call in (
        lambda: match_pairs(pairs / "pred" / "a.mp4", pairs / "ref"),
        lambda: match_pairs(pairs / "pred", pairs / "ref" / "a.mp4"),
        lambda: plan_metrics(["psnr"], True, weights={"bogus": "x"}),
        lambda: parse_weights(["=x"]),
        lambda: parse_metric_options(["psnr"]),
        lambda: evaluate(pairs / "pred", metrics=" , ", out_dir=tmp_path),
    ):
        with pytest.raises(OptionError) as err:
            call()
        messages.append(str(err.value))
    plan = plan_metrics(["psnr", "lse"], has_reference=False)
    messages += [s.reason for s in plan.skipped]
    (lse,) = [s for s in plan.skipped if s.metric == "lse"]
    assert lse.reason.startswith("needs the syncnet_v2 checkpoint (weights={'syncnet_v2': PATH})")
    silent = tmp_path / "silent.mp4"
    shutil.copy(pairs / "pred" / "extra.mp4", silent)
    res = evaluate(silent, metrics=["head_diversity", "beat_align"], out_dir=tmp_path / "o", jobs=1)
    messages += [s.reason for s in res.skipped]
    assert len(messages) == 9
    for message in messages:
        assert not re.search(r"(^|\s)--[a-z]", message), message


def test_one_eval_per_folder_and_a_killed_runs_temporaries_go(pairs, tmp_path):
    """A folder another run holds is refused at once; a SIGKILLed run's temporaries go."""
    from avatarlab._outdir import output_lock

    out = tmp_path / "res"
    out.mkdir()
    leftover = out / ".results.part-4242-k1lled00.json"
    leftover.write_text("half-written")
    with output_lock(out, "eval"), pytest.raises(OptionError, match="in use by another"):
        evaluate(pairs / "pred" / "a.mp4", pairs / "ref" / "a.mp4", metrics="psnr", out_dir=out)
    assert leftover.exists() and not (out / "results.json").exists()
    res = evaluate(
        pairs / "pred" / "a.mp4", pairs / "ref" / "a.mp4", metrics="psnr", out_dir=out, max_plots=0
    )
    assert not leftover.exists() and res.files["results.json"].is_file()
