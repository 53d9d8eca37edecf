"""The mouth interior shown between parted lips: real (from frames) or synthesised.

The interior is modelled as two layers hanging from the lips, as the teeth hang
from the skull and the jaw: an *upper strip* that follows the upper inner lip
(upper teeth) and a *lower strip* that follows the lower inner lip (lower teeth,
tongue), over a dark cavity. Each strip is a small RGBA texture in head units:
columns span ``x`` in centimetres across the mouth, rows the depth in
centimetres away from the lip line (alpha 0 where the strip shows only cavity).
When the jaw opens, each strip moves with its lip, so teeth keep their size and
more cavity appears between them, instead of the source interior stretching.

Textures come from a frame with parted lips (:func:`texture_from_frame`: the
portrait itself when it shows teeth, or frames of the same video in ``dub``)
or are painted from the face's colours (:func:`synthetic_texture`).
:func:`render_interior` draws a texture inside the deformed inner-lip polygon
with an antialiased edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarlab.engines.warp import topology as tp
from avatarlab.face import topology as T

STRIP_COLS = 96
STRIP_ROWS = 40
STRIP_DEPTH_CM = 1.2
"""Depth (cm from the lip line) a strip covers."""
TEETH_HIDE_CM = 0.18
"""How far the lips slide over the teeth when ``teeth = 0`` (rounded vowels, /f/)."""
LIP_SHADOW_CM = 0.08
"""Width of the shadow the lips cast onto the teeth."""
_SUBPIXEL_BITS = 4
_SUPERSAMPLE = 4
_ERODE_KERNEL = np.ones((2, 2), np.uint8)
_CURVE_SUBDIVISIONS = 4
EDGE_SOFTNESS_PX = 0.6
"""Blur (sigma, output pixels at crop resolution) of the interior's edge: lips are not cut out."""

_UPPER_CURVE = (tp.MOUTH_INNER_CORNERS[0], *tp.MOUTH_UPPER, tp.MOUTH_INNER_CORNERS[1])
_LOWER_CURVE = (tp.MOUTH_INNER_CORNERS[0], *tp.MOUTH_LOWER, tp.MOUTH_INNER_CORNERS[1])
_INNER_LOOP = (*_UPPER_CURVE, *reversed(tp.MOUTH_LOWER))


def catmull_rom(points: np.ndarray, subdivisions: int = _CURVE_SUBDIVISIONS) -> np.ndarray:
    """Smooth open curve through ``(K, 2)`` points: ``((K - 1) * subdivisions + 1, 2)``."""
    p = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0.0, 1.0, subdivisions, endpoint=False)[:, None, None]
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]
    seg = 0.5 * (
        2.0 * p1
        + (p2 - p0) * t
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * t**2
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * t**3
    )  # (subdivisions, K - 1, 2)
    return np.vstack([seg.transpose(1, 0, 2).reshape(-1, 2), points[-1:]])


@dataclass(frozen=True)
class MouthGeometry:
    """Where the mouth is in a frame, in a mouth-aligned frame measured in centimetres.

    ``centre`` (2,) pixels between the inner corners; ``ex``/``ey`` unit axes
    (corner to corner, and down); ``scale`` pixels per centimetre; ``upper`` and
    ``lower`` ``(41, 2)`` smoothed inner-lip curves in cm (x ascending, y down);
    ``polygon`` ``(80, 2)`` smoothed inner-lip loop in pixels.
    """

    centre: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    scale: float
    upper: np.ndarray
    lower: np.ndarray
    polygon: np.ndarray

    @staticmethod
    def from_points(points: np.ndarray, scale: float) -> MouthGeometry:
        """From ``(468+, 2)`` pixel points and the face's pixels per centimetre."""
        pts = np.asarray(points, dtype=np.float64)[:, :2]
        a, b = pts[tp.MOUTH_INNER_CORNERS[0]], pts[tp.MOUTH_INNER_CORNERS[1]]
        ex = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
        ey = np.array([-ex[1], ex[0]])
        centre = 0.5 * (a + b)

        upper, lower = catmull_rom(pts[list(_UPPER_CURVE)]), catmull_rom(pts[list(_LOWER_CURVE)])

        def local(curve: np.ndarray) -> np.ndarray:
            rel = curve - centre
            out = np.stack([rel @ ex, rel @ ey], axis=1) / scale
            out[:, 0] = np.maximum.accumulate(out[:, 0])
            return out

        polygon = np.vstack([upper, lower[-2:0:-1]])
        return MouthGeometry(centre, ex, ey, float(scale), local(upper), local(lower), polygon)

    def gap(self) -> float:
        """Inner-lip opening at the centre of the mouth, cm."""
        return float(
            np.interp(0.0, self.lower[:, 0], self.lower[:, 1])
            - np.interp(0.0, self.upper[:, 0], self.upper[:, 1])
        )

    def half_width(self) -> float:
        """Half the inner-corner distance, cm."""
        return 0.5 * float(self.upper[-1, 0] - self.upper[0, 0])


@dataclass(frozen=True)
class MouthTexture:
    """Interior layers: ``upper``/``lower`` ``(STRIP_ROWS, STRIP_COLS, 4)`` float32 RGBA (0-255 RGB).

    Columns span ``[-half_width, half_width]`` cm; rows span ``[0, STRIP_DEPTH_CM]``.
    ``cavity``: ``(3,)`` RGB of the dark mouth cavity; ``gap``: the opening (cm) of
    the frame it came from (``inf`` for a synthetic texture, which is complete).
    """

    upper: np.ndarray
    lower: np.ndarray
    cavity: np.ndarray
    half_width: float
    gap: float


def _strip_grid(half_width: float) -> tuple[np.ndarray, np.ndarray]:
    xs = np.linspace(-half_width, half_width, STRIP_COLS)
    depth = np.linspace(0.0, STRIP_DEPTH_CM, STRIP_ROWS)
    grid_x, grid_depth = np.meshgrid(xs, depth)
    return grid_x, grid_depth


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB values (last axis)."""
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def texture_from_frame(
    frame: np.ndarray, geometry: MouthGeometry, cavity: np.ndarray
) -> MouthTexture:
    """Cut the interior seen between the lips of ``frame`` into upper and lower strips.

    Each strip holds what lies within half the opening of its lip; the rest is
    transparent (cavity). ``cavity``: RGB to show where neither strip reaches.
    """
    g = geometry
    hw = g.half_width()
    xs, depth = _strip_grid(hw)
    up = np.interp(xs, g.upper[:, 0], g.upper[:, 1])
    low = np.interp(xs, g.lower[:, 0], g.lower[:, 1])
    half_gap = 0.5 * np.maximum(low - up, 0.0)
    px_cm = 1.0 / g.scale
    strips = []
    for lip, sign in ((up, 1.0), (low, -1.0)):
        y = lip + sign * depth
        pix = g.centre + g.scale * (xs[..., None] * g.ex + y[..., None] * g.ey)
        rgb = cv2.remap(
            frame,
            pix[..., 0].astype(np.float32),
            pix[..., 1].astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        alpha = _smoothstep((half_gap - depth) / (2.0 * px_cm) + 0.5).astype(np.float32)
        strips.append(np.dstack([rgb, alpha]))
    return MouthTexture(strips[0], strips[1], np.asarray(cavity, np.float32), hw, g.gap())


@dataclass(frozen=True)
class FaceColours:
    """Colours sampled from the face (RGB 0-255 float): skin, lips, and derived teeth/cavity."""

    skin: np.ndarray
    lips: np.ndarray

    @staticmethod
    def sample(frame: np.ndarray, points: np.ndarray) -> FaceColours:
        """Median colours of the lips (between outer and inner contour) and of the cheeks."""
        pts = np.asarray(points, dtype=np.float64)[:, :2]
        outer = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(outer, [np.round(pts[list(T.LIPS_OUTER)]).astype(np.int32)], (1,))
        cv2.fillPoly(outer, [np.round(pts[list(T.LIPS_INNER)]).astype(np.int32)], (0,))
        lips = np.median(frame[outer > 0], axis=0) if outer.any() else np.array([150.0, 80, 80])
        cheeks = pts[[50, 280, 205, 425]]  # mid-cheek points
        r = max(1, int(0.02 * np.linalg.norm(pts[234] - pts[454])))
        samples = [
            frame[max(int(y) - r, 0) : int(y) + r + 1, max(int(x) - r, 0) : int(x) + r + 1].reshape(
                -1, 3
            )
            for x, y in cheeks
        ]
        skin = np.median(np.vstack(samples), axis=0)
        return FaceColours(np.asarray(skin, np.float32), np.asarray(lips, np.float32))

    @property
    def teeth(self) -> np.ndarray:
        """Off-white with a trace of the skin's hue, as bright as the lighting allows."""
        level = float(np.clip(luminance(self.skin) * 0.8 + 35.0, 90.0, 215.0))
        hue = self.skin / max(float(luminance(self.skin)), 1.0)
        return (level * (0.88 * np.array([1.0, 0.98, 0.92]) + 0.12 * hue)).astype(np.float32)

    @property
    def cavity(self) -> np.ndarray:
        return (0.34 * self.lips * np.array([1.0, 0.8, 0.8]) + np.array([12.0, 2.0, 2.0])).astype(
            np.float32
        )

    @property
    def tongue(self) -> np.ndarray:
        return (0.75 * self.lips + np.array([18.0, 0.0, 2.0])).astype(np.float32)


#: Tooth boundaries as angles around the dental arch (central incisor first).
_UPPER_ARCH = (2.4, (0.0, 0.36, 0.62, 0.90, 1.15, 1.38), (0.50, 0.46, 0.48, 0.42, 0.40))
_LOWER_ARCH = (2.2, (0.0, 0.26, 0.52, 0.80, 1.06, 1.30), (0.24, 0.23, 0.25, 0.22, 0.20))


def _teeth_layer(
    xs: np.ndarray, depth: np.ndarray, arch: tuple, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of one row of teeth seen from the front (cm grids ``xs``, ``depth``)."""
    radius, bounds, heights = arch
    phi = np.arcsin(np.clip(np.abs(xs) / radius, 0.0, 1.0))
    k = np.clip(np.searchsorted(np.asarray(bounds), phi) - 1, 0, len(heights) - 1)
    lo, hi = np.asarray(bounds)[k], np.asarray(bounds)[k + 1]
    within = np.clip((phi - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)  # 0..1 across a tooth
    edge = 1.0 - 0.12 * (2.0 * within - 1.0) ** 4  # slightly rounded incisal edges
    height = np.asarray(heights)[k] * edge * (phi < bounds[-1])
    alpha = _smoothstep((height - depth) / 0.08 + 0.5)
    width = (hi - lo) * radius
    gaps = 1.0 - 0.12 * np.exp(-(((within * width) / 0.05) ** 2))
    gaps *= 1.0 - 0.12 * np.exp(-((((1.0 - within) * width) / 0.05) ** 2))
    depth_shade = 0.9 + 0.1 * np.clip(1.0 - depth / 0.5, 0.0, 1.0)
    shade = np.cos(phi) ** 1.5 * gaps * depth_shade
    return colour * shade[..., None], np.asarray(alpha)


def synthetic_texture(colours: FaceColours, half_width: float) -> MouthTexture:
    """Paint upper teeth, lower teeth and a tongue in the face's colours."""
    xs, depth = _strip_grid(max(half_width, 1.0))
    upper_rgb, upper_a = _teeth_layer(xs, depth, _UPPER_ARCH, colours.teeth)
    lower_rgb, lower_a = _teeth_layer(xs, depth, _LOWER_ARCH, 0.72 * colours.teeth)
    # Tongue: a rounded mass behind the lower teeth, darker further back.
    tongue_depth = depth - 0.25
    width = 1.55 * np.sqrt(np.clip(1.0 - (tongue_depth / 0.7) ** 2, 0.0, 1.0))
    tongue_a = _smoothstep((width - np.abs(xs)) / 0.15) * (tongue_depth > -0.25)
    tongue_rgb = colours.tongue * (1.0 - 0.45 * np.clip(tongue_depth / 0.7, 0.0, 1.0))[..., None]
    lower_rgb = lower_a[..., None] * lower_rgb + (1.0 - lower_a[..., None]) * tongue_rgb
    lower_a = lower_a + (1.0 - lower_a) * 0.85 * tongue_a
    upper = np.dstack([upper_rgb, upper_a]).astype(np.float32)
    lower = np.dstack([lower_rgb, lower_a]).astype(np.float32)
    return MouthTexture(upper, lower, colours.cavity, float(xs.max()), float("inf"))


def polygon_mask(
    polygon: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Area coverage ``(h, w)`` float32 in [0, 1] of a pixel polygon in a box at ``origin``.

    Filled at ``_SUPERSAMPLE`` x resolution and box-averaged, so edges are
    antialiased. ``cv2.fillPoly`` keeps the sub-pixels on both the left and the
    right edge of each span; eroding by one sub-pixel towards the bottom-right
    removes that extra row and column, so a polygon of zero area (closed lips)
    covers nothing and areas come out right.
    """
    k = _SUPERSAMPLE
    big = np.zeros((shape[0] * k, shape[1] * k), np.uint8)
    pts = (polygon - np.asarray(origin) + 0.5) * k - 0.5
    fixed = np.round(pts * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(big, [fixed], (255,), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    inside = cv2.erode(
        big, _ERODE_KERNEL, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=(0,)
    )
    small = cv2.resize(inside, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.float32) / 255.0


def render_interior(
    out: np.ndarray,
    geometry: MouthGeometry,
    texture: MouthTexture,
    teeth: float = 1.0,
    softness: float = EDGE_SOFTNESS_PX,
) -> None:
    """Draw ``texture`` inside the inner-lip polygon of ``geometry`` into ``out`` (in place).

    ``out``: RGB uint8 frame. ``teeth`` in [0, 1]: 0 lets the lips slide over the
    teeth by ``TEETH_HIDE_CM`` (rounded vowels, /f/), 1 shows them fully.
    ``softness``: Gaussian sigma (pixels) of the edge of the interior.
    """
    g = geometry
    h, w = out.shape[:2]
    lo = np.floor(g.polygon.min(axis=0)).astype(int) - 1
    hi = np.ceil(g.polygon.max(axis=0)).astype(int) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    mask = polygon_mask(g.polygon, (x0, y0), (y1 - y0, x1 - x0))
    if softness > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), softness)
    if float(mask.max()) <= 0.0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rx, ry = xx - g.centre[0], yy - g.centre[1]
    lx = (rx * g.ex[0] + ry * g.ex[1]) / g.scale
    ly = (rx * g.ey[0] + ry * g.ey[1]) / g.scale
    up = np.interp(lx, g.upper[:, 0], g.upper[:, 1])
    low = np.interp(lx, g.lower[:, 0], g.lower[:, 1])
    d_up, d_low = ly - up, low - ly
    use_upper = d_up <= d_low
    hide = TEETH_HIDE_CM * (1.0 - float(np.clip(teeth, 0.0, 1.0)))
    depth = np.maximum(np.where(use_upper, d_up, d_low), 0.0)
    col = ((lx + texture.half_width) / (2.0 * texture.half_width) * (STRIP_COLS - 1)).astype(
        np.float32
    )
    row = ((depth + hide) / STRIP_DEPTH_CM * (STRIP_ROWS - 1)).astype(np.float32)
    texel = np.where(
        use_upper[..., None],
        cv2.remap(texture.upper, col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        cv2.remap(texture.lower, col, row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
    )
    alpha = texel[..., 3:4]
    # The cavity darkens away from the lips; the lips shade what sits right behind them.
    gap = np.maximum(low - up, 1e-3)
    middle = np.clip(np.minimum(d_up, d_low) / (0.5 * gap), 0.0, 1.0)
    cavity = texture.cavity * (1.0 - 0.45 * middle)[..., None]
    rgb = alpha * texel[..., :3] + (1.0 - alpha) * cavity
    rgb *= (0.8 + 0.2 * _smoothstep(depth / LIP_SHADOW_CM))[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    m = mask[..., None]
    out[y0:y1, x0:x1] = np.clip(roi + m * (rgb - roi) + 0.5, 0, 255).astype(np.uint8)


REAL_TEETH_MIN_GAP_CM = 0.5
"""A source must part its lips at least this much for its own interior to be reused."""


def cavity_colour(texture: MouthTexture, fallback: np.ndarray) -> np.ndarray:
    """The darkest tenth of a real texture's visible interior (else ``fallback``)."""
    px = np.vstack([texture.upper.reshape(-1, 4), texture.lower.reshape(-1, 4)])
    px = px[px[:, 3] > 0.9, :3]
    if len(px) < 20:
        return fallback
    lum = luminance(px)
    dark = px[lum <= np.percentile(lum, 10)]
    return np.asarray(dark.mean(axis=0), np.float32)


def portrait_texture(
    image: np.ndarray, mesh: np.ndarray, scale: float, mode: str
) -> tuple[MouthTexture, str]:
    """The mouth interior for a still portrait and which kind it is (``"source"``/``"synthetic"``).

    ``mesh`` is the portrait's 478-point mesh in pixels, ``scale`` its rig's pixels per
    cm. ``mode`` ``"synthetic"`` paints one from the face's colours, ``"source"`` cuts
    the portrait's own, ``"auto"`` reuses the portrait's own only when its lips part at
    least ``REAL_TEETH_MIN_GAP_CM`` and show something bright (teeth).
    """
    colours = FaceColours.sample(image, mesh)
    geometry = MouthGeometry.from_points(mesh, scale)
    synthetic = synthetic_texture(colours, geometry.half_width())
    if mode == "synthetic":
        return synthetic, "synthetic"
    real = texture_from_frame(image, geometry, colours.cavity)
    if mode == "auto":
        shown = real.upper[..., 3] > 0.5
        bright = shown.any() and float(
            np.percentile(luminance(real.upper[..., :3][shown]), 75)
        ) > 0.55 * float(luminance(colours.skin))
        if geometry.gap() < REAL_TEETH_MIN_GAP_CM or not bright:
            return synthetic, "synthetic"
    cavity = cavity_colour(real, colours.cavity)
    return MouthTexture(real.upper, real.lower, cavity, real.half_width, real.gap), "source"
