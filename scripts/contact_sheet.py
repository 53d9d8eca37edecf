"""Write docs/contact_sheet.png and docs/strips/*.gif: what the warp engine makes of a few portraits.

One row per portrait (the bundled ``skimage.data.astronaut()`` and, when
``../shared/data/image`` exists, a photo, paintings and a cartoon): the source
face, then output frames of ``speak`` for one sentence picked to show the range
of shapes (closed lips, wide open, rounded, spread, a blink), cropped around the
face. Then one looping GIF per portrait (``docs/strips/NAME.gif``): the first
seconds of the same sentence at the default options (head motion, blinks), every
second frame, so a reader sees the motion and not only the shapes.

    python scripts/contact_sheet.py [-o docs/contact_sheet.png] [--size 200]
        [--strips docs/strips] [--strip-size 144] [--strip-seconds 3.2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from avatarlab.engines.base import Driver
from avatarlab.engines.warp import WarpEngine, WarpOptions
from avatarlab.errors import NoFaceError
from avatarlab.face import topology as T

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "image"
EXTRA = ("man_green.jpg", "woman_photo.jpg", "monalisa.png", "painting.jpg", "cartoon_boy.png")
TEXT = "Hello! Would you believe what I saw? Boom, a shooting star, and we all cheered."
COLUMNS = ("source", "closed", "open", "rounded", "spread", "mid", "blink")


def _sources() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    from avatarlab.media import read_image

    out = [("astronaut", skimage.data.astronaut())]
    for name in EXTRA:
        if (IMAGES / name).exists():
            out.append((name.rsplit(".", 1)[0], read_image(IMAGES / name)))
    return out


def _pick(mouth: np.ndarray, blink: np.ndarray) -> list[int]:
    """Frame indices for the columns after "source", from mouth params ``(N, 5)``."""
    jaw, spread, closed = mouth[:, 0], mouth[:, 1], mouth[:, 2]
    opening = jaw * (1 - closed)
    mid_target = 0.5 * float(opening.max())
    return [
        int(np.argmax(closed - 0.01 * jaw)),
        int(np.argmax(opening)),
        int(np.argmax(-spread * (opening > 0.2))),
        int(np.argmax(spread * (opening > 0.2))),
        int(np.argmin(np.abs(opening - mid_target))),
        int(np.argmax(blink)),
    ]


def _crop(frame: np.ndarray, mesh: np.ndarray, size: int) -> np.ndarray:
    pts = mesh[list(T.FACE_OVAL), :2]
    centre = pts.mean(0)
    side = 1.25 * float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))
    k = size / side
    matrix = np.array([[k, 0, size / 2 - k * centre[0]], [0, k, size / 2 - k * centre[1]]])
    return cv2.warpAffine(
        frame, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _strip(frames: list[np.ndarray], mesh: np.ndarray, size: int, fps: float, out: Path) -> None:
    """A looping GIF of ``frames`` (RGB, every second one) cropped around the source face."""
    from PIL import Image

    step = 2
    tiles = [Image.fromarray(_crop(f, mesh, size)) for f in frames[::step]]
    palette = tiles[len(tiles) // 2].quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    images = [t.quantize(palette=palette, dither=Image.Dither.NONE) for t in tiles]
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        out,
        save_all=True,
        append_images=images[1:],
        duration=round(1000 * step / fps),
        loop=0,
        optimize=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=str(ROOT / "docs" / "contact_sheet.png"))
    parser.add_argument("--size", type=int, default=200, help="tile side in pixels")
    parser.add_argument("--strips", default=str(ROOT / "docs" / "strips"), help="GIF folder")
    parser.add_argument("--strip-size", type=int, default=144, help="GIF side in pixels")
    parser.add_argument("--strip-seconds", type=float, default=3.2, help="GIF length")
    args = parser.parse_args()
    from avatarlab.engines.warp.motion import BlinkSchedule
    from avatarlab.speech import analyze_speech

    engine = WarpEngine(WarpOptions(head_motion=0.5, blink_rate=20.0, seed=2))
    speech = analyze_speech(text=TEXT, fps=engine.options.fps)
    blinks = BlinkSchedule(20.0, engine.options.fps, 2)
    blink = np.array([blinks.closure(i) for i in range(len(speech.mouth))])
    picks = _pick(speech.mouth.params, blink)
    rows = []
    for name, image in _sources():
        try:
            avatar = engine.prepare(image)
        except NoFaceError:
            print(f"{name}: no face found, skipped")
            continue
        mesh = np.asarray(avatar.faces[0].vertices)
        rendered = list(engine.render(avatar, Driver(speech=speech)))
        frames = {i: rendered[i] for i in picks}
        moving = WarpEngine(WarpOptions(seed=2))
        first = int(args.strip_seconds * moving.options.fps)
        strip = list(moving.render(moving.prepare(image), Driver(speech=speech)))[:first]
        _strip(strip, mesh, args.strip_size, moving.options.fps, Path(args.strips) / f"{name}.gif")
        tiles = [_crop(image, mesh, args.size)] + [_crop(frames[i], mesh, args.size) for i in picks]
        tiles = [_label(t, f"{name} " if c == 0 else COLUMNS[c]) for c, t in enumerate(tiles)]
        rows.append(np.hstack(tiles))
        print(f"{name}: mouth interior from {avatar.teeth_source}")
    sheet = np.vstack(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
