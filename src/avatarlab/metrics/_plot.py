"""Line plots rasterised to PNG with numpy, OpenCV and Pillow, in matplotlib's look.

The report's per-frame curves and mouth-vs-audio plot took 1.3 s and 0.4 s through
matplotlib (figure, axes and tick objects, Agg drawing), plus its import when nothing
else loaded it; drawn here they take a few tens of milliseconds. The picture follows
matplotlib's defaults so the report reads the same: 90 dpi, DejaVu Sans (matplotlib's
own font file when installed), the tab10 colour cycle per panel, ``MaxNLocator`` ticks
(steps 1, 2, 2.5, 5, 10; as many as fit), ``ScalarFormatter`` labels (offset, Unicode
minus), 5 % margins, grid at alpha 0.3, frameless legend in the upper-right corner.

Geometry is in figure pixels, y down. Curves are drawn as coverage masks at
:data:`_SUPER` times the resolution (anti-aliased, fractional widths), averaged down
and composited with their colour and alpha.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from PIL import ImageFont

#: Pixels per inch of the figures (matplotlib's ``savefig(dpi=90)`` in the report).
DPI = 90
#: matplotlib's tab10 colour cycle.
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
GRAY = "#7f7f7f"
_SUPER = 3  # supersampling factor of the curve masks
_TICK_STEPS = np.array([0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0])
_MINUS = "\u2212"


def pt(points: float) -> float:
    """Points to pixels at :data:`DPI`."""
    return points * DPI / 72.0


def rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` as an RGB triple."""
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@functools.lru_cache(maxsize=1)
def _font_path() -> str | None:
    """matplotlib's DejaVu Sans file (found without importing matplotlib), or None."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


@functools.lru_cache(maxsize=16)
def font(size_pt: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size_pt`` points (Pillow's default font without matplotlib)."""
    from PIL import ImageFont

    path = _font_path()
    if path is None:
        return ImageFont.load_default(pt(size_pt))
    # The basic layout's hinted advances match matplotlib's text widths (raqm's are ~9 %
    # narrower at these sizes).
    return ImageFont.truetype(path, pt(size_pt), layout_engine=ImageFont.Layout.BASIC)


# --------------------------------------------------------------------------- ticks


def nonsingular(
    lo: float, hi: float, expander: float = 0.05, tiny: float = 1e-15
) -> tuple[float, float]:
    """matplotlib's ``transforms.nonsingular``: widen an empty or tiny interval."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -expander, expander
    if hi < lo:
        lo, hi = hi, lo
    maxabs = max(abs(lo), abs(hi))
    if maxabs < (1e6 / tiny) * np.finfo(float).tiny:
        return -expander, expander
    if hi - lo <= maxabs * tiny:
        if hi == 0 and lo == 0:
            return -expander, expander
        lo -= expander * abs(lo)
        hi += expander * abs(hi)
    return lo, hi


def view_limits(lo: float, hi: float, margin: float = 0.05) -> tuple[float, float]:
    """Autoscaled limits of data spanning ``lo..hi``: nonsingular, then 5 % margins."""
    lo, hi = nonsingular(lo, hi)
    delta = (hi - lo) * margin
    return nonsingular(lo - delta, hi + delta)


def _scale_range(vmin: float, vmax: float, n: int) -> tuple[float, float]:
    dv = abs(vmax - vmin)
    meanv = (vmax + vmin) / 2
    offset = 0.0
    if abs(meanv) / dv >= 100:
        offset = math.copysign(10 ** (math.log10(abs(meanv)) // 1), meanv)
    return 10 ** (math.log10(dv / n) // 1), offset


def _closeto(ms: float, edge: float, step: float, offset: float) -> bool:
    tol = 1e-10
    if offset > 0:
        tol = max(1e-10, 10 ** (math.log10(offset / step) - 12))
    return abs(ms - edge) < min(0.4999, tol)


def ticks(vmin: float, vmax: float, nbins: int) -> np.ndarray:
    """``MaxNLocator(nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)``."""
    vmin, vmax = nonsingular(vmin, vmax, 1e-13, 1e-14)
    scale, offset = _scale_range(vmin, vmax, nbins)
    lo, hi = vmin - offset, vmax - offset
    steps = _TICK_STEPS * scale
    raw = (hi - lo) / nbins
    large = np.nonzero(steps >= raw)[0]
    istep = int(large[0]) if len(large) else len(steps) - 1
    out = np.zeros(0)
    for step in steps[: istep + 1][::-1]:
        best = (lo // step) * step
        d, m = divmod(lo - best, step)
        low = d + 1 if _closeto(m / step, 1, step, abs(offset)) else d
        d, m = divmod(hi - best, step)
        high = d if _closeto(m / step, 0, step, abs(offset)) else d + 1
        out = np.arange(low, high + 1) * step + best
        if ((out <= hi) & (out >= lo)).sum() >= 2:
            break
    return out + offset


def _format_sci(value: float) -> str:
    """ScalarFormatter.format_data without mathtext: ``1e-05``-style short form."""
    e = math.floor(math.log10(abs(value)))
    s = round(value / 10**e, 10)
    significand = f"{s:.0f}" if s % 1 == 0 else f"{s:g}"
    return significand if e == 0 else f"{significand}e{e}"


def tick_labels(locs: np.ndarray, lo: float, hi: float) -> tuple[list[str], str]:
    """``ScalarFormatter`` labels of the visible ticks and its offset text ('' if none)."""
    visible = locs[(locs >= lo) & (locs <= hi)]
    offset = 0.0
    if len(visible):
        lmin, lmax = float(visible.min()), float(visible.max())
        if lmin != lmax and not lmin <= 0 <= lmax:
            amin, amax = sorted([abs(lmin), abs(lmax)])
            sign = math.copysign(1, lmin)
            top = math.ceil(math.log10(amax))
            oom = 1 + next(o for o in itertools.count(top, -1) if amin // 10**o != amax // 10**o)
            if (amax - amin) / 10**oom <= 1e-2:
                oom = 1 + next(
                    o for o in itertools.count(top, -1) if amax // 10**o - amin // 10**o > 1
                )
            if amax // 10**oom >= 10**3:
                offset = sign * (amax // 10**oom) * 10**oom
    oom_mag = 0
    if len(visible):
        val = (hi - lo) if offset else float(np.abs(visible).max())
        if val > 0:
            oom = math.floor(math.log10(val))
            oom_mag = oom if (oom <= -5 or oom >= 6) else 0
    scaled = (locs - offset) / 10.0**oom_mag
    ends = scaled if len(scaled) > 1 else (np.array([*locs, lo, hi]) - offset) / 10.0**oom_mag
    span = float(np.ptp(ends)) or float(np.max(np.abs(ends))) or 1.0
    span_oom = math.floor(math.log10(span))
    sig = max(0, 3 - span_oom)
    thresh = 1e-3 * 10**span_oom
    while sig >= 0 and len(scaled) and np.abs(scaled - np.round(scaled, sig)).max() < thresh:
        sig -= 1
    sig += 1
    labels = [f"{v:1.{sig}f}".replace("-", _MINUS) for v in scaled]
    text = ""
    if oom_mag:
        text = _format_sci(10.0**oom_mag)
    if offset:
        text += ("+" if offset > 0 else "") + _format_sci(offset)
    return labels, text.replace("-", _MINUS)


# --------------------------------------------------------------------------- drawing


@dataclass
class Series:
    """One curve: x, y (NaN: gap), colour, width in points, style."""

    x: np.ndarray
    y: np.ndarray
    color: str
    label: str = ""
    width: float = 1.0
    dashed: bool = False
    dots: bool = False
    dot_size: float = 3.0


@dataclass
class Fill:
    """A step-mid area from 0 up to ``y`` (matplotlib ``fill_between(step='mid')``)."""

    x: np.ndarray
    y: np.ndarray
    color: str
    alpha: float
    label: str = ""


@dataclass
class Panel:
    """One axes: its box in figure pixels (x0, y0, x1, y1; y down) and what it holds."""

    box: tuple[float, float, float, float]
    series: list[Series] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    ylabel: str = ""
    xlabel: str = ""
    xticklabels: bool = True
    grid: bool = True
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    right: Panel | None = None  # a twin y-axis (the envelope), drawn below this one
    legend: list[Series | Fill] = field(default_factory=list)


class Canvas:
    """An RGB figure of ``width`` x ``height`` inches at :data:`DPI`, white."""

    def __init__(self, width_in: float, height_in: float) -> None:
        self.w = int(round(width_in * DPI))
        self.h = int(round(height_in * DPI))
        self.img = np.full((self.h, self.w, 3), 255, np.uint8)
        self._texts: list[tuple[float, float, str, float, str, str, bool]] = []

    # -- primitives
    def _composite(
        self, mask: np.ndarray, x0: int, y0: int, color: str, alpha: float = 1.0
    ) -> None:
        """Blend ``color`` into the image through a coverage mask (0..1) at (x0, y0)."""
        h, w = mask.shape
        region = self.img[y0 : y0 + h, x0 : x0 + w]
        m = mask[: region.shape[0], : region.shape[1]]
        rows, cols = np.nonzero(m)  # curves cover a small share of their panel
        a = (m[rows, cols] * np.float32(alpha))[:, None]
        col = np.asarray(rgb(color), np.float32)
        region[rows, cols] = np.rint(region[rows, cols] * (1 - a) + col * a).astype(np.uint8)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str) -> None:
        """A solid rectangle snapped to whole pixels, at least one pixel wide and high
        (spines, ticks): Agg's pixel snapping of straight lines."""
        a, b = int(round(x0)), int(round(y0))
        c = a + max(1, int(round(x1 - x0)))
        d = b + max(1, int(round(y1 - y0)))
        self.img[max(b, 0) : max(d, 0), max(a, 0) : max(c, 0)] = rgb(color)

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float,
        ha: str = "center",
        va: str = "center",
        rotate: bool = False,
    ) -> None:
        """Queue a text drawn after the curves (``ha``: left/center/right; ``va``: top,
        center, bottom, baseline); ``rotate``: reads bottom to top."""
        self._texts.append((x, y, s, size, ha, va, rotate))

    def text_size(self, s: str, size: float) -> tuple[float, float]:
        """Width and height in pixels of a text as :meth:`text` draws it."""
        f = font(size)
        x0, _, x1, _ = f.getbbox(s)
        return float(x1 - x0), pt(size)

    def _draw_texts(self) -> None:
        from PIL import Image, ImageDraw

        image = Image.fromarray(self.img)
        draw = ImageDraw.Draw(image)
        v_anchor = {"top": "a", "center": "m", "bottom": "d", "baseline": "s"}
        for x, y, s, size, ha, va, rotate in self._texts:
            f = font(size)
            if rotate:
                ascent, descent = f.getmetrics()  # type: ignore[union-attr]
                width = int(math.ceil(f.getlength(s)))
                tile = Image.new("L", (width + 2, ascent + descent + 2), 0)
                ImageDraw.Draw(tile).text((1, 1), s, font=f, fill=255, anchor="la")
                tile = tile.transpose(Image.Transpose.ROTATE_90)
                tw, th = tile.size
                left = x - tw / 2 if ha == "center" else (x - tw if ha == "right" else x)
                ink = Image.new("RGB", tile.size, (0, 0, 0))
                image.paste(ink, (int(round(left)), int(round(y - th / 2))), tile)
                continue
            anchor = {"left": "l", "center": "m", "right": "r"}[ha] + v_anchor[va]
            draw.text((x, y), s, font=f, fill=(0, 0, 0), anchor=anchor)
        self.img = np.asarray(image).copy()

    def png(self) -> bytes:
        """The figure as PNG bytes (texts drawn last)."""
        self._draw_texts()
        ok, buf = cv2.imencode(
            ".png", cv2.cvtColor(self.img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
            raise RuntimeError("PNG encoding failed")
        return bytes(buf.tobytes())


def _runs(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Stretches of finite points as ``(K, 2)`` arrays (NaN breaks a line)."""
    ok = np.isfinite(x) & np.isfinite(y)
    pts = np.stack([x, y], axis=1)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    cuts = np.flatnonzero(np.diff(idx) > 1) + 1
    return [pts[part] for part in np.split(idx, cuts)]


def _dashes(line: np.ndarray, on: float, off: float) -> list[np.ndarray]:
    """Split a polyline ``(K, 2)`` into dash pieces of ``on`` pixels every ``on + off``."""
    seg = np.diff(line, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    total = cum[-1]
    period = on + off
    pieces = []
    start = 0.0
    while start < total:
        end = min(start + on, total)
        s = np.linspace(start, end, max(2, int((end - start) // 2) + 2))
        px = np.interp(s, cum, line[:, 0])
        py = np.interp(s, cum, line[:, 1])
        inner = (cum > start) & (cum < end)
        t = np.concatenate([s, cum[inner]])
        order = np.argsort(t)
        pxy = np.stack([np.concatenate([px, line[inner, 0]]),
                        np.concatenate([py, line[inner, 1]])], axis=1)  # fmt: skip
        pieces.append(pxy[order])
        start += period
    return pieces


def _limits(values: Sequence[np.ndarray]) -> tuple[float, float]:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0, 1.0
    return float(min(v.min() for v in finite)), float(max(v.max() for v in finite))


def _axis_ticks(lo: float, hi: float, length_px: float, label_pt: float, per: float) -> np.ndarray:
    """Tick positions of an axis: MaxNLocator 'auto' bins (fit by label size, at most 9)."""
    length_pt = length_px * 72.0 / DPI
    nbins = max(1, min(int(math.floor(length_pt / (label_pt * per))), 9))
    locs = ticks(lo, hi, nbins)
    span = hi - lo
    return locs[(locs >= lo - 1e-10 * span) & (locs <= hi + 1e-10 * span)]


class _Mapper:
    """Data to figure pixels for one axes box and its limits."""

    def __init__(self, box: tuple[float, float, float, float], xlim: Any, ylim: Any) -> None:
        self.x0, self.y0, self.x1, self.y1 = box
        self.xlo, self.xhi = xlim
        self.ylo, self.yhi = ylim

    def x(self, v: np.ndarray | float) -> Any:
        return self.x0 + (np.asarray(v) - self.xlo) / (self.xhi - self.xlo) * (self.x1 - self.x0)

    def y(self, v: np.ndarray | float) -> Any:
        return self.y1 - (np.asarray(v) - self.ylo) / (self.yhi - self.ylo) * (self.y1 - self.y0)


def _mask_draw(canvas: Canvas, box: tuple[float, float, float, float], color: str,
               alpha: float, draw: Any) -> None:  # fmt: skip
    """Run ``draw(mask, to_px)`` on a supersampled mask of ``box`` and composite it."""
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return
    mask = np.zeros((h * _SUPER, w * _SUPER), np.uint8)

    def to_px(pts: np.ndarray) -> np.ndarray:
        """Figure pixel coordinates -> mask coordinates, fixed point with 4 fraction bits."""
        local = (pts - (x0, y0)) * _SUPER
        return np.rint(local * 16).astype(np.int32)

    draw(mask, to_px)
    small = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    canvas._composite(small, x0, y0, color, alpha)


def _draw_series(canvas: Canvas, m: _Mapper, box: Any, s: Series) -> None:
    lines = _runs(m.x(s.x), m.y(s.y))
    if not lines:
        return
    thick = max(1, int(round(pt(s.width) * _SUPER - 1.5)))  # AA adds about a pixel

    def draw(mask: np.ndarray, to_px: Any) -> None:
        for line in lines:
            if len(line) > 1:
                parts = _dashes(line, pt(3.7 * s.width), pt(1.6 * s.width)) if s.dashed else [line]
                cv2.polylines(mask, [to_px(p) for p in parts], False, (255,), thick, cv2.LINE_AA, 4)
            if s.dots:
                radius = int(round((pt(s.dot_size) / 2 + pt(1.0) / 2) * _SUPER * 16))
                for p in to_px(line):
                    cv2.circle(mask, (int(p[0]), int(p[1])), radius, (255,), -1, cv2.LINE_AA, 4)

    _mask_draw(canvas, box, s.color, 1.0, draw)


def _draw_fill(canvas: Canvas, m: _Mapper, box: Any, f: Fill) -> None:
    x = np.asarray(f.x, np.float64)
    y = np.asarray(f.y, np.float64)
    if len(x) == 0:
        return
    mids = (x[:-1] + x[1:]) / 2
    edges = np.concatenate([[x[0]], mids, [x[-1]]])
    xs = np.repeat(edges, 2)[1:-1]
    ys = np.repeat(np.nan_to_num(y), 2)
    top = np.stack([m.x(xs), m.y(ys)], axis=1)
    base = np.array([[m.x(xs[-1]), m.y(0.0)], [m.x(xs[0]), m.y(0.0)]])
    poly = np.concatenate([top, base])

    def draw(mask: np.ndarray, to_px: Any) -> None:
        cv2.fillPoly(mask, [to_px(poly)], (255,), cv2.LINE_AA, 4)

    def outline(mask: np.ndarray, to_px: Any) -> None:
        cv2.polylines(mask, [to_px(poly)], True, (255,), max(1, round(pt(1.0) * _SUPER - 1.5)),
                      cv2.LINE_AA, 4)  # fmt: skip

    # matplotlib strokes the area's edge (1 pt) in the same translucent colour
    _mask_draw(canvas, box, f.color, f.alpha, draw)
    _mask_draw(canvas, box, f.color, f.alpha, outline)


def draw_panel(canvas: Canvas, p: Panel, tick_pt: float = 10.0, legend_pt: float = 7.0) -> None:
    """Draw one axes: twin envelope first, grid, curves, spines, ticks, labels, legend."""
    x0, y0, x1, y1 = p.box
    xlim = p.xlim or view_limits(*_limits([s.x for s in p.series] + [f.x for f in p.fills]))
    ylim = p.ylim or view_limits(*_limits([s.y for s in p.series]))
    m = _Mapper(p.box, xlim, ylim)
    xt = _axis_ticks(*xlim, x1 - x0, tick_pt, 3.0)
    yt = _axis_ticks(*ylim, y1 - y0, tick_pt, 2.0)
    if p.right is not None:
        r = p.right
        # the fills reach down to 0, so 0 is in the data limits (then 5 % margins)
        rlim = r.ylim or view_limits(*_limits([f.y for f in r.fills] + [np.zeros(1)]))
        rm = _Mapper(p.box, xlim, rlim)
        for f in r.fills:
            _draw_fill(canvas, rm, p.box, f)
    grid_w = pt(0.8)
    if p.grid:
        for v in xt:
            gx = float(m.x(v))
            canvas._composite(np.ones((int(round(y1 - y0)), 1), np.float32),
                              int(round(gx - grid_w / 2)), int(round(y0)), "#b0b0b0", 0.3)  # fmt: skip
        for v in yt:
            gy = float(m.y(v))
            canvas._composite(np.ones((1, int(round(x1 - x0))), np.float32),
                              int(round(x0)), int(round(gy - grid_w / 2)), "#b0b0b0", 0.3)  # fmt: skip
    for s in p.series:
        _draw_series(canvas, m, p.box, s)
    # spines (0.8 pt) and outward ticks (3.5 pt long, 0.8 pt wide)
    lw = max(1.0, round(grid_w))
    canvas.rect(x0 - lw / 2, y0 - lw / 2, x1 + lw / 2, y0 + lw / 2, "#000000")
    canvas.rect(x0 - lw / 2, y1 - lw / 2, x1 + lw / 2, y1 + lw / 2, "#000000")
    canvas.rect(x0 - lw / 2, y0 - lw / 2, x0 + lw / 2, y1 + lw / 2, "#000000")
    canvas.rect(x1 - lw / 2, y0 - lw / 2, x1 + lw / 2, y1 + lw / 2, "#000000")
    tick_len = pt(3.5)
    pad = pt(3.5)
    for v in xt:
        gx = float(m.x(v))
        canvas.rect(gx - lw / 2, y1, gx + lw / 2, y1 + tick_len, "#000000")
    for v in yt:
        gy = float(m.y(v))
        canvas.rect(x0 - tick_len, gy - lw / 2, x0, gy + lw / 2, "#000000")
    ylabels, yoff = tick_labels(yt, *ylim)
    widest = 0.0
    for v, lab in zip(yt, ylabels, strict=True):
        canvas.text(x0 - tick_len - pad, float(m.y(v)), lab, tick_pt, ha="right", va="center")
        widest = max(widest, canvas.text_size(lab, tick_pt)[0])
    if yoff:
        canvas.text(x0, y0 - pt(2), yoff, tick_pt, ha="left", va="bottom")
    if p.ylabel:
        lx = x0 - tick_len - pad - widest - pt(4.0)
        canvas.text(lx, (y0 + y1) / 2, p.ylabel, tick_pt, ha="right", rotate=True)
    if p.xticklabels:
        xlabels, _ = tick_labels(xt, *xlim)
        for v, lab in zip(xt, xlabels, strict=True):
            canvas.text(float(m.x(v)), y1 + tick_len + pad, lab, tick_pt, ha="center", va="top")
    if p.xlabel:
        ly = y1 + tick_len + pad + pt(tick_pt) + pt(4.0)
        canvas.text((x0 + x1) / 2, ly, p.xlabel, tick_pt, ha="center", va="top")
    if p.right is not None:
        r = p.right
        rt = _axis_ticks(*rlim, y1 - y0, tick_pt, 2.0)
        rlabels, _ = tick_labels(rt, *rlim)
        widest = 0.0
        for v, lab in zip(rt, rlabels, strict=True):
            gy = float(rm.y(v))
            canvas.rect(x1, gy - lw / 2, x1 + tick_len, gy + lw / 2, "#000000")
            canvas.text(x1 + tick_len + pad, gy, lab, tick_pt, ha="left", va="center")
            widest = max(widest, canvas.text_size(lab, tick_pt)[0])
        if r.ylabel:
            lx = x1 + tick_len + pad + widest + pt(4.0)
            canvas.text(lx, (y0 + y1) / 2, r.ylabel, tick_pt, ha="left", rotate=True)
    if p.legend:
        _draw_legend(canvas, p, legend_pt)


def _draw_legend(canvas: Canvas, p: Panel, size: float) -> None:
    """matplotlib's frameless legend at 'upper right' (handles 2 em long, 0.8 em pad)."""
    fs = pt(size)
    inset = (0.5 + 0.4) * fs
    widths = [canvas.text_size(e.label, size)[0] for e in p.legend]
    handle = 2.0 * fs
    text_pad = 0.8 * fs
    right = p.box[2] - inset
    left = right - max(widths) - text_pad - handle
    row_h = 1.164 * fs  # DejaVu Sans line height
    y = p.box[1] + inset
    for e in p.legend:
        cy = y + row_h / 2
        if isinstance(e, Fill):
            h = 0.7 * fs
            patch = np.ones((int(round(h)), int(round(handle))), np.float32)
            canvas._composite(patch, int(round(left)), int(round(cy - h / 2)), e.color, e.alpha)
        else:
            line = Series(np.array([left, left + handle]), np.array([cy, cy]), e.color,
                          width=e.width, dashed=e.dashed)  # fmt: skip
            box = (left - 4, cy - 6, left + handle + 4, cy + 6)
            ident = _Mapper(box, (box[0], box[2]), (box[3], box[1]))
            _draw_series(canvas, ident, box, line)
            if e.dots:
                dot = Series(np.array([left + handle / 2]), np.array([cy]), e.color,
                             dots=True, dot_size=e.dot_size)  # fmt: skip
                _draw_series(canvas, ident, box, dot)
        canvas.text(left + handle + text_pad, cy, e.label, size, ha="left", va="center")
        y += row_h + 0.5 * fs


__all__ = ["Canvas", "Fill", "Panel", "Series", "draw_panel", "tick_labels", "ticks"]
