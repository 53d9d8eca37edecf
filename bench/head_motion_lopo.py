"""Does the audio's prosody tell how much a speaker's head moves? Issue 15 item 4.

For each talking clip of ``../shared/data/video`` (first frame + own audio, as
``bench/generate.py``'s life section) this prints:

- ``transfer``: how the rendered head pose, measured by our tracker, follows the
  offsets the engine asked for (:class:`~avatarlab.engines.warp.motion.HeadOffset`):
  a least-squares fit, per clip, of (measured pose - pose of the same clip rendered
  with ``head_motion=0``) on the six commanded components, fitted on the
  ``head_motion=0.5`` render and checked on the ``head_motion=1`` render
  (``div`` actual against predicted). The fit is the *surrogate* used below: any
  motion rule's diversity can then be estimated from its commands alone, without
  rendering, over many seeds;
- ``prosody``: per clip statistics of :mod:`~avatarlab.engines.warp.prosody`'s
  level and pitch (voiced frames), stress onsets as :class:`HeadMotion` detects
  them, level-envelope syllable peaks, speech share, against the real clip's
  head-motion diversity (:func:`~avatarlab.metrics.motion.head_diversity`);
- ``seeds``: the current motion's ratio (generated / real diversity) at seed 0 and
  its median and 10-90 % range over seeds 0-11 (surrogate);
- ``whole-clip factor``: every amplitude multiplied by ``k * stat ** p``, ``stat`` a
  whole-clip prosody statistic (not causal: it needs the whole clip's audio first),
  ``p`` and ``k`` chosen on two performances, the ratio on the third
  (leave-one-performance-out; ``hdtf_aoc_8s`` and ``talk_c`` are one performance);
- ``causal factor``: the same with the stress-onset rate estimated causally as the
  engine would have to (exponential running mean, 2 s, starting at ``R0``; or the
  mean since the start with ``R0`` as a 1 s prior), ``p`` and ``R0`` chosen on two
  performances.

    python bench/head_motion_lopo.py [--clips talk_a.mp4 ...] [--seeds 12]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from avatarlab.engines.warp import motion as M  # noqa: E402
from avatarlab.metrics.motion import head_diversity  # noqa: E402
from lipsync_lopo import CLIPS, PERFORMANCES  # noqa: E402

STATS = ("onsets_s", "syllables_s", "speech", "pitch_sd", "pitch_range", "level_sd")
EXPONENTS = (-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
GAINS = np.exp(np.linspace(math.log(0.02), math.log(50.0), 241))
R0S = np.exp(np.linspace(math.log(0.8), math.log(5.0), 31))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RATE_TIME_S = 2.0
PRIOR_S = 1.0

Commands = np.ndarray  # (N, 6): yaw, pitch, roll, dx, dy, scale as HeadOffset


@dataclass
class Clip:
    name: str
    fps: float
    prosody: np.ndarray  # (N, 2) level dB, pitch st
    real: np.ndarray  # (N, 3) real pose, degrees
    still: np.ndarray  # (N, 3) pose of the head_motion=0 render
    transfer: np.ndarray  # (7, 3) measured - still ~ [commands, 1] @ transfer
    check: tuple[float, float]  # head_motion=1 render: actual and predicted diversity

    def predict(self, commands: Commands) -> np.ndarray:
        n = min(len(commands), len(self.still))
        return self.still[:n] + np.c_[commands[:n], np.ones(n)] @ self.transfer

    def ratio(self, commands: Commands) -> float:
        return head_diversity(self.predict(commands)) / head_diversity(self.real)


def track(frames: list[np.ndarray]):  # type: ignore[no-untyped-def]
    from avatarlab.face import FaceTracker

    with FaceTracker() as tracker:
        return tracker.track(frames)


def render(frame: np.ndarray, speech, fps: float, amount: float) -> tuple[np.ndarray, Commands]:  # type: ignore[no-untyped-def]
    """Tracked pose of the rendered clip and the offsets the engine asked for."""
    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp import WarpEngine, WarpOptions

    asked: list[tuple[float, ...]] = []
    step = M.HeadMotion.step

    def recording(self, jaw_open, prosody=None):  # type: ignore[no-untyped-def]
        o = step(self, jaw_open, prosody)
        asked.append((o.yaw, o.pitch, o.roll, o.dx, o.dy, o.scale))
        return o

    M.HeadMotion.step = recording  # type: ignore[method-assign]
    try:
        engine = WarpEngine(WarpOptions(fps=fps, head_motion=amount))
        frames = list(engine.render(engine.prepare(frame), Driver(speech=speech)))
    finally:
        M.HeadMotion.step = step  # type: ignore[method-assign]
    return np.asarray(track(frames).pose, np.float64), np.asarray(asked, np.float64)


def load(name: str) -> Clip:
    from avatarlab.engines.base import Driver
    from avatarlab.engines.warp.prosody import StreamingProsody
    from avatarlab.media import iter_frames, probe

    path = DATA / "video" / name
    fps = probe(path).fps
    real = [f for f, _ in iter_frames(path)]
    speech = Driver(audio=path).analyse(fps)
    stream = StreamingProsody(fps)
    stream.push(speech.audio16k, last=True)
    prosody = np.array([stream.frame(k) for k in range(len(speech.mouth.params))])
    still, _ = render(real[0], speech, fps, 0.0)
    fits = {}
    for amount in (0.5, 1.0):
        pose, asked = render(real[0], speech, fps, amount)
        n = min(len(pose), len(asked), len(still))
        fits[amount] = (pose[:n], asked[:n])
    pose, asked = fits[0.5]
    y = pose - still[: len(pose)]
    ok = np.isfinite(y).all(1)
    transfer = np.linalg.lstsq(np.c_[asked[ok], np.ones(ok.sum())], y[ok], rcond=None)[0]
    clip = Clip(
        name, fps, prosody, np.asarray(track(real).pose, np.float64), still, transfer, (0, 0)
    )
    pose1, asked1 = fits[1.0]
    clip.check = (head_diversity(pose1), head_diversity(clip.predict(asked1)))
    return clip


def onsets(prosody: np.ndarray, fps: float) -> np.ndarray:
    """Per frame: True where HeadMotion's stress onset first exceeds its accent threshold."""
    motion = M.HeadMotion(0.5, fps, 0)
    seen: list[float] = []
    brow = motion._brow

    def spy(t: float, onset: float, z: float) -> float:
        seen.append(onset)
        return brow(t, onset, z)

    motion._brow = spy  # type: ignore[method-assign]
    for level, pitch in prosody:
        motion.step(0.0, (float(level), float(pitch)))
    above = np.asarray(seen) > M.BROW_ACCENT
    return above & ~np.r_[False, above[:-1]]


def prosody_stats(clip: Clip) -> dict[str, float]:
    from scipy.signal import find_peaks

    level, pitch = clip.prosody[:, 0], clip.prosody[:, 1]
    speaking = level > np.percentile(level, 95) - M.LEVEL_RANGE_DB
    voiced = pitch[np.isfinite(pitch)]
    duration = len(level) / clip.fps
    peaks, _ = find_peaks(np.where(speaking, level, -99.0), prominence=4.0, distance=3)
    return {
        "onsets_s": float(onsets(clip.prosody, clip.fps).sum()) / duration,
        "syllables_s": len(peaks) / duration,
        "speech": float(speaking.mean()),
        "pitch_sd": float(voiced.std()),
        "pitch_range": float(np.percentile(voiced, 95) - np.percentile(voiced, 5)),
        "level_sd": float(level[speaking].std()),
    }


class AccentKicks(M.HeadMotion):
    """HeadMotion whose phrase posture is pushed further along the phrase's drawn direction
    by each stress onset, in proportion to its strength (onset times one plus the pitch's
    z-score above the running mean): the more and stronger the accents of a phrase, the
    further the head turns. ``phrase`` scales the posture taken at the phrase's start."""

    def __init__(self, amount: float, fps: float, seed: int, kick: float, phrase: float) -> None:
        super().__init__(amount, fps, seed)
        self.kick, self.phrase_share = kick, phrase
        self._direction = np.zeros(3)
        self._was_accent = False

    def _new_target(self) -> None:
        super()._new_target()
        self._direction = self._target / M.TURN_DEG
        self._target = self._target * self.phrase_share

    def _brow(self, t: float, onset: float, z: float) -> float:
        accent = onset > M.BROW_ACCENT
        if accent and not self._was_accent:
            push = M.TURN_DEG * self.kick * onset * (1.0 + max(z, 0.0)) * self._direction
            limit = M.TURN_DEG * M.TURN_CLIP
            self._target = np.clip(self._target + push, -limit, limit)
        self._was_accent = accent
        return super()._brow(t, onset, z)


def commands(clip: Clip, seed: int, motion: Callable[..., M.HeadMotion] = M.HeadMotion) -> Commands:
    m = motion(0.5, clip.fps, seed)
    rows = []
    for level, pitch in clip.prosody:
        o = m.step(0.0, (float(level), float(pitch)))
        rows.append((o.yaw, o.pitch, o.roll, o.dx, o.dy, o.scale))
    return np.asarray(rows)


def _kicks(kick: float, phrase: float) -> Callable[..., M.HeadMotion]:
    return lambda amount, fps, seed: AccentKicks(amount, fps, seed, kick, phrase)


def scaled(cmd: Commands, factor: np.ndarray | float) -> Commands:
    """Commands with every amplitude times ``factor`` (yaw and pitch through the engine's tanh)."""
    f = np.broadcast_to(np.asarray(factor, np.float64), (len(cmd),))
    out = cmd * f[:, None]
    cap = M.MAX_TURN_DEG
    for axis in (0, 1):
        inner = np.arctanh(np.clip(cmd[:, axis] / cap, -0.9999, 0.9999))
        out[:, axis] = cap * np.tanh(f * inner)
    return out


def running_rate(hits: np.ndarray, fps: float, r0: float, kind: str) -> np.ndarray:
    """Causal stress-onset rate per frame (onsets per second)."""
    dt = 1.0 / fps
    if kind == "cumulative":
        t = (np.arange(len(hits)) + 1) * dt
        return (np.cumsum(hits) + r0 * PRIOR_S) / (t + PRIOR_S)
    rate, k, out = r0, dt / RATE_TIME_S, []
    for h in hits:
        rate += (h / dt - rate) * k
        out.append(rate)
    return np.asarray(out)


def lopo(
    table: dict[tuple[float, int], dict[str, float]], names: list[str]
) -> tuple[tuple[float, int], dict[str, tuple[tuple[float, int], float]]]:
    """In-sample best key, and per held-out clip (key chosen on the other performances, ratio)."""

    def best(train: list[str]) -> tuple[float, int]:
        return min(table, key=lambda k: max(abs(math.log(table[k][c])) for c in train))

    held = {}
    for perf in sorted({PERFORMANCES[c] for c in names}):
        train = [c for c in names if PERFORMANCES[c] != perf]
        if not train:
            continue
        key = best(train)
        held.update({c: (key, table[key][c]) for c in names if PERFORMANCES[c] == perf})
    return best(names), held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=list(CLIPS))
    parser.add_argument("--seeds", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("AVATARLAB_PROGRESS", "0")
    clips = [load(name) for name in args.clips]
    names = [c.name for c in clips]
    print("transfer: measured pose per commanded unit (fitted on head_motion 0.5)")
    print(
        f"{'clip':16} {'yaw<-yaw':>8} {'yaw<-roll':>9} {'yaw<-dx':>8} {'pit<-pit':>8} "
        f"{'roll<-roll':>10}  div@1.0 actual predicted"
    )
    for c in clips:
        a = c.transfer
        print(
            f"{c.name:16} {a[0, 0]:8.2f} {a[2, 0]:9.2f} {a[3, 0]:8.1f} {a[1, 1]:8.2f} "
            f"{a[2, 2]:10.2f}  {c.check[0]:14.2f} {c.check[1]:9.2f}"
        )
    stats = {c.name: prosody_stats(c) for c in clips}
    print("prosody (real clip) against real head-motion diversity")
    print(f"{'clip':16} {'div':>5} " + " ".join(f"{s:>11}" for s in STATS))
    for c in clips:
        print(
            f"{c.name:16} {head_diversity(c.real):5.2f} "
            + " ".join(f"{stats[c.name][s]:11.2f}" for s in STATS)
        )
    seeds = range(args.seeds)
    base = {c.name: [commands(c, s) for s in seeds] for c in clips}
    print("seeds: current motion's ratio gen/real (surrogate): seed 0, median [10 %, 90 %]")
    for c in clips:
        r = [c.ratio(m) for m in base[c.name]]
        print(
            f"{c.name:16} {r[0]:5.2f}  {np.median(r):5.2f} [{np.percentile(r, 10):.2f}, "
            f"{np.percentile(r, 90):.2f}]"
        )
    print("whole-clip factor k * stat^p (p, k chosen leave-one-performance-out; seed 0)")
    for stat in STATS:
        table = {}
        for p in EXPONENTS:
            for i, k in enumerate(GAINS):
                table[(p, i)] = {
                    c.name: c.ratio(scaled(base[c.name][0], k * stats[c.name][stat] ** p))
                    for c in clips
                }
        ins, held = lopo(table, names)
        print(
            f"{stat:12} in-sample p={ins[0]:+.1f}: "
            + " ".join(f"{n[:6]} {table[ins][n]:.2f}" for n in names)
            + " | held-out: "
            + " ".join(
                f"{n[:6]} {held[n][1]:.2f} (p={held[n][0][0]:+.1f})" for n in names if n in held
            )
        )
    print("accent kicks (causal; kick, phrase share and overall gain k chosen LOPO; seed 0)")
    kicked = {
        (kick, phrase): {c.name: commands(c, 0, _kicks(kick, phrase)) for c in clips}
        for kick in (0.0, 0.3, 0.6, 1.0)
        for phrase in (0.0, 0.5, 1.0)
    }
    table = {}
    keys = list(kicked)
    for j, key in enumerate(keys):
        for i, k in enumerate(GAINS[::4]):
            table[(float(j), i)] = {c.name: c.ratio(scaled(kicked[key][c.name], k)) for c in clips}
    ins, held = lopo(table, names)
    print(
        f"{'kicks':12} in-sample kick, phrase={keys[int(ins[0])]}: "
        + " ".join(f"{n[:6]} {table[ins][n]:.2f}" for n in names)
        + " | held-out: "
        + " ".join(
            f"{n[:6]} {held[n][1]:.2f} {keys[int(held[n][0][0])]}" for n in names if n in held
        )
    )
    print("causal factor (rate / R0)^p of the running stress-onset rate (seed 0)")
    hits = {c.name: onsets(c.prosody, c.fps).astype(np.float64) for c in clips}
    for kind in ("running", "cumulative"):
        table = {}
        for p in EXPONENTS:
            for i, r0 in enumerate(R0S):
                table[(p, i)] = {}
                for c in clips:
                    rate = running_rate(hits[c.name], c.fps, float(r0), kind)
                    factor = (np.maximum(rate, 0.0) / r0) ** p
                    n = min(len(factor), len(base[c.name][0]))
                    table[(p, i)][c.name] = c.ratio(scaled(base[c.name][0][:n], factor[:n]))
        ins, held = lopo(table, names)
        print(
            f"{kind:12} in-sample p={ins[0]:+.1f} R0={R0S[ins[1]]:.2f}: "
            + " ".join(f"{n[:6]} {table[ins][n]:.2f}" for n in names)
            + " | held-out: "
            + " ".join(f"{n[:6]} {held[n][1]:.2f}" for n in names if n in held)
        )


if __name__ == "__main__":
    main()
