"""Contact sheet of cross-reenactment: every shared portrait driven by expressions_silent.mp4.

Top row: driving frames; each further row: one portrait (the source in the first
column) at those frames, cropped square around its face.

    .venv/bin/python scripts/reenact_sheet.py            # -> docs/reenact_sheet.png
    .venv/bin/python scripts/reenact_sheet.py --driving hdtf_aoc_8s.mp4 \
        --frames 0 40 60 84 120 160 -o docs/reenact_talk_sheet.png   # a talking driver
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import cv2
import numpy as np

from avatarlab.engines.reenact import MotionDriver
from avatarlab.engines.reenact.engine import ReenactEngine
from avatarlab.errors import NoFaceError
from avatarlab.face import face_mesh
from avatarlab.media import iter_frames, read_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PICKS = (0, 14, 24, 40, 52, 66)
CELL = 176


def square(frame: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """``CELL`` x ``CELL`` crop centred on the face, twice its width."""
    pts = mesh[:, :2]
    cx, cy = pts.mean(0)
    side = 2.0 * float(np.ptp(pts[:, 0]))
    m = np.float32(
        [
            [CELL / side, 0, CELL / 2 - cx * CELL / side],
            [0, CELL / side, CELL / 2 - cy * CELL / side],
        ]
    )
    return cv2.warpAffine(frame, m, (CELL, CELL), borderMode=cv2.BORDER_CONSTANT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "reenact_sheet.png")
    parser.add_argument(
        "--driving", default="expressions_silent.mp4", help="a clip of ../shared/data/video"
    )
    parser.add_argument("--frames", type=int, nargs="+", default=list(PICKS))
    args = parser.parse_args()
    picks = tuple(args.frames)
    clip = DATA / "video" / args.driving
    driving = [f for f, _ in itertools.islice(iter_frames(clip), max(picks) + 1)]
    drive_mesh = face_mesh(driving[0])
    rows = [
        np.hstack(
            [np.zeros((CELL, CELL, 3), np.uint8)] + [square(driving[k], drive_mesh) for k in picks]
        )
    ]
    engine = ReenactEngine()
    for path in sorted((DATA / "image").iterdir()):
        image = read_image(path)
        try:
            avatar = engine.prepare(image)
        except NoFaceError as err:
            print(f"{path.name}: skipped ({err})")
            continue
        mesh = avatar.faces[0].geometry.mesh
        frames = list(engine.reenact(avatar, MotionDriver(live=iter(driving))))
        rows.append(np.hstack([square(image, mesh)] + [square(frames[k], mesh) for k in picks]))
        print(f"{path.name}: rendered {len(frames)} frames")
    sheet = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
