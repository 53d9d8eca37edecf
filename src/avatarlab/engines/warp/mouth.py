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
GUM_LIGHTNESS = 2.3
"""Gum colour bared above painted teeth, as a multiple of the (lip-derived) cavity colour."""
GUM_EDGE_CM = 0.06
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

    def to_pixels(self, local: np.ndarray) -> np.ndarray:
        """``(..., 2)`` mouth-frame cm (x across, y down from the centre) to pixels."""
        local = np.asarray(local, np.float64)
        return self.centre + self.scale * (local[..., :1] * self.ex + local[..., 1:2] * self.ey)

    def lip_y(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower inner-lip ``y`` (cm, mouth frame) at ``x`` cm."""
        x = np.asarray(x, np.float64)
        return (
            np.interp(x, self.upper[:, 0], self.upper[:, 1]),
            np.interp(x, self.lower[:, 0], self.lower[:, 1]),
        )


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
        """Ivory: the skin's hue much desaturated, as bright as the face's lighting allows."""
        lum = max(float(luminance(self.skin)), 1.0)
        level = float(np.clip(0.85 * lum + 55.0, 100.0, 235.0))
        tint = 0.8 + 0.2 * self.skin / lum
        return np.clip(level * tint * np.array([1.0, 0.99, 0.95]), 0.0, 255.0).astype(np.float32)

    @property
    def cavity(self) -> np.ndarray:
        """The dark back of the mouth: the lips' colour in deep shadow."""
        return (0.3 * self.lips * np.array([1.0, 0.72, 0.72]) + np.array([14.0, 3.0, 3.0])).astype(
            np.float32
        )

    @property
    def tongue(self) -> np.ndarray:
        """The lips' colour, redder and a little darker."""
        return (0.8 * self.lips * np.array([1.0, 0.8, 0.85]) + np.array([22.0, 0.0, 2.0])).astype(
            np.float32
        )


@dataclass(frozen=True)
class ToothRow:
    """One jaw's front teeth seen from the front, in cm.

    ``radius``: the dental arch's radius (teeth further round the arch are
    foreshortened and darker); ``widths``: crown widths along the arch from the
    central incisor outwards; ``heights``: how far each crown shows beyond its lip
    (the rest is hidden by the lip); ``corner``: rounding radius of the crowns' free
    edge, which opens a notch of cavity between neighbouring teeth.
    """

    radius: float
    widths: tuple[float, ...]
    heights: tuple[float, ...]
    corner: float


UPPER_TEETH = ToothRow(
    2.5, (0.86, 0.66, 0.74, 0.68, 0.66, 0.9), (0.56, 0.49, 0.53, 0.45, 0.41, 0.36), 0.2
)
LOWER_TEETH = ToothRow(
    2.2, (0.54, 0.58, 0.66, 0.68, 0.7, 0.9), (0.2, 0.21, 0.24, 0.2, 0.18, 0.15), 0.12
)
"""Lower crowns show only their tips: the lower lip covers the rest."""
UPPER_CROWN_CM = 1.05
"""Upper central incisor crown height: past it, a rising upper lip bares the gum."""
LOWER_CROWN_CM = 0.9
"""Lower incisor crown height: past it, a lip pulled down bares the lower gum."""
GAP_SHADE = 0.65
"""Darkening between neighbouring teeth (0 none, 1 black): separates the crowns."""
_GAP_SIGMA_CM = 0.025
_EDGE_AA_CM = 0.04


def _teeth_layer(
    xs: np.ndarray, depth: np.ndarray, row: ToothRow, colour: np.ndarray, cavity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of one row of teeth (cm grids ``xs`` across, ``depth`` from the lip).

    Deterministic: the layout depends only on ``row``, so every frame shows the
    same teeth.
    """
    bounds = np.concatenate([[0.0], np.cumsum(row.widths)])  # arc length, cm
    arc = row.radius * np.arcsin(np.clip(np.abs(xs) / row.radius, 0.0, 1.0))
    phi = arc / row.radius
    k = np.clip(np.searchsorted(bounds, arc, side="right") - 1, 0, len(row.widths) - 1)
    lo, hi = bounds[k], bounds[k + 1]
    to_side = np.minimum(arc - lo, hi - arc)  # cm along the arch to the nearer neighbour
    within = (arc - lo) / (hi - lo)
    r = row.corner
    dent = r - np.sqrt(np.clip(r * r - np.clip(r - to_side, 0.0, r) ** 2, 0.0, None))
    height = np.asarray(row.heights)[k] - dent
    height = np.where(arc < bounds[-1], height, 0.0)
    alpha = _smoothstep((height - depth) / _EDGE_AA_CM + 0.5)
    # Interproximal shadow, wider towards the free edge (the embrasures open up).
    spread = _GAP_SIGMA_CM * (1.0 + 2.0 * np.clip(depth / np.maximum(height, 0.05), 0.0, 1.0))
    spread = np.where(arc < 0.5 * bounds[1], 0.6 * spread, spread)  # the midline is tight
    gap = np.exp(-((to_side * np.cos(phi) / spread) ** 2))
    convex = 0.9 + 0.1 * np.sin(np.pi * within)  # each crown rounds away at its sides
    edge = np.clip((height - depth) / 0.08, 0.0, 1.0)  # the free edge is thin, greyer
    shade = np.cos(phi) ** 1.3 * convex
    rgb = colour * shade[..., None]
    rgb = rgb + (1.0 - edge)[..., None] * 0.18 * (cavity - rgb)
    rgb = rgb + (GAP_SHADE * gap)[..., None] * (cavity - rgb)
    return rgb, np.asarray(alpha)


def synthetic_texture(colours: FaceColours, half_width: float) -> MouthTexture:
    """Paint upper teeth, lower teeth with a tongue behind them, in the face's colours."""
    xs, depth = _strip_grid(max(half_width, 1.0))
    cavity = colours.cavity
    upper_rgb, upper_a = _teeth_layer(xs, depth, UPPER_TEETH, colours.teeth, cavity)
    lower_rgb, lower_a = _teeth_layer(xs, depth, LOWER_TEETH, 0.85 * colours.teeth, cavity)
    # Tongue: a rounded mass behind the lower teeth, its top arched, a faint middle groove.
    top = 0.55 * np.sqrt(np.clip(1.0 - (xs / 1.8) ** 2, 0.0, 1.0))
    tongue_a = _smoothstep((top - depth) / 0.1 + 0.5)
    across = np.clip(np.abs(xs) / 1.8, 0.0, 1.0)
    up = np.clip(depth / np.maximum(top, 0.05), 0.0, 1.0)
    shade = (0.62 + 0.38 * (1.0 - across**2)) * (0.8 + 0.2 * np.sin(np.pi * up))
    shade *= 1.0 - 0.15 * np.exp(-((xs / 0.12) ** 2))
    tongue_rgb = colours.tongue * shade[..., None]
    la = lower_a[..., None]
    lower_rgb = la * lower_rgb + (1.0 - la) * tongue_rgb
    lower_a = lower_a + (1.0 - lower_a) * tongue_a
    upper = np.dstack([upper_rgb, upper_a]).astype(np.float32)
    lower = np.dstack([lower_rgb, lower_a]).astype(np.float32)
    return MouthTexture(upper, lower, cavity, float(xs.max()), float("inf"))


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
    teeth_edges: tuple[float, float] | None = None,
) -> None:
    """Draw ``texture`` inside the inner-lip polygon of ``geometry`` into ``out`` (in place).

    ``out``: RGB uint8 frame. ``teeth`` in [0, 1]: 0 lets the lips slide over the
    teeth by ``TEETH_HIDE_CM`` (rounded vowels, /f/), 1 shows them fully.
    ``softness``: Gaussian sigma (pixels) of the edge of the interior.
    ``teeth_edges``: painted textures only, mouth-frame ``y`` (cm, down from the centre)
    of the upper incisors' edge and the lower ones' tips. The strips then hang from
    those instead of the lips: the upper teeth stay with the skull and the lower with
    the jaw, so a lip raised in a smile bares more tooth (up to ``UPPER_CROWN_CM``, then
    gum) instead of carrying the teeth up and leaving a dark cavity.
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
    d_up, d_low = np.maximum(ly - up, 0.0), np.maximum(low - ly, 0.0)
    painted = not np.isfinite(texture.gap)
    if painted:
        # Painted teeth are rigid, square to the corners' axis: they hang from the lips'
        # mean of both sides (a lopsided smile must not tilt them); where the upper lip
        # rises above that line, it bares the gum.
        up_sym = 0.5 * (up + np.interp(-lx, g.upper[:, 0], g.upper[:, 1]))
        low_sym = 0.5 * (low + np.interp(-lx, g.lower[:, 0], g.lower[:, 1]))
        if teeth_edges is not None:
            # Hung from the skull and the jaw: depths above the upper strip's top (below
            # the lower's bottom) read the strips' first row, i.e. more of the same crowns.
            edge, tips = teeth_edges
            t_up = ly - (edge - UPPER_TEETH.heights[0])
            t_low = (tips + LOWER_TEETH.heights[0]) - ly
        else:
            t_up, t_low = np.maximum(ly - up_sym, 0.0), np.maximum(low_sym - ly, 0.0)
    else:
        t_up, t_low = d_up, d_low
    hide = TEETH_HIDE_CM * (1.0 - float(np.clip(teeth, 0.0, 1.0)))
    col = ((lx + texture.half_width) / (2.0 * texture.half_width) * (STRIP_COLS - 1)).astype(
        np.float32
    )
    rows = (STRIP_ROWS - 1) / STRIP_DEPTH_CM

    def strip(image: np.ndarray, depth_cm: np.ndarray) -> np.ndarray:
        rows_px = ((depth_cm + hide) * rows).astype(np.float32)
        return cv2.remap(image, col, rows_px, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    upper, lower = strip(texture.upper, t_up), strip(texture.lower, t_low)
    a_up, a_low = upper[..., 3:4], lower[..., 3:4]
    if not painted:
        # A real frame's strips each hold half of its opening: split at the middle.
        # (Painted layers overlap instead: the upper teeth sit in front, an overbite.)
        use_upper = (d_up <= d_low)[..., None]
        a_up = np.where(use_upper, a_up, 0.0)
        a_low = np.where(use_upper, 0.0, a_low)
    # The cavity darkens away from the lips and towards the corners (cheeks' shadow);
    # each lip shades what sits right behind it.
    gap = np.maximum(low - up, 1e-3)
    middle = np.clip(np.minimum(d_up, d_low) / (0.5 * gap), 0.0, 1.0)
    cavity = texture.cavity * (1.0 - 0.45 * middle)[..., None]
    up_rgb = upper[..., :3]
    if painted:
        gum = np.minimum(GUM_LIGHTNESS * texture.cavity, 255.0)
        if teeth_edges is not None:
            bared = _smoothstep((teeth_edges[0] - UPPER_CROWN_CM - ly) / GUM_EDGE_CM)[..., None]
            low_gum = teeth_edges[1] + LOWER_CROWN_CM
            low_bared = _smoothstep((ly - low_gum) / GUM_EDGE_CM)[..., None]
            lower[..., :3] += low_bared * (gum - lower[..., :3])  # strip() made it
        else:
            bared = _smoothstep((up_sym - ly) / GUM_EDGE_CM)[..., None]
        up_rgb = up_rgb + bared * (gum - up_rgb)
    up_rgb = up_rgb * (0.75 + 0.25 * _smoothstep(d_up / LIP_SHADOW_CM))[..., None]
    low_rgb = lower[..., :3] * (0.7 + 0.3 * _smoothstep(d_low / LIP_SHADOW_CM))[..., None]
    rgb = a_low * low_rgb + (1.0 - a_low) * cavity
    rgb = a_up * up_rgb + (1.0 - a_up) * rgb
    side = np.abs(lx) / max(g.half_width(), 1e-3)
    rgb *= (1.0 - 0.5 * _smoothstep((side - 0.6) / 0.4))[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    m = mask[..., None]
    out[y0:y1, x0:x1] = np.clip(roi + m * (rgb - roi) + 0.5, 0, 255).astype(np.uint8)


REAL_TEETH_MIN_GAP_CM = 0.5
"""A source must part its lips at least this much for ``auto`` to reuse its own interior."""
SOURCE_TEETH_MIN_GAP_CM = 0.15
"""``source`` reuses a portrait's own interior from this parting, if it shows teeth."""
TEETH_ZONE_CM = (0.35, 0.18)
"""Depth from the upper and the lower lip where teeth are expected in an open mouth."""
MISSING_TEETH = (0.35, 0.55)
"""A strip column whose brightest teeth-zone pixels are below the first fraction of the
painted teeth's luminance is filled with painted teeth; above the second it is kept."""


def cavity_colour(texture: MouthTexture, fallback: np.ndarray) -> np.ndarray:
    """The darkest tenth of a real texture's visible interior, never darker than
    half of ``fallback`` (the face's painted cavity), so no black slot appears."""
    px = np.vstack([texture.upper.reshape(-1, 4), texture.lower.reshape(-1, 4)])
    px = px[px[:, 3] > 0.9, :3]
    if len(px) < 20:
        return np.asarray(fallback, np.float32)
    lum = luminance(px)
    dark = px[lum <= np.percentile(lum, 10)].mean(axis=0)
    floor = 0.5 * np.asarray(fallback, np.float64)
    return np.asarray(np.maximum(dark, floor), np.float32)


def _teeth_brightness(strip: np.ndarray, zone_cm: float) -> np.ndarray:
    """``(STRIP_COLS,)`` luminance of the brightest shown pixels (80th percentile) in
    each column's first ``zone_cm`` of depth (transparent texels count as black)."""
    rows = max(2, int(round(zone_cm / STRIP_DEPTH_CM * (STRIP_ROWS - 1))) + 1)
    zone = strip[:rows]
    lum = luminance(zone[..., :3]) * (zone[..., 3] > 0.5)
    return np.asarray(np.percentile(lum, 80, axis=0))


def fill_missing_teeth(real: MouthTexture, colours: FaceColours) -> tuple[MouthTexture, float]:
    """``real`` with painted teeth blended in wherever its teeth zone is dark or empty.

    A frame borrowed from a video may show its teeth in shadow or hidden behind the
    lip; shown at another opening, that reads as a black slot. Columns are blended
    smoothly (a tooth's width) so painted and real teeth meet without a seam.
    Returns the texture and the fraction of columns (upper and lower) that were painted.
    """
    painted = synthetic_texture(colours, real.half_width)
    ref = float(luminance(colours.teeth))
    lo, hi = MISSING_TEETH[0] * ref, MISSING_TEETH[1] * ref
    strips = []
    filled = 0.0
    for strip, syn, zone in zip(
        (real.upper, real.lower), (painted.upper, painted.lower), TEETH_ZONE_CM, strict=True
    ):
        bright = _teeth_brightness(strip, zone)
        w = _smoothstep((hi - bright) / max(hi - lo, 1e-6)).astype(np.float32)
        w = cv2.GaussianBlur(w[None, :], (0, 0), 3.0, borderType=cv2.BORDER_REPLICATE)[0]
        filled += 0.5 * float(w.mean())
        wc = w[None, :, None]
        strips.append((1.0 - wc) * strip + wc * syn)
    cavity = cavity_colour(real, colours.cavity)
    return MouthTexture(strips[0], strips[1], cavity, real.half_width, real.gap), filled


def _shows_teeth(real: MouthTexture, colours: FaceColours) -> bool:
    """Whether a real interior shows something bright (teeth) below the upper lip."""
    shown = real.upper[..., 3] > 0.5
    if not shown.any():
        return False
    return float(np.percentile(luminance(real.upper[..., :3][shown]), 75)) > 0.55 * float(
        luminance(colours.skin)
    )


def portrait_texture(
    image: np.ndarray, mesh: np.ndarray, scale: float, mode: str
) -> tuple[MouthTexture, str]:
    """The mouth interior for a still portrait and which kind it is (``"source"``/``"synthetic"``).

    ``mesh`` is the portrait's 478-point mesh in pixels, ``scale`` its rig's pixels per
    cm. ``mode`` ``"synthetic"`` paints one from the face's colours; ``"auto"`` reuses
    the portrait's own only when its lips part at least ``REAL_TEETH_MIN_GAP_CM`` and
    show something bright (teeth); ``"source"`` reuses it from
    ``SOURCE_TEETH_MIN_GAP_CM`` when it shows teeth. A portrait with closed lips or no
    visible teeth falls back to painted teeth in every mode (a toothless cavity reads
    as a hole).
    """
    colours = FaceColours.sample(image, mesh)
    geometry = MouthGeometry.from_points(mesh, scale)
    synthetic = synthetic_texture(colours, geometry.half_width())
    if mode == "synthetic":
        return synthetic, "synthetic"
    real = texture_from_frame(image, geometry, colours.cavity)
    least = SOURCE_TEETH_MIN_GAP_CM if mode == "source" else REAL_TEETH_MIN_GAP_CM
    if geometry.gap() < least or not _shows_teeth(real, colours):
        return synthetic, "synthetic"
    cavity = cavity_colour(real, colours.cavity)
    return MouthTexture(real.upper, real.lower, cavity, real.half_width, real.gap), "source"
