"""Lip-sync timing without rendering: the requested mouth opening against the real one.

Issue 15 item 1. For each talking clip of ``../shared/data/video`` the engine's
requested opening (``jaw_open * (1 - lip_closed)`` after the portrait's rest pose,
what ``bench/generate.py``'s ``fidelity`` shows the renderer follows) is correlated
with the clip's measured inner-lip gap (:func:`avatarlab.metrics.lipsync.mouth_opening`
on our tracker's landmarks): Pearson r at lag 0, and the best lag in
[-5, 5] frames (+ = generated late). Much faster than rendering, so a value chosen by
measurement can be validated leave-one-performance-out: the four clips are three
performances (``hdtf_aoc_8s`` and ``talk_c`` are one speaker and one take), the value
is chosen on two and reported on the third.

Printed:

- ``in-sample``: per clip, the mouth track without and with the timing-uncertainty
  blend (:attr:`avatarlab.speech.CoarticulationOptions.timing_sd_s`, whose values were
  chosen on espeak speech, not on these clips);
- ``LOPO anticipation``: the mouth's lead over the sound chosen on two performances
  (grid 0-100 ms), r and lag on the held-out one;
- ``--espeak``: the recogniser's timing error on espeak-ng speech with exact phone
  events (40 utterances: 10 Harvard sentences x 4 voices at 150/175/210 wpm), for the
  forced-alignment and the recognised-words paths: the best lag of the recognised
  mouth against the true one, and r against the truth for several timing blurs.

    python bench/lipsync_lopo.py [--espeak] [--clips talk_a.mp4 ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarlab.metrics.lipsync import lagged_correlation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("hdtf_aoc_8s.mp4", "talk_a.mp4", "talk_b.mp4", "talk_c.mp4")
#: One performance (speaker and take) per group: clips of one group never validate each other.
PERFORMANCES: dict[str, str] = {
    "hdtf_aoc_8s.mp4": "aoc",
    "talk_c.mp4": "aoc",
    "talk_a.mp4": "a",
    "talk_b.mp4": "b",
}
MAX_LAG = 5
LEADS_S = tuple(round(0.01 * i, 2) for i in range(11))
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)
ESPEAK_VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3")


@dataclass
class Clip:
    """A talking clip's real opening and what the speech analysis found in its audio."""

    name: str
    fps: float
    real: np.ndarray  # (N,) measured opening per frame
    rest_jaw: float
    duration: float
    phones: list  # type: ignore[type-arg]
    source: str


def load_clip(name: str) -> Clip:
    """Track the real clip, prepare its first frame (rest pose), analyse its audio."""
    from avatarlab.engines.warp import WarpEngine, WarpOptions
    from avatarlab.face import FaceTracker
    from avatarlab.media import iter_frames, probe
    from avatarlab.metrics.lipsync import mouth_opening
    from avatarlab.speech import analyze_speech

    path = DATA / "video" / name
    fps = probe(path).fps
    frames = [f for f, _ in iter_frames(path)]
    with FaceTracker() as tracker:
        real = mouth_opening(tracker.track(frames).landmarks68())
    avatar = WarpEngine(WarpOptions(fps=fps, head_motion=0.0)).prepare(frames[0])
    speech = analyze_speech(audio=path, fps=fps)
    return Clip(name, fps, real, avatar.rest_jaw, speech.duration, speech.phones, speech.source)


def requested_opening(clip: Clip, lead: float | None = None, sd: float | None = None) -> np.ndarray:
    """The opening the engine asks the renderer for, per frame (rest pose included)."""
    from avatarlab.speech import CoarticulationOptions, mouth_track, with_rest_pose

    options = CoarticulationOptions(anticipation_s=lead, timing_sd_s=sd)
    track = mouth_track(clip.phones, clip.fps, clip.duration, options, clip.source)
    return with_rest_pose(track, clip.rest_jaw).opening.astype(np.float64)


def score(gen: np.ndarray, real: np.ndarray) -> tuple[float, int, float]:
    """(r at lag 0, best lag in frames, r at the best lag)."""
    scores = {lag: lagged_correlation(gen, real, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)}
    lag = max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else scores[k])
    return scores[0], lag, scores[lag]


def lopo_lead(clips: list[Clip]) -> list[tuple[str, float, float, int, float]]:
    """Leave one performance out: the lead with the best mean r (lag 0) over the other
    performances' clips (each performance weighted equally); per held-out clip
    ``(clip, chosen lead, r0, best lag, r at best lag)``."""
    r0 = {
        (c.name, lead): score(requested_opening(c, lead), c.real)[0]
        for c in clips
        for lead in LEADS_S
    }
    out = []
    groups = sorted({PERFORMANCES[c.name] for c in clips})
    for held in groups:
        train = [g for g in groups if g != held]

        def train_r(lead: float, train: list[str] = train) -> float:
            per = [
                np.mean([r0[(c.name, lead)] for c in clips if PERFORMANCES[c.name] == g])
                for g in train
            ]
            return float(np.mean(per))

        lead = max(LEADS_S, key=train_r)
        for c in clips:
            if PERFORMANCES[c.name] == held:
                out.append((c.name, lead, *score(requested_opening(c, lead), c.real)))
    return out


def espeak_timing() -> None:
    """Print the recogniser's timing error on espeak-ng speech (exact phone events)."""
    from scipy.ndimage import gaussian_filter1d

    from avatarlab.errors import AvatarLabError
    from avatarlab.media import resample
    from avatarlab.speech import (
        CoarticulationOptions,
        Phone,
        align_transcript,
        mouth_track,
        synthesize,
    )
    from avatarlab.speech.analysis import _from_words

    rate_hz = 200.0
    options = CoarticulationOptions(style="conversational", anticipation_s=0.0, timing_sd_s=0.0)
    rng = np.random.default_rng(0)
    pad = 0.25
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"align": [], "words": []}
    failed = 0
    for i, (text, voice) in enumerate(itertools.product(HARVARD, ESPEAK_VOICES)):
        utt = synthesize(text, voice=voice, rate_wpm=(150, 175, 210)[i % 3])
        audio = resample(utt.audio, utt.sample_rate, 16000)
        audio = np.pad(audio, int(pad * 16000))
        audio = audio + rng.normal(0, 10 ** (-55 / 20), len(audio)).astype(np.float32)  # room noise
        duration = len(audio) / 16000
        truth = [Phone(p.symbol, p.start + pad, p.end + pad, p.source) for p in utt.phones]
        true_open = mouth_track(truth, rate_hz, duration, options, "pocketsphinx-align").opening
        for kind in rows:
            try:
                phones = (
                    align_transcript(audio, text).phones
                    if kind == "align"
                    else _from_words(audio)[0]
                )
            except AvatarLabError:
                failed += 1
                continue
            if phones:
                got = mouth_track(phones, rate_hz, duration, options, "pocketsphinx-align").opening
                rows[kind].append((got.astype(np.float64), true_open.astype(np.float64)))
    print(
        f"espeak timing ({len(HARVARD) * len(ESPEAK_VOICES)} utterances, {failed} alignments failed):"
    )
    for kind, pairs in rows.items():
        lags = []
        for got, true in pairs:
            sc = {lag: lagged_correlation(got, true, lag) for lag in range(-20, 21)}
            lags.append(max(sc, key=lambda k: sc[k]) * 1000.0 / rate_hz)
        blur = {
            sd: np.mean(
                [
                    lagged_correlation(gaussian_filter1d(g, sd * rate_hz) if sd else g, t, 0)
                    for g, t in pairs
                ]
            )
            for sd in (0.0, 0.01, 0.02, 0.03, 0.04, 0.06)
        }
        print(
            f"  {kind:6} n={len(pairs)}: best lag of the recognised mouth {np.mean(lags):+.1f} ms "
            f"mean, {np.median(lags):+.1f} median, sd {np.std(lags):.1f} (+ = late); r vs truth "
            "by timing blur sd: " + ", ".join(f"{1000 * k:.0f} ms {v:.3f}" for k, v in blur.items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--espeak", action="store_true", help="also measure espeak timing error")
    args = parser.parse_args()
    os.environ.setdefault("AVATARLAB_PROGRESS", "0")
    clips = [load_clip(name) for name in args.clips]
    print("in-sample, requested opening vs real (r0 / best lag / r@lag):")
    print(f"{'clip':16} {'timing_sd 0':>22} {'default timing_sd':>22}  speech")
    for c in clips:
        a, b = score(requested_opening(c, sd=0.0), c.real), score(requested_opening(c), c.real)
        print(
            f"{c.name:16} {a[0]:8.3f} {a[1]:+4d} {a[2]:7.3f}  {b[0]:8.3f} {b[1]:+4d} {b[2]:7.3f}  {c.source}"
        )
    means = [
        np.mean([score(requested_opening(c, sd=sd), c.real)[0] for c in clips])
        for sd in (0.0, None)
    ]
    print(f"{'mean r0':16} {means[0]:8.3f} {'':12} {means[1]:8.3f}")
    if len({PERFORMANCES.get(c.name) for c in clips}) >= 2:
        print("LOPO anticipation (lead chosen on the other performances; held-out clip):")
        rows = lopo_lead(clips)
        for name, lead, r0, lag, r_lag in rows:
            print(
                f"{name:16} lead {1000 * lead:3.0f} ms  r0 {r0:6.3f}  lag {lag:+d}  r@lag {r_lag:6.3f}"
            )
        print(f"{'mean r0':16} {'':12} {np.mean([r[2] for r in rows]):6.3f}")
    if args.espeak:
        espeak_timing()


if __name__ == "__main__":
    main()
