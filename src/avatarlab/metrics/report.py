"""Writing an evaluation out: tables (Parquet + CSV), JSON, a self-contained HTML report.

Files in the output folder (each written atomically):

- ``per_video.parquet`` / ``.csv``: one row per pair: status, sizes, rates, audio
  source, resampling notes, errors, and every per-clip score;
- ``per_frame.parquet`` / ``.csv``: one row per evaluated frame of every clip: time,
  the prediction frame used, audio envelope, mouth opening, per-frame metric series;
- ``results.json``: the same for machines (NaN is ``null``, infinities are the strings
  ``"inf"`` / ``"-inf"``), plus the summary, skipped metrics and mismatches;
- ``report.html``: rendered from the Jinja2 template ``templates/report.html.j2``
  (package data); opens offline (inline CSS, plots as inline base64 PNG, no scripts,
  no external resources). The per-frame curves and the mouth-vs-audio plot are drawn
  by :mod:`avatarlab.metrics._plot` in matplotlib's look without matplotlib (1.7 s
  less per report); the SyncNet offset histogram still uses matplotlib's Agg canvas. Each score carries its
  direction (↑ higher is better, ↓ lower, →0 closest to zero) from the metric's ``keys``;
  wide or long tables scroll inside the page.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avatarlab._util import atomic_output
from avatarlab._version import __version__
from avatarlab.metrics.base import Better, Key
from avatarlab.metrics.planning import Skip
from avatarlab.metrics.results import ClipResult, EvalResults

if TYPE_CHECKING:
    import jinja2
    import pyarrow as pa
    from matplotlib.figure import Figure
    from rich.table import Table

#: Columns the runner adds to the per-frame table (the rest are metric series).
RUNNER_SERIES = ("t", "pred_frame", "pred_t", "face_pred", "face_ref", "audio_env",
                 "mouth_open_pred", "mouth_open_ref")  # fmt: skip
#: Columns of the per-video table before the scores.
VIDEO_COLUMNS = ("clip", "status", "error", "pred", "ref", "audio_source", "frames", "fps",
                 "width", "height", "pred_frames", "pred_fps", "pred_width", "pred_height",
                 "resampled", "resized", "seconds", "notes", "metric_errors", "skipped")  # fmt: skip
#: Clips drawn in the report's per-clip plots (all values are in the tables).
MAX_PLOTTED_CLIPS = 4
#: Package folder of the HTML template.
TEMPLATE = "templates/report.html.j2"


# --------------------------------------------------------------------------- tables


def _score_owners(results: EvalResults) -> dict[str, str]:
    """Score -> the first metric reporting it (others' same-named scores get a prefix)."""
    owner: dict[str, str] = {}
    for c in results.clips:
        for metric, values in c.values.items():
            for key in values:
                owner.setdefault(key, metric)
    return owner


def _per_video_rows(results: EvalResults) -> list[dict[str, Any]]:
    owner = _score_owners(results)
    rows = []
    for c in results.clips:
        row: dict[str, Any] = {
            "clip": c.name,
            "status": c.status,
            "error": c.error,
            "pred": c.pred,
            "ref": c.ref or "",
            "audio_source": c.audio_source,
            "frames": c.frames,
            "fps": c.fps,
            "width": c.width,
            "height": c.height,
            "pred_frames": c.pred_frames,
            "pred_fps": c.pred_fps,
            "pred_width": c.pred_size[0],
            "pred_height": c.pred_size[1],
            "resampled": c.resampled,
            "resized": c.resized,
            "seconds": round(c.seconds, 3),
            "notes": "; ".join(c.notes),
            "metric_errors": "; ".join(f"{m}: {e}" for m, e in c.errors.items()),
            "skipped": "; ".join(f"{m}: {e}" for m, e in c.skipped.items()),
        }
        for metric, values in c.values.items():
            for key, v in values.items():
                row[key if owner[key] == metric else f"{metric}.{key}"] = v
        rows.append(row)
    return rows


def _validity(present: np.ndarray) -> Any:
    """Arrow validity bitmap of a bool mask (None when every value is present)."""
    import pyarrow as pa

    return None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))


def _float_array(values: np.ndarray) -> pa.Array:
    """A float64 Arrow array of a numpy array (NaN stays a value, as pa.array keeps it)."""
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(data), [None, pa.py_buffer(data)])


def _column(values: Sequence[Any]) -> pa.Array:
    """An Arrow array of Python values, typed as ``pa.array`` infers it (None: null).

    Built from buffers for the kinds the tables hold (str, int, bool, float), because
    ``pa.array`` on any Python or numpy input imports pandas (0.3-0.6 s) to check for
    pandas objects; other kinds still go through ``pa.array``.
    """
    import pyarrow as pa

    n = len(values)
    present = np.fromiter((v is not None for v in values), bool, n)
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(n)
    valid = _validity(present)
    if kinds == {str}:
        data = [v.encode("utf-8") if v is not None else b"" for v in values]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        if offsets[-1] < 2**31:
            return pa.StringArray.from_buffers(
                n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(data)), valid
            )
    elif kinds == {bool}:
        bits = np.packbits(np.array([bool(v) for v in values]), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), n, [valid, pa.py_buffer(bits)])
    elif kinds == {int} and all(-(2**63) <= v < 2**63 for v in values if v is not None):
        ints = np.array([0 if v is None else v for v in values], np.int64)
        return pa.Array.from_buffers(pa.int64(), n, [valid, pa.py_buffer(ints)])
    elif kinds <= {float, int} and float in kinds:
        floats = np.array([0.0 if v is None else float(v) for v in values], np.float64)
        return pa.Array.from_buffers(pa.float64(), n, [valid, pa.py_buffer(floats)])
    return pa.array(values)


def _table(rows: list[dict[str, Any]], float_cols: Iterable[str]) -> pa.Table:
    """A pyarrow table of ``rows`` (missing cells None; float columns as float64, NaN)."""
    import pyarrow as pa

    cols = list(dict.fromkeys(k for r in rows for k in r))
    floats = set(float_cols)
    data = {}
    for col in cols:
        vals = [r.get(col) for r in rows]
        if col in floats:
            data[col] = _float_array(np.array([math.nan if v is None else float(v) for v in vals]))
        else:
            data[col] = _column(vals)
    return pa.table(data)


def per_video_table(results: EvalResults) -> pa.Table:
    """One row per pair: facts, notes, failures and per-clip scores (float64)."""
    rows = _per_video_rows(results)
    scores = {k for r in rows for k in r if k not in VIDEO_COLUMNS}
    return _table(rows, {"fps", "pred_fps", "seconds"} | scores)


def per_frame_table(results: EvalResults) -> pa.Table:
    """One row per evaluated frame of every clip: ``clip``, ``frame``, then the series."""
    import pyarrow as pa

    clips = [c for c in results.clips if c.status == "ok" and c.frames]
    cols = list(dict.fromkeys(k for c in clips for k in c.series))
    names = _column([c.name for c in clips for _ in range(c.frames)])
    if not clips:
        names = names.cast(pa.string())
    frames = np.concatenate([np.arange(c.frames) for c in clips]) if clips else np.zeros(0)
    data: dict[str, Any] = {
        "clip": names,
        "frame": pa.Array.from_buffers(
            pa.int64(), len(frames), [None, pa.py_buffer(frames.astype(np.int64))]
        ),
    }
    for col in cols:
        parts = [c.series.get(col, np.full(c.frames, np.nan)) for c in clips]
        data[col] = _float_array(np.concatenate(parts) if parts else np.zeros(0))
    return pa.table(data)


# --------------------------------------------------------------------------- JSON


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    if isinstance(v, Path):
        return str(v)
    return v


def _skip_dict(s: Skip) -> dict[str, Any]:
    return {
        "metric": s.metric,
        "reason": s.reason,
        "file": s.file,
        "source": s.source,
        "clips": list(s.clips),
    }


def results_dict(results: EvalResults) -> dict[str, Any]:
    """The JSON document: inputs, summary, per-clip values, skips, failures, mismatches."""
    plan = results.plan
    doc = {
        "format": "avatarlab.EvalResults/1",
        "avatarlab": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {"pred": results.pred, "ref": results.ref, "audio": results.audio},
        "device": results.device,
        "jobs": results.jobs,
        "seconds": round(results.seconds, 3),
        "weights": results.weights,
        "metrics": {
            m: {
                "conventions": results.conventions.get(m, ""),
                "summary_method": results.summary_method.get(m, ""),
            }
            for m in results.metrics
        },
        "summary": results.summary,
        "skipped": [_skip_dict(s) for s in results.skipped],
        "unmatched": {
            "pred": [str(p) for p in plan.unmatched_pred],
            "ref": [str(p) for p in plan.unmatched_ref],
            "audio": [str(p) for p in plan.unmatched_audio],
        },
        "clips": [
            {
                "name": c.name,
                "status": c.status,
                "error": c.error,
                "pred": c.pred,
                "ref": c.ref,
                "audio_source": c.audio_source,
                "frames": c.frames,
                "fps": c.fps,
                "size": [c.width, c.height],
                "pred_frames": c.pred_frames,
                "pred_fps": c.pred_fps,
                "pred_size": list(c.pred_size),
                "resampled": c.resampled,
                "resized": c.resized,
                "notes": c.notes,
                "values": c.values,
                "errors": c.errors,
                "skipped": c.skipped,
                "seconds": round(c.seconds, 3),
                "timings": {k: round(v, 3) for k, v in c.timings.items()},
            }
            for c in results.clips
        ],
    }
    return _jsonable(doc)


# --------------------------------------------------------------------------- plots


#: Figure margins in inches (left, right, top, bottom): room for tick labels such as
#: "0.00100", the y label and the title. Fixed margins instead of constrained layout and
#: a tight bounding box (which solve the layout and draw the figure twice): 3x faster.
_MARGINS = (0.9, 0.15, 0.45, 0.5)
#: A series with fewer finite values than this share of frames (CSIM scores one frame a
#: second) is drawn as dots: its isolated points would make no line.
_SPARSE = 0.5


def _figure(width: float, height: float, right: float = _MARGINS[1]) -> Figure:
    """A Figure of ``width`` x ``height`` inches with the fixed margins of :data:`_MARGINS`."""
    from matplotlib.figure import Figure

    left, _, top, bottom = _MARGINS
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )
    return fig


def _title(fig: Figure, text: str) -> None:
    """The figure's title in its top margin (0.1 inch from the top edge)."""
    fig.suptitle(text, fontsize=10, y=1 - 0.1 / fig.get_figheight(), va="top")


def _png(fig: Figure) -> str:
    """A matplotlib Figure as a ``data:image/png;base64,...`` URI (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(v: np.ndarray) -> np.ndarray:
    out = np.asarray(v, dtype=np.float64).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _panel_boxes(
    width: float, height: float, rows: int, right: float = _MARGINS[1], hspace: float = 0.0
) -> list[tuple[float, float, float, float]]:
    """Axes boxes in figure pixels (y down) of ``rows`` stacked panels inside the fixed
    margins, ``hspace`` as matplotlib's (a share of the mean panel height)."""
    from avatarlab.metrics._plot import DPI

    left, _, top, bottom = _MARGINS
    x0, x1 = left * DPI, (width - right) * DPI
    y0, y1 = top * DPI, (height - bottom) * DPI
    cell = (y1 - y0) / (rows + hspace * (rows - 1))
    return [
        (x0, y0 + i * cell * (1 + hspace), x1, y0 + i * cell * (1 + hspace) + cell)
        for i in range(rows)
    ]


def plot_frame_curves(clip: ClipResult) -> str | None:
    """One panel per metric with per-frame series over time; None without series.

    Drawn by :mod:`avatarlab.metrics._plot` (numpy/OpenCV/Pillow) in matplotlib's look:
    shared time axis labelled on the last panel, dots for sparse series.
    """
    from avatarlab.metrics._plot import TAB10, Canvas, Panel, Series, draw_panel

    groups: dict[str, list[str]] = {}
    for col, metric in clip.series_metric.items():
        groups.setdefault(metric, []).append(col)
    if not groups:
        return None
    t = np.asarray(clip.series["t"], dtype=np.float64)
    width, height = 9.0, 1.5 * len(groups) + 0.5
    canvas = Canvas(width, height)
    boxes = _panel_boxes(width, height, len(groups), hspace=0.12)
    panels = []
    for box, (metric, cols) in zip(boxes, groups.items(), strict=True):
        panel = Panel(box, ylabel=metric, xticklabels=False)
        for k, col in enumerate(cols):
            v = clip.series[col]
            label = col
            if np.isinf(v).any():
                label += f" ({int(np.isinf(v).sum())} inf not drawn)"
            y = _finite(v)
            dots = bool(np.isfinite(y).sum() < _SPARSE * len(y))
            panel.series.append(Series(t, y, TAB10[k % len(TAB10)], label, dots=dots))
        panel.legend = list(panel.series)
        panels.append(panel)
    # shared x: every panel uses the limits of all panels' data, labels on the last one
    xs = [s.x for p in panels for s in p.series]
    from avatarlab.metrics._plot import view_limits

    finite = np.concatenate([x[np.isfinite(x)] for x in xs]) if xs else np.zeros(0)
    xlim = view_limits(float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    panels[-1].xticklabels = True
    panels[-1].xlabel = "time (s, reference timeline)"
    for panel in panels:
        panel.xlim = xlim
        draw_panel(canvas, panel)
    canvas.text(canvas.w / 2, 0.1 * 90, f"{clip.name}: per-frame values", 10, va="top")
    return _png_uri(canvas.png())


def plot_mouth_audio(clip: ClipResult) -> str | None:
    """Mouth opening (inner-lip gap / face height) of both faces vs the audio RMS envelope."""
    from avatarlab.metrics._plot import GRAY, TAB10, Canvas, Fill, Panel, Series, draw_panel

    s = clip.series
    if "mouth_open_pred" not in s or "audio_env" not in s:
        return None
    width, height = 9.0, 2.6
    canvas = Canvas(width, height)
    (box,) = _panel_boxes(width, height, 1, right=0.9)  # the envelope's axis on the right
    t = np.asarray(s["t"], dtype=np.float64)
    panel = Panel(box, ylabel="inner-lip gap / face height", xlabel="time (s)")
    panel.series.append(
        Series(t, _finite(s["mouth_open_pred"]), TAB10[0], "mouth opening, prediction", 1.2)
    )
    if "mouth_open_ref" in s:
        panel.series.append(
            Series(
                t, _finite(s["mouth_open_ref"]), TAB10[1], "mouth opening, reference", dashed=True
            )  # fmt: skip
        )
    env = Fill(t, np.asarray(s["audio_env"], np.float64), GRAY, 0.3, "audio RMS envelope")
    panel.right = Panel(box, fills=[env], ylabel="audio RMS")
    panel.legend = [*panel.series, env]
    draw_panel(canvas, panel)
    title = f"{clip.name}: mouth opening vs audio envelope ({clip.audio_source})"
    canvas.text(canvas.w / 2, 0.1 * 90, title, 10, va="top")
    return _png_uri(canvas.png())


def plot_offset_histogram(offsets: Sequence[float]) -> str:
    """Histogram of per-clip AV offsets in frames (SyncNet's -15..15 search)."""
    from avatarlab.metrics.syncnet import VSHIFT

    fig = _figure(6, 2.6)
    ax = fig.subplots()
    lo = min(-VSHIFT, int(np.floor(min(offsets))))
    hi = max(VSHIFT, int(np.ceil(max(offsets))))
    ax.hist(offsets, bins=(np.arange(lo, hi + 2) - 0.5).tolist(), color="tab:blue", rwidth=0.85)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("AV offset (frames; > 0: audio leads video)")
    ax.set_ylabel("clips")
    ax.set_title(f"SyncNet offset over {len(offsets)} clips", fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- HTML

_DIRECTION = {
    Better.HIGHER: "higher is better",
    Better.LOWER: "lower is better",
    Better.ZERO: "closest to zero is better",
    Better.NONE: "informative",
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.6g}"
    return str(v)


def _cell(v: Any, key: Key | None = None) -> dict[str, Any]:
    """A table cell for the template: text, numeric alignment, direction arrow and hint."""
    return {
        "text": _fmt(v),
        "num": isinstance(v, float | int) and not isinstance(v, bool),
        "arrow": key.arrow if key else "",
        "title": _DIRECTION[key.better] if key else "",
    }


def _html_table(
    header: Sequence[str | dict[str, Any]], rows: Iterable[Sequence[Any]]
) -> dict[str, list[Any]]:
    """``{"header": [cell], "rows": [[cell]]}``; values may already be cells."""
    return {
        "header": [h if isinstance(h, dict) else _cell(h) for h in header],
        "rows": [[v if isinstance(v, dict) else _cell(v) for v in row] for row in rows],
    }


def _column_key(results: EvalResults, column: str, owner: dict[str, str]) -> Key | None:
    """The Key of a per-video score column (``score`` or ``metric.score``)."""
    metric, dot, score = column.partition(".")
    if dot and metric in results.keys:
        return results.key(metric, score)
    return results.key(owner.get(column, ""), column)


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    from importlib.resources import files

    import jinja2

    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    return env.from_string((files("avatarlab.metrics") / TEMPLATE).read_text(encoding="utf-8"))


def _plots(ok: list[ClipResult], max_clips: int) -> list[dict[str, Any]]:
    out = []
    for c in ok[:max_clips]:
        mouth = plot_mouth_audio(c)
        if mouth:
            missing = ""
        elif "audio_env" not in c.series:
            missing = "No audio: no mouth-opening vs audio plot."
        else:
            missing = (
                "No face tracking in this run (only per-frame metrics selected): "
                "no mouth-opening plot."
            )
        out.append(
            {
                "name": c.name,
                "curves": plot_frame_curves(c),
                "mouth": mouth,
                "mouth_missing": missing,
            }
        )
    return out


def render_html(results: EvalResults, max_clips: int = MAX_PLOTTED_CLIPS) -> str:
    """The report as one HTML string (no scripts, no external resources)."""
    ok = [c for c in results.clips if c.status == "ok"]
    plan = results.plan
    overview = _html_table(
        ["", ""],
        [
            ["prediction", results.pred],
            ["reference", results.ref or "none (no-reference metrics only)"],
            ["audio", results.audio or "each clip's own audio track"],
            ["clips", f"{len(ok)} evaluated, {len(results.failed)} failed"],
            ["metrics run", ", ".join(results.metrics) or "none"],
            [
                "run",
                f"{results.seconds:.1f} s, {results.jobs} job(s), device {results.device}, "
                f"avatarlab {__version__}",
            ],
        ],
    )
    summary_rows = [
        [
            metric,
            _cell(key, results.key(metric, key)),
            value,
            results.summary_method.get(metric, ""),
        ]
        for metric, values in results.summary.items()
        for key, value in values.items()
    ]
    skipped = [
        [
            s.metric,
            s.reason,
            s.file or "–",
            s.source or "–",
            ", ".join(s.clips) if s.clips else "all",
        ]
        for s in results.skipped
    ]
    failures = [[c.name, "(whole clip)", c.error] for c in results.failed] + [
        [clip, m, msg] for clip, m, msg in results.metric_errors()
    ]
    unmatched = (
        [[str(p), "prediction without a reference of the same name"] for p in plan.unmatched_pred]
        + [[str(p), "reference without a prediction of the same name"] for p in plan.unmatched_ref]
        + [[str(p), "audio without a pair of the same name"] for p in plan.unmatched_audio]
    )
    notes = [[c.name, n] for c in results.clips for n in c.notes]
    offsets = [
        v["av_offset"] for c in ok for v in c.values.values()
        if "av_offset" in v and math.isfinite(v["av_offset"])
    ]  # fmt: skip
    vrows = _per_video_rows(results)
    owner = _score_owners(results)
    score_cols = list(dict.fromkeys(k for r in vrows for k in r if k not in VIDEO_COLUMNS))
    per_video = _html_table(
        ["clip", "status", "frames", "fps", "audio"]
        + [_cell(k, _column_key(results, k, owner)) for k in score_cols],
        [
            [r["clip"], r["status"], r["frames"], r["fps"], r["audio_source"]]
            + [r.get(k, math.nan) for k in score_cols]
            for r in vrows
        ],
    )
    context = {
        "overview": overview,
        "summary": _html_table(["metric", "score", "value", "aggregation"], summary_rows)
        if summary_rows
        else None,
        "skipped": _html_table(
            ["metric", "reason", "missing file", "official source", "clips"], skipped
        )
        if skipped
        else None,
        "failures": _html_table(["clip", "metric", "error"], failures) if failures else None,
        "unmatched": _html_table(["file", "why"], unmatched) if unmatched else None,
        "notes": _html_table(["clip", "note"], notes) if notes else None,
        "offset_histogram": plot_offset_histogram(offsets) if offsets else None,
        "evaluated": len(ok),
        "plotted": min(len(ok), max_clips),
        "plots": _plots(ok, max_clips),
        "per_video": per_video,
        "conventions": _html_table(
            ["metric", "conventions"], [[m, text] for m, text in results.conventions.items()]
        ),
    }
    return _template().render(context)


# --------------------------------------------------------------------------- writing


#: The files :func:`write_outputs` writes into the output folder.
OUTPUT_NAMES = (
    "per_video.parquet",
    "per_video.csv",
    "per_frame.parquet",
    "per_frame.csv",
    "results.json",
    "report.html",
)


def write_outputs(
    results: EvalResults, out_dir: str | os.PathLike[str], max_clips: int = MAX_PLOTTED_CLIPS
) -> dict[str, Path]:
    """Write the tables, JSON and HTML report into ``out_dir``; returns name -> path."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for stem, table in (
        ("per_video", per_video_table(results)),
        ("per_frame", per_frame_table(results)),
    ):
        for suffix, write in ((".parquet", pq.write_table), (".csv", pacsv.write_csv)):
            path = out / f"{stem}{suffix}"
            with atomic_output(path) as tmp:
                write(table, str(tmp))
            files[f"{stem}{suffix}"] = path
    path = out / "results.json"
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(results_dict(results), indent=1, allow_nan=False))
    files["results.json"] = path
    path = out / "report.html"
    with atomic_output(path) as tmp:
        tmp.write_text(render_html(results, max_clips), encoding="utf-8")
    files["report.html"] = path
    return files


def summary_table(results: EvalResults) -> Table:
    """The terminal summary: one row per score, then skipped metrics and failures."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"evaluation: {len(results.clips) - len(results.failed)} clips")
    for col in ("metric", "score", "value", "aggregation"):
        table.add_column(col, overflow="fold")
    for metric, values in results.summary.items():
        for key, value in values.items():
            table.add_row(metric, key, _fmt(value), results.summary_method.get(metric, ""))
    for s in results.skipped:
        where = "" if not s.clips else f" ({len(s.clips)} clips)"
        table.add_row(
            f"[yellow]{escape(s.metric)}[/]", "skipped", "", f"[yellow]{escape(s.reason)}{where}[/]"
        )
    return table


__all__ = [
    "MAX_PLOTTED_CLIPS",
    "per_frame_table",
    "per_video_table",
    "plot_frame_curves",
    "plot_mouth_audio",
    "plot_offset_histogram",
    "render_html",
    "results_dict",
    "summary_table",
    "write_outputs",
]
