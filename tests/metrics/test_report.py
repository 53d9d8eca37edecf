"""Evaluation outputs: JSON encoding, tables, the offline HTML report, the terminal table, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from avatarlab.metrics.base import HIGHER, LOWER, NEAR_ZERO
from avatarlab.metrics.pairing import PairPlan
from avatarlab.metrics.planning import Skip
from avatarlab.metrics.report import (
    per_frame_table,
    per_video_table,
    render_html,
    results_dict,
    summary_table,
    write_outputs,
)
from avatarlab.metrics.results import ClipResult, EvalResults


def _clip(name: str, n: int, psnr: float, extra: bool) -> ClipResult:
    t = np.arange(n) / 25
    c = ClipResult(name, f"/p/{name}.mp4", f"/r/{name}.mp4", audio_source="prediction's audio")
    c.frames, c.fps, c.width, c.height = n, 25.0, 64, 64
    c.values = {"psnr": {"psnr": psnr, "psnr_pooled": psnr}}
    c.series = {"t": t, "psnr": np.full(n, psnr), "audio_env": np.abs(np.sin(t))}
    c.series_metric = {"psnr": "psnr"}
    if extra:
        c.values["lse"] = {"lse_d": 7.5, "lse_c": 2.0, "av_offset": 2.0}
        c.series["sync_conf"] = np.linspace(0, 1, n)
        c.series_metric["sync_conf"] = "lse"
        c.series["mouth_open_pred"] = 0.1 + 0.05 * np.sin(5 * t)
        c.notes.append("prediction at 20.000 fps resampled to the reference's 25.000 fps")
    return c


def _results(tmp_path: Path) -> EvalResults:
    broken = ClipResult("<b>broken</b>", "/p/x.mp4", "/r/x.mp4", status="failed", error="bad file")
    return EvalResults(
        pred="/p",
        ref="/r",
        audio=None,
        plan=PairPlan((), unmatched_pred=(Path("/p/lonely.mp4"),)),
        metrics=("psnr", "lse"),
        conventions={"psnr": "PSNR = 10 log10(255^2 / MSE) & more", "lse": "SyncNet v2"},
        skipped=[
            Skip("fid", "needs the file 'x.pth'", "x.pth", "https://example.org/x.pth"),
            Skip("beat_align", "needs audio", clips=("a",)),
        ],
        clips=[_clip("a", 10, math.inf, False), _clip("b", 12, 30.0, True), broken],
        summary={"psnr": {"psnr": math.inf, "psnr_pooled": math.nan}, "lse": {"lse_d": 7.5}},
        summary_method={"psnr": "mean over 2 clips", "lse": "mean over 1 clip"},
        keys={
            "psnr": {"psnr": HIGHER, "psnr_pooled": HIGHER},
            "lse": {"lse_d": LOWER, "lse_c": HIGHER, "av_offset": NEAR_ZERO},
        },
        out_dir=tmp_path,
    )


def test_json_encodes_nan_as_null_and_inf_as_string(tmp_path):
    doc = results_dict(_results(tmp_path))
    text = json.dumps(doc, allow_nan=False)  # would raise on NaN/inf
    back = json.loads(text)
    assert back["summary"]["psnr"] == {"psnr": "inf", "psnr_pooled": None}
    assert back["skipped"][0] == {
        "metric": "fid",
        "reason": "needs the file 'x.pth'",
        "file": "x.pth",
        "source": "https://example.org/x.pth",
        "clips": [],
    }
    assert back["unmatched"]["pred"] == ["/p/lonely.mp4"]
    assert [c["status"] for c in back["clips"]] == ["ok", "ok", "failed"]


def test_tables_align_series_across_clips(tmp_path):
    res = _results(tmp_path)
    frames = per_frame_table(res).to_pydict()
    assert frames["clip"] == ["a"] * 10 + ["b"] * 12  # failed clips have no frames
    assert frames["frame"] == list(range(10)) + list(range(12))
    assert all(math.isnan(v) for v in frames["sync_conf"][:10])  # clip a has no LSE series
    videos = per_video_table(res).to_pydict()
    assert videos["clip"] == ["a", "b", "<b>broken</b>"]
    assert videos["lse_d"][1] == 7.5 and math.isnan(videos["lse_d"][0])
    assert videos["error"][2] == "bad file"


def test_html_is_escaped_self_contained_and_complete(tmp_path):
    html = render_html(_results(tmp_path))
    assert "<b>broken</b>" not in html and "&lt;b&gt;broken&lt;/b&gt;" in html
    assert "&amp; more" in html  # conventions escaped
    assert html.count('src="data:image/png;base64,') == 4  # 2 curves, 1 mouth, 1 histogram
    assert (
        'alt="sync offset histogram"' in html and 'alt="b mouth opening vs audio envelope"' in html
    )
    assert "https://example.org/x.pth" in html and "x.pth" in html  # source named, not linked
    assert 'src="http' not in html and "href=" not in html and "<script" not in html
    assert "lonely.mp4" in html and "resampled" in html and "bad file" in html


def test_html_marks_each_score_with_its_direction(tmp_path):
    import re

    html = render_html(_results(tmp_path))
    rows = dict(
        re.findall(r"<tr><td>(?:psnr|lse)</td><td[^>]*>([a-z_]+)( <span[^<]*</span>)?", html)
    )
    assert rows["psnr"].endswith("↑</span>") and rows["psnr_pooled"].endswith("↑</span>")
    assert rows["lse_d"].endswith("↓</span>")
    assert 'title="higher is better"' in html and 'title="lower is better"' in html
    # the per-video table's score columns carry the same arrows
    header = html[html.index("<h2>Per video</h2>") :].split("</thead>")[0]
    assert re.search(r">psnr <span class=\"dir\">↑</span></th>", header)
    assert re.search(r">av_offset <span class=\"dir\">→0</span></th>", header)
    assert re.search(r">lse_c <span class=\"dir\">↑</span></th>", header)


def test_html_tables_scroll_inside_the_page(tmp_path):
    """Every table sits in a scrolling box and long text wraps, so nothing leaves the page."""
    html = render_html(_results(tmp_path))
    tables = html.count("<table")
    assert tables >= 6 and html.count('<div class="scroll') == tables
    assert ".scroll{max-width:100%;overflow-x:auto" in html and "overflow-wrap:anywhere" in html
    assert html.count('<div class="scroll tall">') >= 3  # failures, notes, per video


def test_write_outputs_writes_every_file_atomically(tmp_path):
    files = write_outputs(_results(tmp_path), tmp_path / "out")
    assert sorted(files) == sorted(
        ["per_video.parquet", "per_video.csv", "per_frame.parquet", "per_frame.csv",
         "results.json", "report.html"]
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)  # no temp files
    assert pq.read_table(files["per_frame.parquet"]).num_rows == 22


def test_summary_table_lists_scores_and_skips(tmp_path):
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(summary_table(_results(tmp_path)))
    text = console.export_text()
    assert "psnr_pooled" in text and "inf" in text.lower() or "∞" in text
    assert "fid" in text and "needs the file 'x.pth'" in text and "(1 clips)" in text


@pytest.fixture(scope="module")
def small_pair(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from avatarlab.media import read_video, write_video

    root = tmp_path_factory.mktemp("cli")
    video = read_video(data_dir / "video" / "talk_c.mp4", end=0.4)
    noisy = np.clip(video.frames.astype(int) + 12, 0, 255).astype(np.uint8)
    write_video(root / "real.mp4", video.frames, video.fps, crf=0)
    write_video(root / "fake.mp4", noisy, video.fps, crf=0)
    return root / "fake.mp4", root / "real.mp4"


def test_cli_eval_writes_the_report(small_pair, tmp_path):
    from typer.testing import CliRunner

    from avatarlab.cli import app

    pred, ref = small_pair
    out = tmp_path / "results"
    args = ["eval", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,mae"]
    result = CliRunner().invoke(app, [*args, "--jobs", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "psnr" in result.output and "report.html" in result.output
    doc = json.loads((out / "results.json").read_text())
    # +12 grey levels (clipped at 255): PSNR near 20 log10(255 / 12) = 26.5 dB
    assert 25.0 < doc["summary"]["psnr"]["psnr"] < 27.5
    assert doc["summary"]["mae"]["mae"] == pytest.approx(12 / 255, rel=0.05)
    assert (out / "report.html").is_file() and (out / "per_frame.csv").is_file()


def test_cli_eval_refuses_unknown_metrics(small_pair, tmp_path):
    from typer.testing import CliRunner

    from avatarlab.cli import app
    from avatarlab.errors import OptionError

    pred, ref = small_pair
    result = CliRunner().invoke(
        app, ["eval", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,bogus",
              "-o", str(tmp_path)],
    )  # fmt: skip
    assert isinstance(result.exception, OptionError) and "bogus" in str(result.exception)
    assert not (tmp_path / "report.html").exists()
