"""Motion metrics: head-motion diversity and the Beat Align Score.

**Head-motion diversity** (``head_diversity``): the standard deviation over frames
of each head-pose angle (yaw, pitch, roll in degrees, population std), averaged
over the three axes. SadTalker reports the std of head-motion features from
Hopenet (a ResNet-50 that regresses Euler angles from the face crop's
appearance); its evaluation code is not published, so the exact aggregation is
assumed to be the same as ours. Our pose is PnP of the mesh's rigid points
against a canonical 3D face (:mod:`avatarlab.face.pose`): expressions barely move
it and it has less per-frame jitter than a learned regressor, so values are
comparable in kind (degrees) but typically somewhat lower than Hopenet-based
numbers on the same video.

**Beat Align Score** (``beat_align``), as Bailando (Li et al., CVPR 2022,
``utils/beat_align_score.py``) computes it:

- motion beats: local minima (strict, ``scipy.signal.argrelextrema``) of the
  kinetic velocity smoothed by ``gaussian_filter(sigma=5)``; the velocity ``v[t]``
  is the motion between frames ``t`` and ``t + 1`` (``N - 1`` values). For dance it
  is the mean joint displacement; for a talking head our "joints" are the 68
  landmarks, in units of the clip's median inter-ocular distance, plus the
  head-pose angular speed in radians per frame when a pose is available;
- music beats: librosa beat tracking of the audio at the video frame rate, as the
  AIST++ music features Bailando reads (audio resampled to ``fps * 512`` Hz, onset
  strength with hop 512 so one onset frame is one video frame, ``beat_track`` with
  ``start_bpm=120, tightness=100``); beats at or beyond ``N - 1`` are dropped, as
  Bailando truncates the beat track to the velocity's length;
- ``BA = mean over music beats b of exp(-min_m (m - b)^2 / (2 sigma^2))`` with
  ``sigma = 3`` frames (the reference's ``/ 2 / 9``). Frames are counted at the
  video's rate (Bailando's 60 fps; 3 frames at 25 fps is 120 ms).

Speech has no regular beat; ``kind="onset"`` uses librosa's onset detection instead
of beat tracking, a common variant for talking heads (not Bailando's definition).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from avatarlab.errors import NoAudioError, OptionError
from avatarlab.face.landmarks68 import inter_ocular_distance
from avatarlab.metrics import _tracks
from avatarlab.metrics.base import (
    HIGHER,
    NEUTRAL,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)

#: Bailando's smoothing of the kinetic velocity and tolerance of the score, in frames.
VELOCITY_SIGMA = 5.0
BA_SIGMA = 3.0
#: librosa hop and beat-tracking settings of the AIST++ music features.
BEAT_HOP = 512
BEAT_START_BPM = 120.0
BEAT_TIGHTNESS = 100.0

BeatKind = Literal["beat", "onset"]


def head_pose_std(pose: np.ndarray) -> np.ndarray:
    """Std over frames of yaw, pitch, roll: ``(N, 3)`` degrees -> ``(3,)`` (NaN rows skipped)."""
    p = np.asarray(pose, dtype=np.float64)
    p = p[np.isfinite(p).all(1)]
    return p.std(0) if len(p) else np.full(3, np.nan)


def head_diversity(pose: np.ndarray) -> float:
    """Mean over the three axes of :func:`head_pose_std`, degrees."""
    return float(head_pose_std(pose).mean())


def kinetic_velocity(points68: np.ndarray, pose: np.ndarray | None = None) -> np.ndarray:
    """Motion speed between consecutive frames of a talking head, ``(N - 1,)`` float64.

    ``points68``: ``(N, 68, 2)`` pixels; the mean landmark displacement is divided by
    the clip's median inter-ocular distance. ``pose``: optional ``(N, 3)`` degrees;
    its angular speed (radians per frame, L2 over the three angles) is added. Frames
    without a face are interpolated linearly from their neighbours.
    """
    pts = _tracks.fill_gaps(np.asarray(points68, dtype=np.float64))
    scale = float(np.median(inter_ocular_distance(pts)))
    if not scale > 0:
        raise OptionError("degenerate landmarks: the eyes coincide")
    speed = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(-1) / scale
    if pose is not None:
        angles = np.radians(_tracks.fill_gaps(np.asarray(pose, dtype=np.float64)))
        if len(angles) != len(pts):
            raise OptionError(f"{len(angles)} pose rows for {len(pts)} landmark rows")
        speed = speed + np.linalg.norm(np.diff(angles, axis=0), axis=-1)
    return speed


def motion_beats(velocity: np.ndarray, sigma: float = VELOCITY_SIGMA) -> np.ndarray:
    """Frame indices of the strict local minima of the Gaussian-smoothed velocity."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.asarray(velocity, dtype=np.float64), sigma)
    # scipy.signal.argrelextrema(smooth, np.less): interior points below both neighbours
    inner = (smooth[1:-1] < smooth[:-2]) & (smooth[1:-1] < smooth[2:])
    return np.flatnonzero(inner) + 1


def audio_beats(
    audio: np.ndarray, sample_rate: int, fps: float, kind: BeatKind = "beat"
) -> np.ndarray:
    """Beat (or onset) positions of mono float audio, in video frames at ``fps``.

    The audio is resampled to ``round(fps * 512)`` Hz so that librosa's hop of 512
    samples is one video frame (AIST++'s ``SR = FPS * HOP_LENGTH``). Onset strength and
    beat tracking are librosa's, reimplemented in NumPy (:mod:`avatarlab.metrics._beats`:
    same frames, without Numba's compile time); ``kind="onset"`` uses librosa's peak picking.
    """
    from avatarlab.media import resample
    from avatarlab.metrics import _beats

    if kind not in ("beat", "onset"):
        raise OptionError(f"beat kind must be 'beat' or 'onset', got {kind!r}")
    rate = int(round(fps * BEAT_HOP))
    y = resample(np.asarray(audio, dtype=np.float32), sample_rate, rate)
    env = _beats.onset_strength(y, rate, BEAT_HOP)
    if kind == "onset":
        import librosa

        found = librosa.onset.onset_detect(onset_envelope=env, sr=rate, hop_length=BEAT_HOP)
    else:
        found = _beats.beat_track(env, rate, BEAT_HOP, BEAT_START_BPM, BEAT_TIGHTNESS)
    return np.asarray(found, dtype=np.int64)


def beat_align_score(
    music_beats: np.ndarray, motion_beats: np.ndarray, sigma: float = BA_SIGMA
) -> float:
    """Bailando's BA: mean over music beats of ``exp(-d^2 / (2 sigma^2))``, d to the nearest
    motion beat (frames). NaN without music beats; 0 without motion beats."""
    mb = np.asarray(music_beats, dtype=np.float64)
    db = np.asarray(motion_beats, dtype=np.float64)
    if mb.size == 0:
        return float("nan")
    if db.size == 0:
        return 0.0
    nearest = np.min((mb[:, None] - db[None, :]) ** 2, axis=1)
    return float(np.mean(np.exp(-nearest / (2 * sigma**2))))


def clip_beat_align(
    points68: np.ndarray,
    music_beats: np.ndarray,
    pose: np.ndarray | None = None,
    sigma: float = BA_SIGMA,
) -> tuple[float, np.ndarray]:
    """BA of one clip and its kinetic velocity ``(N - 1,)``; music beats >= N - 1 dropped."""
    velocity = kinetic_velocity(points68, pose)
    beats = np.asarray(music_beats)
    beats = beats[beats < len(velocity)]
    return beat_align_score(beats, motion_beats(velocity), sigma), velocity


def _optional_pose(track: object) -> np.ndarray | None:
    angles = getattr(track, "pose", None)
    return None if angles is None else _tracks.pose(angles, "head")


@register_metric("head_diversity")
class HeadDiversityMetric(_tracks.ClipSeries, Metric):
    """Std of head pose over frames (degrees), mean of yaw/pitch/roll; reference too if given."""

    name = "head_diversity"
    keys = {"head_diversity": HIGHER, "head_diversity_ref": NEUTRAL.only("with a reference")}
    requires = Requirements(reference=False, face_track=True)
    per_clip = True
    conventions = (
        "population std over frames of PnP head pose (yaw, pitch, roll, degrees), mean over "
        "the 3 axes, frames without a face skipped; not Hopenet (SadTalker); mean over clips"
    )

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        pose = _tracks.pose(ctx.pred_track, "predicted")
        out = {"head_diversity": head_diversity(pose)}
        self._last = {"yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2]}
        if ctx.ref_track is not None:
            out["head_diversity_ref"] = head_diversity(_tracks.pose(ctx.ref_track, "reference"))
        self.clips.append(out)

    def compute(self) -> dict[str, float]:
        """Mean over clips; ``*_ref`` only when reference tracks were given."""
        return _tracks.mean_over_clips(self.clips, ("head_diversity",))


@register_metric("beat_align")
class BeatAlignMetric(Metric):
    """Beat Align Score (Bailando) of the predicted head motion against the audio's beats."""

    name = "beat_align"
    keys = {"beat_align": HIGHER, "beat_align_ref": NEUTRAL.only("with a reference")}
    requires = Requirements(reference=False, audio=True, face_track=True)
    per_clip = True
    conventions = (
        "Bailando BA: motion beats = minima of gaussian(sigma=5) kinetic velocity of the 68 "
        "landmarks (/ inter-ocular distance) + head-pose speed (rad); librosa beats at video "
        "fps (hop 512, tightness 100); sigma = 3 frames; mean over clips"
    )

    def __init__(self, kind: BeatKind = "beat", sigma: float = BA_SIGMA) -> None:
        if kind not in ("beat", "onset"):
            raise OptionError(f"beat kind must be 'beat' or 'onset', got {kind!r}")
        self.kind = kind
        self.sigma = sigma
        self.clips: list[dict[str, float]] = []
        self._last: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.clips = []
        self._last = {}

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if ctx.audio is None:
            raise NoAudioError("the Beat Align Score needs the audio (EvalContext.audio)")
        beats = audio_beats(ctx.audio, ctx.sample_rate, ctx.fps, self.kind)
        points = _tracks.landmarks68(ctx.pred_track, "predicted")
        score, velocity = clip_beat_align(points, beats, _optional_pose(ctx.pred_track), self.sigma)
        out = {"beat_align": score}
        self._last = {"motion_velocity": np.append(velocity, np.nan)}
        if ctx.ref_track is not None:
            ref_points = _tracks.landmarks68(ctx.ref_track, "reference")
            out["beat_align_ref"], _ = clip_beat_align(
                ref_points, beats, _optional_pose(ctx.ref_track), self.sigma
            )
        self.clips.append(out)

    def compute(self) -> dict[str, float]:
        """Mean over clips; ``*_ref`` only when reference tracks were given."""
        return _tracks.mean_over_clips(self.clips, ("beat_align",))

    def per_frame(self) -> dict[str, np.ndarray]:
        """Kinetic velocity of the last clip, ``(N,)`` (the last frame is NaN)."""
        return dict(self._last)


__all__ = [
    "BeatAlignMetric",
    "HeadDiversityMetric",
    "audio_beats",
    "beat_align_score",
    "clip_beat_align",
    "head_diversity",
    "head_pose_std",
    "kinetic_velocity",
    "motion_beats",
]
