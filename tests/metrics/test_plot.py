"""The report's own PNG plots: matplotlib's tick rules, the pictures, no heavy imports."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from avatarlab.metrics import _plot
from avatarlab.metrics.report import plot_frame_curves, plot_mouth_audio
from avatarlab.metrics.results import ClipResult

RANGES = [
    (0.0, 1.0),
    (-0.398, 8.358),
    (0.99738, 0.99892),
    (0.000396, 0.001003),
    (-7.9, 14.2),
    (29.85, 34.2),
    (1234.5, 1234.9),
    (0.9, 0.9),
    (-3e-7, 5e-7),
]


@pytest.mark.parametrize(("lo", "hi"), RANGES)
@pytest.mark.parametrize("nbins", [3, 5, 9])
def test_ticks_and_labels_are_matplotlibs(lo: float, hi: float, nbins: int) -> None:
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    vlo, vhi = _plot.view_limits(lo, hi)  # data -> view limits, then ticks on the view
    want = np.asarray(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(vlo, vhi))
    got = _plot.ticks(vlo, vhi, nbins)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * max(1.0, abs(vhi)))
    fmt = ScalarFormatter()
    fmt.create_dummy_axis()
    assert fmt.axis is not None
    fmt.axis.set_view_interval(vlo, vhi)
    visible = want[(want >= vlo) & (want <= vhi)]
    labels, offset = _plot.tick_labels(visible, vlo, vhi)
    assert labels == fmt.format_ticks(list(visible))
    assert offset == fmt.get_offset()


@pytest.mark.parametrize("y", [np.array([0.2, 0.5, 0.4]), np.full(3, 30.0), np.zeros(3)])
def test_view_limits_are_matplotlibs_autoscale(y: np.ndarray) -> None:
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot(np.arange(3), y)
    assert _plot.view_limits(float(y.min()), float(y.max())) == pytest.approx(ax.get_ylim())


def _clip(n: int = 50) -> ClipResult:
    t = np.arange(n) / 25
    c = ClipResult("clip", "/p/clip.mp4", "/r/clip.mp4", audio_source="prediction's audio")
    c.frames, c.fps = n, 25.0
    sparse = np.full(n, np.nan)
    sparse[::25] = 0.99
    c.series = {
        "t": t,
        "psnr": 30 + np.sin(t),
        "ssim": np.where(t > 1, np.inf, 0.9),
        "csim": sparse,
        "audio_env": np.abs(np.sin(3 * t)),
        "mouth_open_pred": 0.1 + 0.05 * np.sin(5 * t),
        "mouth_open_ref": 0.1 + 0.05 * np.cos(5 * t),
    }
    c.series_metric = {"psnr": "psnr", "ssim": "ssim", "csim": "csim"}
    return c


def _decode(uri: str) -> np.ndarray:
    head, data = uri.split(",", 1)
    assert head == "data:image/png;base64"
    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _has_colour(img: np.ndarray, colour: str, tol: int = 40) -> int:
    diff = np.abs(img.astype(int) - np.array(_plot.rgb(colour))).sum(axis=2)
    return int((diff < tol).sum())


def test_curves_are_drawn_per_metric_panel_with_matplotlibs_geometry() -> None:
    uri = plot_frame_curves(_clip())
    assert uri is not None
    img = _decode(uri)
    assert img.shape == (round((1.5 * 3 + 0.5) * 90), 9 * 90, 3)  # 3 panels, 90 dpi
    assert _has_colour(img, _plot.TAB10[0]) > 200  # the curves (first colour of each panel)
    # the panel frames: a black spine at the left margin (0.9 in) down most of the figure
    dark = (img[:, 80:83].sum(axis=2) < 60).sum(axis=0)
    assert dark.max() > 0.7 * (img.shape[0] - 0.95 * 90)


def test_mouth_plot_has_both_curves_and_the_envelope() -> None:
    uri = plot_mouth_audio(_clip())
    assert uri is not None
    img = _decode(uri)
    assert img.shape == (round(2.6 * 90), 9 * 90, 3)
    assert _has_colour(img, _plot.TAB10[0]) > 100
    assert _has_colour(img, _plot.TAB10[1]) > 50  # the dashed reference
    assert _has_colour(img, "#d9d9d9", tol=12) > 1000  # grey envelope at alpha 0.3


def test_no_clip_series_gives_no_plot() -> None:
    c = ClipResult("x", "/p/x.mp4", None)
    c.series = {"t": np.arange(3.0)}
    assert plot_frame_curves(c) is None
    assert plot_mouth_audio(c) is None


def test_report_writing_imports_neither_matplotlib_nor_pandas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parents[2])!r})
        from tests.metrics.test_report import _results
        from avatarlab.metrics.report import write_outputs
        res = _results(Path({str(tmp_path)!r}))
        res.clips = [c for c in res.clips if "lse" not in c.values]  # no SyncNet histogram
        write_outputs(res, {str(tmp_path)!r})
        print(sorted(m for m in ("matplotlib", "pandas") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "report.html").read_text().count('src="data:image/png;base64,') == 1
