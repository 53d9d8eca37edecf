"""Per-frame eye diagnosis of self-reenactment: where the eye-opening r is lost.

For one clip (first frame as source, the clip as driving, as ``bench/reenact.py``),
per frame: the dlib eye opening (:func:`avatarlab.engines.reenact.scores.eye_opening`,
per eye too) of the real frame and of our output, and the same lid gaps read off the
target mesh the engine drove with (68-point lid pairs mapped to mesh points), plus the
static-mesh yaw of both (the benchmark's yaw). Output frames are kept in memory
(no encode), so figures differ slightly from the benchmark's. Real analyses are
cached under ``--cache``. Writes ``<clip>.npz`` there and prints the correlations.

    .venv/bin/python bench/reenact_eyes.py talk_b.mp4 --frames 30 40 50
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
# dlib lid pairs (37-41, 38-40, 43-47, 44-46) as mesh points (upper, lower).
MESH_PAIRS = ((160, 144), (158, 153), (385, 380), (387, 373))
MESH_CORNERS = ((33, 133), (362, 263))


def dlib_pass(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 68, 2)`` dlib points and ``(n, 3)`` static-mesh pose (NaN where no face)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reenact import analyse

    found = analyse(frames)
    return found["p68"], found["pose"]


def per_eye(p68: np.ndarray) -> np.ndarray:
    """``(n, 2)`` lid gap of the right and left eye (image left, right) over inter-ocular."""
    from avatarlab.engines.reenact import scores as S

    return np.stack([S._gaps(p68, ((37, 41), (38, 40))), S._gaps(p68, ((43, 47), (44, 46)))], -1)


def mesh_eyes(mesh: np.ndarray) -> np.ndarray:
    """``(n, 2)`` the same lid gaps read off ``(n, 478, 2)`` meshes, over the eye-centre distance."""
    m = np.asarray(mesh, np.float64)
    centres = [m[:, list(c)].mean(1) for c in MESH_CORNERS]
    iod = np.linalg.norm(centres[0] - centres[1], axis=-1)
    gap = [np.linalg.norm(m[:, a] - m[:, b], axis=-1) for a, b in MESH_PAIRS]
    return np.stack([(gap[0] + gap[1]) / 2 / iod, (gap[2] + gap[3]) / 2 / iod], -1)


def render_clip(clip: Path) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Real frames, our frames and ``(n, 478, 2)`` target meshes."""
    from avatarlab.engines.reenact import MotionDriver, ReenactEngine, render
    from avatarlab.media import read_video

    real = list(read_video(clip).frames)
    targets: list[np.ndarray] = []
    warp = render.warp_face

    def spy(image, layout, target, depth, lids=None):  # type: ignore[no-untyped-def]
        targets.append(np.array(target))
        return warp(image, layout, target, depth, lids)

    render.warp_face = spy  # type: ignore[assignment]
    try:
        engine = ReenactEngine()
        avatar = engine.prepare(real[0])
        gen = list(engine.reenact(avatar, MotionDriver(video=clip)))
    finally:
        render.warp_face = warp  # type: ignore[assignment]
    return real, gen, np.stack(targets)


def main() -> None:
    from avatarlab.engines.reenact import scores as S

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/reenact_eyes"))
    parser.add_argument("--frames", type=int, nargs="*", default=[], help="tile these frames")
    parser.add_argument("--tag", default="", help="suffix of the output names")
    args = parser.parse_args()
    os.environ.setdefault("AVATARLAB_PROGRESS", "0")
    args.cache.mkdir(parents=True, exist_ok=True)
    clip = DATA / args.clip
    real, gen, targets = render_clip(clip)
    cached = args.cache / f"{clip.stem}_real.npz"
    if cached.exists():
        z = np.load(cached)
        real_p68, real_pose = z["p68"], z["pose"]
    else:
        real_p68, real_pose = dlib_pass(real)
        np.savez(cached, p68=real_p68, pose=real_pose)
    gen_p68, gen_pose = dlib_pass(gen)
    np.save(args.cache / f"{clip.stem}{args.tag}_frames.npy", np.stack(gen))
    np.savez(
        args.cache / f"{clip.stem}{args.tag}.npz",
        real_p68=real_p68,
        gen_p68=gen_p68,
        real_pose=real_pose,
        gen_pose=gen_pose,
        targets=targets,
    )
    r_eye, g_eye, t_eye = per_eye(real_p68), per_eye(gen_p68), mesh_eyes(targets)
    print(f"{clip.name}: {len(real)} frames")
    print(f"  eye r gen/real {S.pearson(S.eye_opening(gen_p68), S.eye_opening(real_p68)):.3f}")
    print(f"  eye r target-mesh/real {S.pearson(t_eye.mean(1), r_eye.mean(1)):.3f}")
    print(f"  eye r gen/target-mesh {S.pearson(g_eye.mean(1), t_eye.mean(1)):.3f}")
    for e in (0, 1):
        print(
            f"  eye {e}: gen/real {S.pearson(g_eye[:, e], r_eye[:, e]):.3f}  "
            f"target/real {S.pearson(t_eye[:, e], r_eye[:, e]):.3f}"
        )
    print(f"  yaw r gen/real {S.pearson(gen_pose[:, 0], real_pose[:, 0]):.3f}")
    print("  frame  real   gen    target  (mean eye opening) | yaw real gen")
    for i in range(len(real)):
        print(
            f"  {i:4d} {r_eye[i].mean():.3f} {g_eye[i].mean():.3f} {t_eye[i].mean():.3f}"
            f"  | {real_pose[i, 0]:6.1f} {gen_pose[i, 0]:6.1f}"
        )
    if args.frames:
        import cv2

        rows = []
        for i in args.frames:
            pair = []
            for img, p in ((real[i], real_p68[i]), (gen[i], gen_p68[i])):
                im = np.ascontiguousarray(img[:, :, ::-1])
                if np.isfinite(p).all():
                    for x, y in p[36:48]:
                        cv2.circle(im, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
                    box = np.concatenate([p[36:48].min(0), p[36:48].max(0)])
                    w = box[2] - box[0]
                    x0, y0 = int(box[0] - 0.25 * w), int(box[1] - 0.35 * w)
                    x1, y1 = int(box[2] + 0.25 * w), int(box[3] + 0.35 * w)
                    im = im[max(y0, 0) : y1, max(x0, 0) : x1]
                im = cv2.resize(im, (480, int(480 * im.shape[0] / max(im.shape[1], 1))))
                cv2.putText(im, str(i), (5, 20), 0, 0.6, (0, 255, 255), 2)
                pair.append(im)
            h = max(x.shape[0] for x in pair)
            pair = [cv2.copyMakeBorder(x, 0, h - x.shape[0], 0, 2, 0) for x in pair]
            rows.append(np.hstack(pair))
        w = max(r.shape[1] for r in rows)
        tile = np.vstack([cv2.copyMakeBorder(r, 0, 2, 0, w - r.shape[1], 0) for r in rows])
        path = args.cache / f"{clip.stem}{args.tag}_tile.png"
        cv2.imwrite(str(path), tile)
        print(f"  tile: {path} (left real, right ours)")


if __name__ == "__main__":
    main()
