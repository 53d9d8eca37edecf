"""Closed-eyelid layer: the upper lid drawn over the eye from the portrait's own skin.

Warping alone cannot close an eye: the visible upper lid of most people is a band
a few pixels tall (or hidden under the fold), and stretching it down over the eye
smears it and drags crease lines and lashes with it. Instead, each eye gets a
layer (:class:`LidLayer`) built once from the source image:

- the lid's colour is the skin around the eye (outside the eye and the lid band,
  without lashes and brows) spread inwards by normalised convolution, so it meets
  the surrounding skin without a seam; its grain is seeded noise scaled so the
  closed lid has the Laplacian variance (sharpness) of that skin;
- it darkens slightly towards the margin (lash shadow) and ends in a lash line of
  the portrait's own lash colour (darkest pixels along the upper lid), thickest in
  the middle of the eye, with the portrait's own lashes mirrored below it and a
  soft fringe of lash roots;
- at closure ``c`` the margin sits ``c`` of the way from the landmarked upper lid to
  the meeting line (:data:`MEET` of the way to the lower lid, which rises the
  rest); the layer covers from the first mesh ring above the lid (hiding the
  portrait's own lashes, :data:`LID_TOP`) down to it, and the shading is attached
  to the margin, so the lid slides down as a whole. Below the margin the eye is
  untouched: a half-closed lid covers the iris instead of squashing it.

Both eyes use the same closure. Coordinates are per eye: ``x`` along the corner
to corner axis, ``y`` across it towards the lower lid, in source pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarlab.engines.warp import topology as tp

LID_TOP = 1.0
"""The layer starts this share of the way from the landmarked upper lid to the first
ring above it (trackers put the lid margin inside the eye, below the lashes)."""
TOP_FEATHER = 0.6
"""Blend width above the layer's top, as a share of the lid-to-ring distance."""
SMOOTH_ALONG = 0.15
"""Smoothing of the lid colours along the eye (share of its width)."""
GRAIN_SIGMA = 0.6
"""Blur (pixels) of the white noise that makes the lid's skin grain."""
GRAIN_SEED = 0x11D
GRAIN_FLOOR = 0.25
"""Least share of the skin's Laplacian variance given to the grain (a lid is never flat)."""
COLOUR_SIGMA = 0.12
"""Reach (share of eye width) of the surrounding skin colour spread over the lid."""
COLOUR_SPREAD = 3.0
"""A second, wider spread (this many times ``COLOUR_SIGMA``) fills what the first misses."""
SKIN_REACH = 0.6
"""The lid's grain is as sharp as the skin within this many eye widths above and below
the eye centre (and one width to each side), outside the layer."""
DARK_SHARE = 0.7
"""Pixels darker than this share of the surround's median brightness (lashes, brows)
do not colour the lid."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
LASH_WIDTH = 0.05
"""Lash-line thickness in the middle of the eye, as a share of the eye width."""
LASH_SHADOW = (0.86, 0.35)
"""Brightness at the lid margin and the share of the lid height over which it recovers."""
MEET = 0.92
"""The lids meet this share of the way from the upper to the lower lid (the lower lid
rises the rest, in the lower lid's own skin colour)."""
OVERLAP = 0.02
"""The layer reaches this share of the eye width below the lower lid."""
SIDE_FEATHER = 0.1
"""Blend width across the eye corners (share of the eye width)."""
HAIR_SCALE = 0.7
"""Length of the closed lid's hanging lashes relative to the open eye's (foreshortened)."""
HAIR_OPACITY = 0.9
LASH_FRINGE = (0.6, 0.05)
"""Opacity and depth (share of eye width) of the dark fringe of lash roots below the margin."""
FADE_IN = 0.15
"""Closure over which the layer fades in (at a few percent closure nothing changes)."""


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _curve(local: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Height ``y`` of the polyline ``local`` ``(N, 2)`` at abscissae ``xs`` (clamped ends)."""
    order = np.argsort(local[:, 0])
    return np.interp(xs, local[order, 0], local[order, 1])


@dataclass
class _Eye:
    """One eye's precomputed layer over an image box (``y0, y1, x0, x1``).

    Per box pixel: its texture column ``col``, its distance ``above`` the open lid
    margin and the margin's ``travel`` to the closed one (pixels, along the eye's
    down axis), the ``cover`` weight (top feather, eye corners) and the skin
    ``colour`` there, and its skin ``grain`` (luma; ``amp`` is the colour of one
    unit). ``lid`` holds, per texture column and distance above the margin (row
    ``below + d`` for distance ``d``; negative below the margin), the shading
    factor, the lash line's opacity and that of the lashes hanging below the margin
    (both of colour ``lash``).
    """

    box: tuple[int, int, int, int]
    col: np.ndarray  # (h, w) float32
    above: np.ndarray  # (h, w) float32
    travel: np.ndarray  # (h, w) float32
    low_gap: np.ndarray  # (h, w) float32 distance above the lower lid
    low_travel: np.ndarray  # (h, w) float32 how far the lower lid rises to meet the upper
    bottom: np.ndarray  # (h, w) float32 distance above the layer's bottom edge
    cover: np.ndarray  # (h, w) float32
    inside: np.ndarray  # (h, w) float32: the ramp across the eye corners alone
    colour: np.ndarray  # (h, w, 3) float32
    lid: np.ndarray  # (rows, cols, 3) float32: shade, lash line, hanging lashes
    below: int
    grain: np.ndarray  # (h, w) float32 luma grain
    amp: np.ndarray  # (3,) float32 colour of one unit of grain
    lash: np.ndarray  # (3,) float32

    def draw(self, out: np.ndarray, closure: float) -> None:
        y0, y1, x0, x1 = self.box
        mixed = self.compose(out[y0:y1, x0:x1].astype(np.float32), closure)
        out[y0:y1, x0:x1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)

    def compose(self, patch: np.ndarray, closure: float) -> np.ndarray:
        """The box ``patch`` (float RGB) with the lid drawn over it at ``closure``."""
        above = self.above + closure * self.travel
        fade = float(_smoothstep(np.asarray(closure / FADE_IN)))
        upper = np.clip(above + 0.5, 0.0, 1.0) * self.cover
        lower = np.clip(closure * self.low_travel - self.low_gap + 0.5, 0.0, 1.0)
        lower *= np.clip(self.bottom + 0.5, 0.0, 1.0) * self.inside
        alpha = np.maximum(upper, lower) * fade
        m = cv2.remap(
            self.lid,
            self.col,
            np.maximum(above + self.below, 0.0),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        skin = self.colour * m[..., :1] + self.grain[..., None] * self.amp
        lid = skin + m[..., 1:2] * (self.lash - skin)
        mixed = patch + alpha[..., None] * (lid - patch)
        hair = (m[..., 2] * self.inside * fade)[..., None]
        return mixed + hair * (self.lash - mixed)


class LidLayer:
    """Both upper lids of one source face, ready to draw at any closure.

    ``LidLayer(image, points)``: ``image`` the source RGB uint8 ``(H, W, 3)``,
    ``points`` its ``(>= 468, 2)`` pixel mesh. :meth:`draw` paints the lids into a
    frame of the same size at closure ``0`` (open, nothing drawn) .. ``1`` (closed).
    """

    def __init__(self, image: np.ndarray, points: np.ndarray) -> None:
        pts = np.asarray(points, np.float64)[:, :2]
        self.eyes = [
            eye
            for eye in (
                _build(
                    image,
                    pts,
                    tp.RIGHT_LID_UPPER,
                    tp.RIGHT_LID_LOWER,
                    tp.RIGHT_EYE_CORNERS,
                    tp.RIGHT_LID_ABOVE,
                ),
                _build(
                    image,
                    pts,
                    tp.LEFT_LID_UPPER,
                    tp.LEFT_LID_LOWER,
                    tp.LEFT_EYE_CORNERS,
                    tp.LEFT_LID_ABOVE,
                ),
            )
            if eye is not None
        ]

    def draw(self, out: np.ndarray, closure: float) -> None:
        """Paint both lids into ``out`` (RGB uint8, in place) at ``closure`` in [0, 1]."""
        c = float(np.clip(closure, 0.0, 1.0))
        if c <= 0.0:
            return
        for eye in self.eyes:
            eye.draw(out, c)


def _build(
    image: np.ndarray,
    pts: np.ndarray,
    upper: tuple[int, ...],
    lower: tuple[int, ...],
    corners: tuple[int, int],
    ring1: tuple[int, ...],
) -> _Eye | None:
    a, b = pts[corners[0]], pts[corners[1]]
    width = float(np.linalg.norm(b - a))
    if width < 4.0:
        return None
    e = (b - a) / width
    n = np.array([-e[1], e[0]])
    if n @ (pts[list(lower)].mean(0) - pts[list(upper)].mean(0)) < 0:
        n = -n
    frame = np.stack([e, n])  # rows: local x, y axes

    def local(idx: tuple[int, ...]) -> np.ndarray:
        return (pts[list(idx)] - a) @ frame.T

    ends = np.array([[0.0, 0.0], [width, 0.0]])
    up_l = np.vstack([ends[:1], local(upper), ends[1:]])
    low_l = np.vstack([ends[:1], local(lower), ends[1:]])

    # Texture columns: one per pixel along the eye axis.
    cols = np.arange(int(np.ceil(width)) + 1, dtype=np.float64)
    across = np.clip(cols / width, 0.0, 1.0)
    y_up = _curve(up_l, cols)
    y_r1 = np.minimum(_curve(local(ring1), cols), y_up)
    rise = np.maximum(y_up - y_r1, 1.0)
    y_top = y_up - LID_TOP * rise
    feather = np.maximum(TOP_FEATHER * rise, 1.0)
    y_low = _curve(low_l, cols)
    y_meet = y_up + MEET * (y_low - y_up)
    y_closed = y_low + OVERLAP * width  # the bottom of the layer
    height = np.maximum(y_meet - y_top, 1.0)
    source = image.astype(np.float32)

    # Per (column, distance above the margin): lash shadow, grain, lash line.
    below = int(np.ceil(HAIR_SCALE * rise.max())) + 1
    rows = below + int(np.ceil(height.max() + feather.max())) + 2
    r = np.arange(rows, dtype=np.float64)[:, None] - below
    shade = LASH_SHADOW[0] + (1.0 - LASH_SHADOW[0]) * _smoothstep(
        r / np.maximum(LASH_SHADOW[1] * height[None, :], 1.0)
    )
    shade[r[:, 0] < 0] = 1.0  # below the margin: the lower lid's skin
    thick = np.maximum(LASH_WIDTH * width * (0.3 + 0.7 * np.sin(np.pi * across)), 0.8)
    lash_alpha = np.clip(thick[None, :] - r + 0.5, 0.0, 1.0) * (r >= 0)

    # Lash colour: the darkest pixels between the landmarked lid and the layer's top.
    keep = slice(int(0.1 * len(cols)), max(int(0.9 * len(cols)), 1))
    band = _sample(source, a, e, n, cols, y_top, y_up, 6)[:, keep].reshape(-1, 3)
    lum = band @ LUMA
    lash = band[lum <= np.quantile(lum, 0.15)].mean(0).astype(np.float32)

    # The box of image pixels the layer can touch.
    top_most = float((y_top - feather).min())
    side_px = max(1.0, SIDE_FEATHER * width)
    corners_l = np.array(
        [
            [-side_px, top_most],
            [width + side_px, top_most],
            [-side_px, y_closed.max() + below],
            [width + side_px, y_closed.max() + below],
        ]
    )
    corners_img = a + corners_l @ frame
    h_img, w_img = image.shape[:2]
    x0 = int(np.clip(np.floor(corners_img[:, 0].min()) - 1, 0, w_img))
    x1 = int(np.clip(np.ceil(corners_img[:, 0].max()) + 2, 0, w_img))
    y0 = int(np.clip(np.floor(corners_img[:, 1].min()) - 1, 0, h_img))
    y1 = int(np.clip(np.ceil(corners_img[:, 1].max()) + 2, 0, h_img))
    if x1 <= x0 or y1 <= y0:
        return None

    # Skin colour under the lid: the surrounding skin (outside the eye and the lid band,
    # without dark lashes and brows) spread inwards by normalised convolution.
    sigma = max(1.0, COLOUR_SIGMA * width)
    pad = int(np.ceil(max(3.0 * COLOUR_SPREAD * sigma, SKIN_REACH * width)))
    X0, X1 = max(x0 - pad, 0), min(x1 + pad, w_img)
    Y0, Y1 = max(y0 - pad, 0), min(y1 + pad, h_img)
    gy, gx = np.mgrid[Y0:Y1, X0:X1].astype(np.float64)
    rel = np.stack([gx - a[0], gy - a[1]], axis=-1)
    lx, ly = rel @ e, rel @ n
    flat = np.clip(lx, 0.0, width).ravel()

    def at(values: np.ndarray) -> np.ndarray:
        return np.interp(flat, cols, values).reshape(lx.shape)

    top, fea = at(y_top), at(feather)
    reach = max(1.0, SIDE_FEATHER * width) + 1.0
    hole = (lx > -reach) & (lx < width + reach) & (ly > top - fea - 1.0)
    hole &= ly < at(y_closed) + below
    region = source[Y0:Y1, X0:X1]
    luma = region @ LUMA
    weight = (~hole).astype(np.float32)
    if weight.sum() > 0:
        weight *= luma >= DARK_SHARE * float(np.median(luma[weight > 0]))
    num = np.zeros_like(region)
    den = np.zeros_like(weight)
    for s_, k in ((sigma, 1.0), (COLOUR_SPREAD * sigma, 0.05)):
        num += k * cv2.GaussianBlur(region * weight[..., None], (0, 0), s_)
        den += k * cv2.GaussianBlur(weight, (0, 0), s_)
    colour = num / np.maximum(den, 1e-6)[..., None]

    # Hanging lashes: the portrait's own lashes above the open margin, mirrored below
    # the closed one and foreshortened; opaque where they are as dark as the lashes.
    skin_luma = float(np.median(luma[weight > 0])) if weight.sum() > 0 else float(luma.mean())
    lash_luma = float(lash @ LUMA)
    d = np.maximum(-r, 0.0) / HAIR_SCALE
    ys = y_up[None, :] - d
    xy = a + cols[None, :, None] * e + ys[..., None] * n
    hair_src = cv2.remap(
        source,
        xy[..., 0].astype(np.float32),
        xy[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    dark = np.clip((skin_luma - hair_src @ LUMA) / max(skin_luma - lash_luma, 1.0), 0.0, 1.0)
    hair = HAIR_OPACITY * dark * (r < 0) * np.sqrt(np.clip(1.0 - d / rise[None, :], 0.0, 1.0))
    # Lash roots and their shadow: a soft dark fringe just below the margin.
    fringe = LASH_FRINGE[0] * (1.0 - _smoothstep(-r / max(LASH_FRINGE[1] * width, 1.0)))
    hair = np.maximum(hair, fringe * (r < 0) * np.sin(np.pi * across)[None, :])
    lid = np.stack([shade, lash_alpha, hair], axis=-1).astype(np.float32)

    inner = (slice(y0 - Y0, y1 - Y0), slice(x0 - X0, x1 - X0))
    lx_b, ly_b = lx[inner], ly[inner]
    side = max(1.0, SIDE_FEATHER * width)
    inside = _smoothstep((lx_b + side) / (2 * side)) * _smoothstep(
        (width + side - lx_b) / (2 * side)
    )
    cover = _smoothstep((ly_b - (top[inner] - fea[inner])) / fea[inner]) * inside
    y_open = at(y_up)[inner]
    noise = cv2.GaussianBlur(
        np.random.default_rng(GRAIN_SEED).standard_normal(lx_b.shape).astype(np.float32),
        (0, 0),
        GRAIN_SIGMA,
    )
    # Even out the noise's local contrast, so any patch of the lid is about as sharp.
    energy = cv2.GaussianBlur(cv2.Laplacian(noise, cv2.CV_32F) ** 2, (0, 0), 2.0)
    noise /= np.sqrt(energy / float(energy.mean()) + 1e-6)
    eye = _Eye(
        box=(y0, y1, x0, x1),
        col=np.clip(lx_b, 0.0, cols[-1]).astype(np.float32),
        above=(y_open - ly_b).astype(np.float32),
        travel=(at(y_meet)[inner] - y_open).astype(np.float32),
        low_gap=(at(y_low)[inner] - ly_b).astype(np.float32),
        low_travel=(at(y_low - y_meet)[inner]).astype(np.float32),
        bottom=(at(y_closed)[inner] - ly_b).astype(np.float32),
        cover=cover.astype(np.float32),
        inside=inside.astype(np.float32),
        colour=colour[inner].astype(np.float32),
        lid=lid,
        below=below,
        grain=np.zeros_like(noise),
        amp=np.ones(3, np.float32),
        lash=lash,
    )
    # Grain: as sharp as the skin around the eye (its Laplacian variance, outside what the
    # closed lid changes and without lashes and brows), with the skin's colour balance.
    # The closed lid's own shading already has some Laplacian variance; the grain adds
    # the rest, so the closed lid (away from the lash line) is as sharp as the skin.
    closed = eye.compose(region[inner], 1.0)
    changed = np.zeros(luma.shape, np.uint8)
    changed[inner] = np.abs(closed - region[inner]).max(-1) > 0.5
    centre = 0.5 * (a + b)
    near = (np.abs(gx - centre[0]) < width) & (np.abs(gy - centre[1]) < SKIN_REACH * width)
    skin = near & ~cv2.dilate(changed, np.ones((5, 5), np.uint8)).astype(bool)
    if skin.any():
        skin &= luma >= DARK_SHARE * float(np.median(luma[skin]))
    skin = cv2.erode(skin.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    skin[[0, -1], :] = False
    skin[:, [0, -1]] = False
    if skin.sum() > 8:
        target = float(cv2.Laplacian(luma, cv2.CV_32F)[skin].var())
        skin_rgb = region[skin].mean(0)
    else:
        target, skin_rgb = 0.0, region.reshape(-1, 3).mean(0)
    eye.amp = (skin_rgb / max(float(skin_rgb @ LUMA), 1.0)).astype(np.float32)
    plain = closed @ LUMA
    interior = (eye.above + eye.travel > thick.max() + 1.5) & (eye.cover >= 0.999)
    interior = cv2.erode(interior.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    structure = float(cv2.Laplacian(plain, cv2.CV_32F)[interior].var()) if interior.any() else 0.0
    grain_var = max(target - structure, GRAIN_FLOOR * target)
    noise_lap = cv2.Laplacian(noise, cv2.CV_32F)
    noise_var = float(noise_lap[interior].var() if interior.sum() > 8 else noise_lap.var())
    eye.grain = noise * np.float32(np.sqrt(grain_var / max(noise_var, 1e-9)))
    return eye


def _sample(
    source: np.ndarray,
    a: np.ndarray,
    e: np.ndarray,
    n: np.ndarray,
    cols: np.ndarray,
    y_from: np.ndarray,
    y_to: np.ndarray,
    count: int,
) -> np.ndarray:
    """``(count, len(cols), 3)`` source colours on ``count`` rows from ``y_from`` to ``y_to``."""
    t = np.linspace(0.0, 1.0, count)[:, None]
    ys = y_from[None, :] + t * (y_to - y_from)[None, :]
    xy = a + cols[None, :, None] * e + ys[..., None] * n
    return cv2.remap(
        source,
        xy[..., 0].astype(np.float32),
        xy[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
