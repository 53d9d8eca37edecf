"""The warp engine against issue 4's checks: lip timing, self-reconstruction, speed, latency.

Prints, per talking clip of ``../shared/data/video`` (first frame + the clip's own
audio, audio-only analysis, ``head_motion=0``):

- ``r``: Pearson correlation of the generated per-frame mouth opening (inner-lip
  gap over face height, :func:`avatarlab.metrics.lipsync.mouth_opening`, measured
  with our tracker on the decoded output) with the real clip's; target mean >= 0.6;
- ``lag``: the shift (frames, + = generated late) of best cross-correlation; target |lag| <= 1;
- ``fidelity``: correlation of the measured output opening with the opening the
  engine was asked for (the renderer's share of the error: 1 is perfect);
- ``rest``: the rest pose taken from the first frame's own lips (``jaw_open``, 0 = closed);
- ``CSIM``: dlib identity cosine between output frames and the source frame; target >= 0.95;
- ``PSNR``: upper face (above the nose tip) against the source frame, outside
  blinks, in dB; target >= 35.

Then the same clips rendered with the default options (``head_motion=0.5``, blinks on),
issue 15's life checks:

- ``closed``: share of frames whose mouth is near-closed (inner-lip gap below
  :data:`CLOSED_OPENING` = 0.02 face heights, :func:`~avatarlab.metrics.lipsync.mouth_opening`,
  the same tracker and threshold on the real and the generated clip); target within 10
  points of the real clip's;
- ``div``: head-motion diversity (:func:`~avatarlab.metrics.motion.head_diversity`, degrees)
  of the generated and the real clip; target within a factor of 1.5;
- ``collar``: optical flow (Farneback, pixels) of the generated frames against the
  source frame in the collar region (rows more than 0.1 face heights below the chin,
  two face widths wide), the 99th percentile over pixels and frames, with head motion
  and, for reference, without it (the jaw alone), and ``head``: the head motion's own
  share (each frame against the same frame rendered without head motion, the worst
  frame's 99th percentile); target < 1 px.

Then text mode on ``skimage.data.astronaut()`` (share of vowels on frames with an
above-median inner-lip gap, share of p/b/m on frames with closed lips: targets
80 %), end-to-end ``speak`` speed on one core at 512x512 (speech analysis +
render + encode; target >= 25 fps) with the plain encode of the same frames as
the in-process reference, and the streaming form's first-frame latency (target
<= 200 ms after the first chunk).

    python bench/generate.py [--clips hdtf_aoc_8s.mp4 ...] [--skip-clips] [--skip-speed]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from avatarlab.metrics.lipsync import best_lag, lagged_correlation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("hdtf_aoc_8s.mp4", "talk_a.mp4", "talk_b.mp4", "talk_c.mp4")
TEXT = (
    "Peter baked a big apple pie. My mother bought maple bread by the bay, "
    "and Bob made some more. What a beautiful morning it was!"
)
MAX_LAG = 5
CLOSED_OPENING = 0.02
"""Inner-lip gap over face height below which the lips count as closed."""
CHUNK_S = 0.04
"""Audio chunk length fed to the streaming form (one frame at 25 fps)."""


def one_core() -> None:
    """Pin this process to one CPU core and one thread everywhere (the speed target's setting)."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def track(frames: list[np.ndarray]):  # type: ignore[no-untyped-def]
    from avatarlab.face import FaceTracker

    with FaceTracker() as tracker:
        return tracker.track(frames)


def openings(face_track) -> np.ndarray:  # type: ignore[no-untyped-def]
    from avatarlab.metrics.lipsync import mouth_opening

    return mouth_opening(face_track.landmarks68())


def upper_face_psnr(frames: list[np.ndarray], source: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """PSNR (dB) per frame of the face above the nose tip against ``source``."""
    from avatarlab.face import topology as T

    oval = mesh[list(T.FACE_OVAL), :2]
    x0, x1 = int(max(oval[:, 0].min(), 0)), int(oval[:, 0].max()) + 1
    y0, y1 = int(max(oval[:, 1].min(), 0)), int(mesh[T.NOSE_TIP, 1])
    ref = source[y0:y1, x0:x1].astype(np.float64)
    out = []
    for f in frames:
        mse = float(((f[y0:y1, x0:x1].astype(np.float64) - ref) ** 2).mean())
        out.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
    return np.asarray(out)


def blink_frames(n: int, fps: float, rate: float, seed: int) -> np.ndarray:
    """Frames where the engine's seeded blink schedule has the lids moving (plus one each side)."""
    from avatarlab.engines.warp.motion import BlinkSchedule

    schedule = BlinkSchedule(rate, fps, seed)
    closed = np.array([schedule.closure(i) > 0 for i in range(n)])
    return closed | np.roll(closed, 1) | np.roll(closed, -1)


def self_reconstruction(clip: str, tmp: Path) -> dict[str, float]:
    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp import WarpEngine, WarpOptions
    from avatarlab.face import FaceEmbedder, face_mesh, identity_similarity
    from avatarlab.media import VideoWriter, iter_frames, probe, read_video
    from avatarlab.speech import with_rest_pose

    path = DATA / "video" / clip
    fps = probe(path).fps
    real = [f for f, _ in iter_frames(path)]
    real_open = openings(track(real))
    options = WarpOptions(fps=fps, head_motion=0.0)
    engine = WarpEngine(options)
    avatar = engine.prepare(real[0])
    speech = Driver(audio=path).analyse(fps)
    out = tmp / f"self_{clip}"
    with VideoWriter(out, fps, audio=speech.audio, sample_rate=speech.sample_rate) as writer:
        for frame in engine.render(avatar, Driver(speech=speech)):
            writer.write(frame)
    gen = list(read_video(out).frames)
    asked = with_rest_pose(speech.mouth, avatar.rest_jaw)  # what the renderer was given
    gen_track = track(gen)
    gen_open = openings(gen_track)
    lag = best_lag(gen_open, real_open, MAX_LAG)
    embedder = FaceEmbedder()
    mesh = face_mesh(real[0])
    ref = embedder.embed(real[0], mesh)
    csim = [
        identity_similarity(ref, embedder.embed(f, lm))
        for f, lm, ok in zip(gen, gen_track.landmarks, gen_track.found, strict=True)
        if ok
    ]
    psnr = upper_face_psnr(gen, real[0], mesh)
    blinks = blink_frames(len(gen), fps, options.blink_rate, options.seed)
    return {
        "r": lagged_correlation(gen_open, real_open, 0),
        "lag": float(lag),
        "r_at_lag": lagged_correlation(gen_open, real_open, lag),
        "fidelity": lagged_correlation(gen_open, asked.opening.astype(np.float64), 0),
        "rest_jaw": avatar.rest_jaw,
        "csim": float(np.mean(csim)),
        "csim_min": float(np.min(csim)),
        "psnr": float(np.mean(psnr[~blinks])),
        "psnr_min": float(np.min(psnr[~blinks])),
        "frames": float(len(gen)),
        "source": speech.source,  # type: ignore[dict-item]
    }


def collar_flow(frames: list[np.ndarray], source: np.ndarray, mesh: np.ndarray) -> float:
    """99th percentile (pixels) over frames and pixels of the optical flow from ``source``
    to each frame in the collar region (below the chin by > 0.1 face heights)."""
    import cv2

    chin, top = mesh[152, :2], mesh[10, :2]
    height = float(np.linalg.norm(chin - top))
    width = float(np.linalg.norm(mesh[234, :2] - mesh[454, :2]))
    y0 = int(np.ceil(chin[1] + 0.1 * height))
    x0, x1 = int(max(chin[0] - width, 0)), int(min(chin[0] + width, source.shape[1]))
    y1 = min(y0 + int(0.6 * height), source.shape[0])
    if y1 - y0 < 8 or x1 - x0 < 8:
        return float("nan")
    grey = lambda im: cv2.cvtColor(im[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)  # noqa: E731
    ref = grey(source)
    mags = []
    for frame in frames:
        flow = cv2.calcOpticalFlowFarneback(
            ref,
            grey(frame),
            None,  # type: ignore[call-overload]
            0.5,
            3,
            15,
            3,
            5,
            1.2,
            0,
        )
        mags.append(np.linalg.norm(flow, axis=-1).ravel())
    return float(np.percentile(np.concatenate(mags), 99))


def life(clip: str) -> dict[str, float]:
    """Issue 15's checks on one clip: near-closed share, head diversity, collar motion."""
    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp import WarpEngine, WarpOptions
    from avatarlab.face import face_mesh
    from avatarlab.media import iter_frames, probe
    from avatarlab.metrics.motion import head_diversity

    path = DATA / "video" / clip
    fps = probe(path).fps
    real = [f for f, _ in iter_frames(path)]
    real_track = track(real)
    speech = Driver(audio=path).analyse(fps)
    mesh = face_mesh(real[0])
    assert mesh is not None
    out: dict[str, float] = {}
    rendered: dict[str, list[np.ndarray]] = {}
    for label, options in (
        ("", WarpOptions(fps=fps)),
        ("_still", WarpOptions(fps=fps, head_motion=0.0)),
    ):
        engine = WarpEngine(options)
        frames = list(engine.render(engine.prepare(real[0]), Driver(speech=speech)))
        rendered[label] = frames
        out["collar" + label] = collar_flow(frames, real[0], mesh)
        if label:
            continue
        gen_track = track(frames)
        out["closed"] = float(np.nanmean(openings(gen_track) < CLOSED_OPENING))
        out["div"] = head_diversity(gen_track.pose)
    # the head's share alone: each moving frame against the same frame without head motion
    out["collar_head"] = max(
        collar_flow([m], s, mesh) for m, s in zip(rendered[""], rendered["_still"], strict=True)
    )
    out["closed_real"] = float(np.nanmean(openings(real_track) < CLOSED_OPENING))
    out["div_real"] = head_diversity(real_track.pose)
    return out


def text_mode() -> dict[str, float]:
    import skimage.data

    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp import WarpEngine
    from avatarlab.speech.visemes import VOWEL_VISEMES, phone_visemes

    engine = WarpEngine()
    avatar = engine.prepare(skimage.data.astronaut())
    speech = Driver(text=TEXT).analyse(avatar.fps)
    frames = list(engine.render(avatar, Driver(speech=speech)))
    gap = openings(track(frames))
    median = float(np.nanmedian(gap))
    vowels, bilabials = [], []
    for phone in speech.phones:
        visemes = phone_visemes(phone.symbol, phone.source)
        k = min(int(phone.center * avatar.fps), len(gap) - 1)
        if any(v in VOWEL_VISEMES for v in visemes):
            vowels.append(gap[k] > median)
        if visemes == ("PP",):
            bilabials.append(gap[k] < CLOSED_OPENING)
    return {
        "vowels_open": float(np.mean(vowels)),
        "n_vowels": float(len(vowels)),
        "bilabials_closed": float(np.mean(bilabials)),
        "n_bilabials": float(len(bilabials)),
    }


def speed(image: np.ndarray, label: str, tmp: Path, audio: Path | None = None) -> dict[str, float]:
    """End-to-end speak fps on this core, with the stages timed apart and an encode-only reference.

    Driven by ``TEXT`` (espeak), or by the speech file ``audio`` (PocketSphinx phones).
    """
    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp import WarpEngine
    from avatarlab.media import VideoWriter
    from avatarlab.tasks import SpeakOptions, speak

    speak(image, text="Warm up.", out=tmp / "warm.mp4")  # load models once
    said = {"text": TEXT} if audio is None else {"audio": audio}
    t0, c0 = time.perf_counter(), time.process_time()
    out = tmp / f"speak_{label}.mp4"
    result = speak(image, **said, out=out, options=SpeakOptions())  # type: ignore[arg-type]
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine = WarpEngine()
    t0 = time.perf_counter()
    avatar = engine.prepare(image)
    t_prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    speech = Driver(**said).analyse(avatar.fps)  # type: ignore[arg-type]
    t_speech = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = list(engine.render(avatar, Driver(speech=speech)))
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    with VideoWriter(
        tmp / "encode.mp4", avatar.fps, audio=speech.audio, sample_rate=speech.sample_rate
    ) as w:
        for frame in frames:
            w.write(frame)
    t_encode = time.perf_counter() - t0
    n = result.frames
    return {
        "e2e_fps": n / total,
        "e2e_cpu_fps": n / cpu,
        "realtime_x": n / total / avatar.fps,
        "prepare_s": t_prepare,
        "speech_ms_per_frame": 1000 * t_speech / n,
        "render_ms_per_frame": 1000 * t_render / n,
        "encode_ms_per_frame": 1000 * t_encode / n,
        "encode_only_fps": n / t_encode,
        "frames": float(n),
    }


def streaming_latency(image: np.ndarray) -> dict[str, float]:
    """Seconds from the first chunk's arrival to the first frame, chunks arriving in real time."""
    from avatarlab.engines.warp import WarpEngine
    from avatarlab.media import SPEECH_RATE, read_audio

    engine = WarpEngine()
    avatar = engine.prepare(image)
    audio = read_audio(DATA / "audio" / "english_radio_8s.wav", SPEECH_RATE)
    step = int(CHUNK_S * SPEECH_RATE)
    chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
    for _ in engine.render_stream(avatar, chunks[:10], SPEECH_RATE):  # warm up models
        pass
    start = time.perf_counter()

    def arriving():  # type: ignore[no-untyped-def]
        for k, chunk in enumerate(chunks):
            delay = start + k * CHUNK_S - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield chunk

    first = None
    late = []
    for k, frames in enumerate(engine.render_stream(avatar, arriving(), SPEECH_RATE)):
        now = time.perf_counter()
        if frames and first is None:
            first = now - start
        if k < len(chunks):
            late.append(now - (start + k * CHUNK_S))
    return {
        "first_frame_s": float(first if first is not None else np.nan),
        "chunk_s": CHUNK_S,
        "mean_chunk_delay_s": float(np.mean(late)),
        "max_chunk_delay_s": float(np.max(late)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--skip-clips", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-life", action="store_true", help="skip issue 15's life checks")
    parser.add_argument(
        "--lopo",
        action="store_true",
        help="also print the leave-one-performance-out lip-timing table (bench/lipsync_lopo.py)",
    )
    args = parser.parse_args()
    os.environ.setdefault("AVATARLAB_PROGRESS", "0")
    one_core()
    import skimage.data

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_clips:
            print("self-reconstruction (first frame + own audio, head_motion 0):")
            print(
                f"{'clip':18} {'r':>6} {'lag':>4} {'r@lag':>6} {'fidel':>6} {'CSIM':>6} "
                f"{'CSIMmin':>7} {'PSNR':>6} {'PSNRmin':>7} {'rest':>5}  speech"
            )
            rows = []
            for clip in args.clips:
                m = self_reconstruction(clip, tmp)
                rows.append(m)
                print(
                    f"{clip:18} {m['r']:6.3f} {m['lag']:4.0f} {m['r_at_lag']:6.3f} "
                    f"{m['fidelity']:6.3f} {m['csim']:6.3f} {m['csim_min']:7.3f} "
                    f"{m['psnr']:6.1f} {m['psnr_min']:7.1f} {m['rest_jaw']:5.2f}  {m['source']}"
                )
            mean_r = float(np.mean([m["r"] for m in rows]))
            print(
                f"{'mean':18} {mean_r:6.3f}   (targets: r >= 0.6, |lag| <= 1, CSIM >= 0.95, "
                "PSNR >= 35 dB)"
            )
        if args.lopo:
            import sys

            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from lipsync_lopo import load_clip, lopo_lead

            print("leave one performance out (requested opening; lead chosen on the others):")
            held = lopo_lead([load_clip(clip) for clip in args.clips])
            for name, lead, r0, lag, r_lag in held:
                print(f"{name:18} lead {1000 * lead:3.0f} ms {r0:6.3f} {lag:+4d} {r_lag:6.3f}")
            print(f"{'mean (held out)':18} {np.mean([h[2] for h in held]):13.3f}")
        if not args.skip_life:
            print("life (first frame + own audio, default options: head_motion 0.5, blinks):")
            print(
                f"{'clip':18} {'closed':>6} {'real':>6} {'div':>6} {'real':>6} {'ratio':>6} "
                f"{'collar':>7} {'still':>6} {'head':>6}"
            )
            for clip in args.clips:
                m = life(clip)
                ratio = m["div"] / m["div_real"]
                print(
                    f"{clip:18} {m['closed']:6.1%} {m['closed_real']:6.1%} {m['div']:6.2f} "
                    f"{m['div_real']:6.2f} {ratio:6.2f} {m['collar']:7.2f} {m['collar_still']:6.2f} "
                    f"{m['collar_head']:6.2f}"
                )
            print(
                f"{'':18} (targets: closed within 10 points of real, div ratio in 0.67-1.5, "
                "collar flow p99 < 1 px)"
            )
        tm = text_mode()
        print(
            f"text mode: vowels on above-median gap {tm['vowels_open']:.0%} of "
            f"{tm['n_vowels']:.0f}, p/b/m with closed lips {tm['bilabials_closed']:.0%} of "
            f"{tm['n_bilabials']:.0f} (targets 80 %)"
        )
        if not args.skip_speed:
            portraits = {"astronaut": skimage.data.astronaut()}
            hdtf = DATA / "video" / "hdtf_aoc_8s.mp4"
            if hdtf.exists():
                from avatarlab.media import read_image

                portraits["hdtf_frame0"] = read_image(hdtf)
            runs = [(label, image, None) for label, image in portraits.items()]
            speech_file = DATA / "audio" / "english_radio_8s.wav"
            if speech_file.exists():
                runs.append(("astronaut+audio", portraits["astronaut"], speech_file))
            for label, image, audio in runs:
                s = speed(image, label, tmp, audio)
                print(
                    f"speak {label} {image.shape[1]}x{image.shape[0]}, one core: "
                    f"{s['e2e_fps']:.1f} fps end to end, {s['e2e_cpu_fps']:.1f} by CPU time "
                    f"({s['realtime_x']:.2f}x real time; "
                    f"target >= 25) | per frame: speech {s['speech_ms_per_frame']:.1f} ms, "
                    f"render {s['render_ms_per_frame']:.1f} ms, encode "
                    f"{s['encode_ms_per_frame']:.1f} ms; prepare {s['prepare_s']:.2f} s; "
                    f"reference encode-only {s['encode_only_fps']:.0f} fps"
                )
            lat = streaming_latency(skimage.data.astronaut())
            print(
                f"streaming: first frame {1000 * lat['first_frame_s']:.0f} ms after the first "
                f"{1000 * lat['chunk_s']:.0f} ms chunk arrived (target <= 200 ms); each chunk's "
                f"frames out {1000 * lat['mean_chunk_delay_s']:.0f} ms (mean), "
                f"{1000 * lat['max_chunk_delay_s']:.0f} ms (max) after it arrived"
            )


if __name__ == "__main__":
    main()
