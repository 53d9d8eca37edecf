"""Cost per frame of the post-processing stages at 512x512, one core.

Frames are the first frames of ``hdtf_aoc_8s.mp4`` (512x512). Each stage runs through
:class:`avatarlab.tasks.postprocess.Postprocessor` exactly as ``speak``/``dub``/``reenact``
run it, timed per frame (wall clock, the process pinned to one core and torch to one
thread); the reference in the same run is the ``warp`` engine rendering the same portrait
(what the stages are added to). Stages:

- background: selfie segmentation + mask smoothing + compositing, for a colour, an image
  and blur;
- enhance pipeline only: face tracking, FFHQ alignment, crop and feathered paste-back
  around a stand-in restorer that returns its input (the cost besides the network);
- enhance with GFPGAN v1.4 / CodeFormer: the same with the full-size network, rule-B fill
  weights (the speed of real weights is the same: same layers, same shapes).

    .venv/bin/python bench/postprocess.py                    # all, ~1 min on one core
    .venv/bin/python bench/postprocess.py --no-networks      # background and pipeline only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP = DATA / "video" / "hdtf_aoc_8s.mp4"


class Identity:
    """A restorer that returns its input: times everything around the network."""

    name = "identity"

    def restore(self, faces: np.ndarray) -> np.ndarray:
        return faces


def per_frame(run: object, frames: list[np.ndarray], fps: float = 25.0) -> float:
    """Seconds per frame of ``Postprocessor.run`` over ``frames`` (first frame excluded:
    one-time graph and model set-up)."""
    out = run.run(frames[:1], fps)  # type: ignore[attr-defined]
    list(out)
    t0 = time.perf_counter()
    for _ in run.run(frames, fps):  # type: ignore[attr-defined]
        pass
    return (time.perf_counter() - t0) / len(frames)


def warp_reference(frames: int) -> float:
    """Seconds per frame of the warp engine rendering the clip's first frame speaking."""
    from avatarlab.engines import Driver, get_engine
    from avatarlab.media import SPEECH_RATE, read_audio, read_image

    engine = get_engine("warp")
    avatar = engine.prepare(read_image(CLIP))
    speech = read_audio(CLIP, SPEECH_RATE)[: int((frames + 1) / 25 * SPEECH_RATE)]
    driven = Driver(audio=speech, sample_rate=SPEECH_RATE).analyse(avatar.fps)
    t0 = time.perf_counter()
    n = sum(1 for _ in engine.render(avatar, Driver(speech=driven)))
    return (time.perf_counter() - t0) / n


def network_checkpoint(model: str, folder: Path) -> str:
    """A rule-B checkpoint file of ``model`` in ``folder``."""
    import torch

    from avatarlab.engines._fill import fill_state_dict

    if model == "gfpgan":
        from avatarlab.engines.gfpgan.model import GFPGANv1Clean as Net
    else:
        from avatarlab.engines.codeformer.model import CodeFormer as Net  # type: ignore[assignment]
    path = folder / f"{model}.pth"
    torch.save(fill_state_dict(Net(), rule="B").state_dict(), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=50, help="frames per cheap stage")
    parser.add_argument("--network-frames", type=int, default=2, help="frames per network")
    parser.add_argument("--no-networks", action="store_true", help="skip GFPGAN/CodeFormer")
    args = parser.parse_args()

    import torch

    from avatarlab.media import read_video
    from avatarlab.tasks.enhance import EnhanceOptions
    from avatarlab.tasks.postprocess import PostOptions, Postprocessor

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    frames = list(read_video(CLIP, end=(args.frames + 1) / 25).frames)[: args.frames]
    h, w = frames[0].shape[:2]
    reference = warp_reference(args.frames)
    print(
        f"{w}x{h}, {len(frames)} frames, one core; reference: warp render {reference * 1e3:.1f} ms/frame"
    )
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sky = Path(tmp) / "sky.png"
        from avatarlab.media.files import write_image

        write_image(sky, np.linspace(0, 255, 720 * 1280 * 3).reshape(720, 1280, 3).astype(np.uint8))
        for label, value in (
            ("background #00ff00", "#00ff00"),
            ("background image", str(sky)),
            ("background blur", "blur"),
        ):
            rows.append((label, per_frame(Postprocessor(PostOptions(background=value)), frames)))
        pipeline = Postprocessor(PostOptions(enhance="gfpgan"), restorer=Identity())
        rows.append(("enhance pipeline (tracking, align, paste)", per_frame(pipeline, frames)))
        if not args.no_networks:
            for model in ("gfpgan", "codeformer"):
                settings = EnhanceOptions(
                    checkpoint=network_checkpoint(model, Path(tmp)), device="cpu", batch_size=1
                )
                stage = Postprocessor(PostOptions(enhance=model, enhancer=settings))  # type: ignore[arg-type]
                rows.append(
                    (
                        f"enhance {model} (network included)",
                        per_frame(stage, frames[: args.network_frames]),
                    )
                )
    print(f"{'stage':45s} {'ms/frame':>10s} {'x warp render':>14s}")
    for label, seconds in rows:
        print(f"{label:45s} {seconds * 1e3:10.1f} {seconds / reference:14.2f}")


if __name__ == "__main__":
    main()
