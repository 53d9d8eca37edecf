"""Acoustic fallback: voice activity and spectral shape -> coarse mouth parameters.

For speech that no phone recogniser covers (other languages, singing, noise), the
mouth follows the sound itself, at 100 feature frames per second (10 ms hop):

- voice activity from Silero VAD (its model ships inside the ``silero-vad``
  package; 32 ms blocks) or, without torch, an energy detector over a tracked
  noise floor;
- level (dBFS), band energies, spectral flatness, the share of energy above 4 kHz
  (frication), and two formant-like centroids: 250-1000 Hz (tracks F1, high for
  open vowels) and 900-2800 Hz (tracks F2, low for rounded vowels).

The mapping: ``jaw_open`` grows with the level relative to the speaker's running
peak and with the F1 centroid, shrinks for fricatives; ``lip_spread`` follows the
F2 centroid (low = rounded); ``lip_closed`` rises as the mouth nears shut and
outside speech. It is coarse (no bilabial detection) and says so: ``source ==
"acoustic"``.

Everything runs causally with a fixed look-ahead, so :class:`StreamingMouth`
(chunks in, frames out) and :func:`acoustic_track` (whole clip) give the same
numbers when they start from the same level reference. Latency of a frame, from
the time it shows (its midpoint) to when the audio that completes it has arrived:
at most :data:`LOOKAHEAD_S` = 62 ms (32 ms VAD block + 20 ms smoothing + 10 ms
interpolation), plus the caller's chunk size.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from avatarlab.constants import DEFAULT_FPS
from avatarlab.errors import OptionError
from avatarlab.media import SPEECH_RATE, resample
from avatarlab.speech.visemes import MOUTH_PARAMS, MouthTrack, n_frames

#: Feature frames per second and the STFT geometry at 16 kHz.
FEATURE_RATE = 100
HOP = SPEECH_RATE // FEATURE_RATE  # 160 samples = 10 ms
WINDOW = 400  # 25 ms, centred on the frame time
N_FFT = 512
#: Silero VAD block at 16 kHz (32 ms).
VAD_BLOCK = 512
#: Band edges (Hz) of :attr:`AcousticFeatures.bands_db`.
BAND_EDGES_HZ: tuple[float, ...] = (0.0, 300.0, 800.0, 1500.0, 2500.0, 4000.0, 8000.0)
F1_BAND_HZ = (250.0, 1000.0)
F2_BAND_HZ = (900.0, 2800.0)
FRICATION_HZ = 4000.0
#: Half-width (feature frames) of the Hann smoothing applied to mouth parameters.
SMOOTH_HALF = 2
#: Worst-case delay from a frame's time to the arrival of the audio that completes it.
LOOKAHEAD_S = (VAD_BLOCK / SPEECH_RATE) + SMOOTH_HALF / FEATURE_RATE + 1 / FEATURE_RATE
#: Level normalisation: dynamic range mapped onto the jaw, and how fast the running
#: speech-peak reference decays (dB per second) when the speaker gets quieter.
LEVEL_RANGE_DB = 30.0
PEAK_DECAY_DB_S = 2.0
DEFAULT_REFERENCE_DB = -20.0
MIN_REFERENCE_DB = -50.0
#: Energy VAD: prior noise floor, how fast the floor may rise, speech margin over it.
ENERGY_FLOOR_DB = -50.0
ENERGY_FLOOR_RISE_DB_S = 3.0
ENERGY_MARGIN_DB = 6.0
ENERGY_SPAN_DB = 10.0
#: Margin (seconds) added on each side of a voice-activity span by :func:`speech_spans`:
#: VAD blocks are 32 ms, and a word's faint edges (an initial s, a final t) may score low.
SPEECH_PAD_S = 0.15
_EPS = 1e-10

#: Zeros appended at the end of a stream so every frame up to the end is computable.
_FLUSH_PAD = VAD_BLOCK + WINDOW + (SMOOTH_HALF + 2) * HOP

_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SPEECH_RATE)
_HANN = np.hanning(WINDOW + 2)[1:-1].astype(np.float64)
_SMOOTH = np.hanning(2 * SMOOTH_HALF + 3)[1:-1]
_SMOOTH /= _SMOOTH.sum()


@dataclass(frozen=True, eq=False)
class AcousticFeatures:
    """Frame features at :data:`FEATURE_RATE` Hz; frame ``t`` is centred at ``t / 100`` s.

    Attributes:
        vad: speech probability in [0, 1], ``(T,)``.
        level_db: frame RMS in dBFS, ``(T,)``.
        bands_db: energy per band of :data:`BAND_EDGES_HZ` in dB, ``(T, 6)``.
        flatness: spectral flatness in [0, 1] (1 = noise-like), ``(T,)``.
        frication: share of energy above 4 kHz, ``(T,)``.
        f1_hz: power centroid of 250-1000 Hz, ``(T,)``.
        f2_hz: power centroid of 900-2800 Hz, ``(T,)``.
        vad_backend: ``"silero"`` or ``"energy"``.
    """

    vad: np.ndarray
    level_db: np.ndarray
    bands_db: np.ndarray
    flatness: np.ndarray
    frication: np.ndarray
    f1_hz: np.ndarray
    f2_hz: np.ndarray
    vad_backend: str

    def __len__(self) -> int:
        return len(self.level_db)

    def speech_segments(
        self, threshold: float = 0.5, min_gap_s: float = 0.2
    ) -> list[tuple[float, float]]:
        """Speech intervals (start, end) in seconds; gaps shorter than ``min_gap_s`` are bridged."""
        return speech_segments(self.vad, threshold, min_gap_s)


def speech_segments(
    vad: np.ndarray, threshold: float = 0.5, min_gap_s: float = 0.2
) -> list[tuple[float, float]]:
    """Intervals (seconds) where a 100 Hz speech probability exceeds ``threshold``."""
    active = np.concatenate([[False], np.asarray(vad) > threshold, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))
    spans = [
        (s / FEATURE_RATE, e / FEATURE_RATE) for s, e in zip(edges[::2], edges[1::2], strict=True)
    ]
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and s - merged[-1][1] < min_gap_s:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _band_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    bands = np.stack(
        [
            (lo <= _FREQS) & (hi > _FREQS)
            for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:], strict=True)
        ]
    ).astype(np.float64)
    f1 = ((F1_BAND_HZ[0] <= _FREQS) & (F1_BAND_HZ[1] > _FREQS)).astype(np.float64)
    f2 = ((F2_BAND_HZ[0] <= _FREQS) & (F2_BAND_HZ[1] > _FREQS)).astype(np.float64)
    high = (_FREQS >= FRICATION_HZ).astype(np.float64)
    return bands, f1, f2, high


_BANDS, _F1, _F2, _HIGH = _band_masks()


def _spectral(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Features of windowed frames ``(n, WINDOW)`` (16 kHz samples)."""
    power = np.abs(np.fft.rfft(frames * _HANN, N_FFT, axis=1)) ** 2  # (n, 257)
    total = power.sum(axis=1) + _EPS
    rms = np.sqrt(np.mean(frames**2, axis=1))
    band_e = power @ _BANDS.T
    f1_e, f2_e = power @ _F1, power @ _F2
    log_p = np.log(power[:, 1:] + _EPS)
    return {
        "level_db": 20.0 * np.log10(rms + 1e-5),
        "bands_db": 10.0 * np.log10(band_e + _EPS),
        "flatness": np.exp(log_p.mean(axis=1)) / (power[:, 1:].mean(axis=1) + _EPS),
        "frication": (power @ _HIGH) / total,
        "f1_hz": (power @ (_F1 * _FREQS)) / (f1_e + _EPS),
        "f2_hz": (power @ (_F2 * _FREQS)) / (f2_e + _EPS),
    }


@functools.lru_cache(maxsize=1)
def _silero_loader() -> Callable[[], Any] | None:
    """``silero_vad.load_silero_vad`` (its model ships in the package), or ``None``."""
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        return None
    return load_silero_vad  # type: ignore[no-any-return]


class _Vad:
    """Block-wise speech probability: Silero when available, else an energy detector."""

    def __init__(self, backend: str = "auto", replay: np.ndarray | None = None) -> None:
        if backend not in ("auto", "silero", "energy"):
            raise OptionError(f"unknown VAD backend {backend!r}: use auto, silero or energy")
        self.replay = replay  # block probabilities computed earlier on the same audio
        if replay is not None:
            self.model, self.backend = None, backend
            return
        loader = None if backend == "energy" else _silero_loader()
        with warnings.catch_warnings():
            # silero-vad loads its model through two deprecated calls
            # (importlib.resources.path, torch.jit.load): nothing a user can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = loader() if loader is not None else None
        if backend == "silero" and self.model is None:
            raise OptionError(
                "Silero VAD needs torch and silero-vad: `pip install 'avatarlab[neural]'`, "
                "or use the energy VAD"
            )
        self.backend = "silero" if self.model is not None else "energy"
        self.floor_db = ENERGY_FLOOR_DB

    def blocks(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of consecutive complete blocks ``(n, VAD_BLOCK)``."""
        blocks = audio.reshape(-1, VAD_BLOCK)
        if self.replay is not None:
            out, self.replay = self.replay[: len(blocks)], self.replay[len(blocks) :]
            return np.pad(out, (0, len(blocks) - len(out)))
        if self.model is None:
            return self._energy(blocks)
        import torch

        out = np.empty(len(blocks), np.float64)
        with torch.no_grad():
            for i, block in enumerate(blocks):
                out[i] = float(
                    self.model(torch.from_numpy(block.astype(np.float32))[None], SPEECH_RATE)
                )
        return out

    def _energy(self, blocks: np.ndarray) -> np.ndarray:
        level = 10.0 * np.log10(np.mean(blocks.astype(np.float64) ** 2, axis=1) + _EPS)
        rise = ENERGY_FLOOR_RISE_DB_S * VAD_BLOCK / SPEECH_RATE
        out = np.empty(len(level))
        for i, db in enumerate(level):
            self.floor_db = min(self.floor_db + rise, db)
            out[i] = (db - self.floor_db - ENERGY_MARGIN_DB) / ENERGY_SPAN_DB
        return np.clip(out, 0.0, 1.0)


def _mouth_rows(
    feats: dict[str, np.ndarray], vad: np.ndarray, reference_db: np.ndarray
) -> np.ndarray:
    """Raw (unsmoothed) mouth parameters ``(n, K)`` from frame features."""
    gate = np.clip((vad - 0.2) / 0.5, 0.0, 1.0)
    loud = np.clip((feats["level_db"] - (reference_db - LEVEL_RANGE_DB)) / LEVEL_RANGE_DB, 0.0, 1.0)
    fric = np.clip((feats["frication"] - 0.25) / 0.4, 0.0, 1.0)
    f1n = np.clip((feats["f1_hz"] - 350.0) / 400.0, 0.0, 1.0)
    jaw = gate * loud**1.2 * (0.55 + 0.45 * f1n) * (1.0 - 0.6 * fric)
    voiced = gate * loud * (1.0 - fric)
    spread = np.clip((feats["f2_hz"] - 1500.0) / 500.0, -1.0, 1.0) * np.clip(voiced * 1.5, 0.0, 1.0)
    closed = np.clip(1.0 - jaw / 0.08, 0.0, 1.0)
    raise_ = np.clip(0.25 * jaw + 0.3 * fric * gate, 0.0, 1.0)
    teeth = np.clip(np.maximum(fric * gate, 0.6 * jaw), 0.0, 1.0)
    return np.stack([jaw, spread, closed, raise_, teeth], axis=1)  # MOUTH_PARAMS order


class StreamingMouth:
    """Audio chunks in, mouth frames out, with bounded latency (acoustic/VAD path).

    Feed float32 mono chunks of any length with :meth:`push`; each call returns the
    frames completed so far (possibly none), as a :class:`MouthTrack` whose
    ``start_frame`` continues the previous one. :meth:`flush` ends the stream and
    returns the frames up to the end of the audio. A frame is emitted once the audio
    reaches its midpoint plus at most :data:`LOOKAHEAD_S` (62 ms).

    Args:
        sample_rate: rate of the chunks (resampled to 16 kHz with a streaming soxr).
        fps: output frame rate.
        vad: ``"auto"`` (Silero if installed, else energy), ``"silero"`` or ``"energy"``.
        reference_db: initial speech-peak level in dBFS (the jaw's full scale); the
            reference then follows louder speech immediately and decays slowly.
    """

    def __init__(
        self,
        sample_rate: int = SPEECH_RATE,
        fps: float = DEFAULT_FPS,
        vad: str = "auto",
        reference_db: float | None = None,
    ) -> None:
        if fps <= 0 or sample_rate <= 0:
            raise OptionError("fps and sample_rate must be positive")
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        self._vad = _Vad(vad)
        self._resampler: Any = None
        if self.sample_rate != SPEECH_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, SPEECH_RATE, 1, dtype="float32")
        # 16 kHz samples, with WINDOW/2 zeros in front so frame t starts at t * HOP.
        self._audio = np.zeros(WINDOW // 2, np.float32)
        self._offset = 0  # absolute index (in padded samples) of self._audio[0]
        self._received = 0  # 16 kHz samples received
        self._vad_probs = np.zeros(0)  # probabilities of blocks _vad_first.._vad_done-1
        self._vad_first = 0
        self._vad_done = 0  # complete VAD blocks processed
        self._vad_tail = np.zeros(0, np.float32)
        self._frames_done = 0  # feature frames computed
        self._reference = DEFAULT_REFERENCE_DB if reference_db is None else float(reference_db)
        self._decay = PEAK_DECAY_DB_S / FEATURE_RATE
        self._raw = np.zeros((0, len(MOUTH_PARAMS)))  # raw rows not yet smoothed out
        self._raw_start = 0  # feature-frame index of self._raw[0]
        self._smoothed = np.zeros((0, len(MOUTH_PARAMS)))
        self._smoothed_start = 0
        self._emitted = 0  # output frames emitted

    @property
    def vad_backend(self) -> str:
        """``"silero"`` or ``"energy"``."""
        return self._vad.backend

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def push(self, chunk: np.ndarray) -> MouthTrack:
        """Add audio (float32 mono at ``sample_rate``); return the frames now complete."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self._resampler is not None:
            chunk = self._resampler.resample_chunk(chunk, last=False)
        return self._advance(chunk, final=False)

    def flush(self) -> MouthTrack:
        """End of stream: return the remaining frames up to the end of the audio."""
        tail = np.zeros(0, np.float32)
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        return self._advance(tail, final=True)

    def _advance(self, chunk: np.ndarray, final: bool) -> MouthTrack:
        self._received += len(chunk)
        self._audio = np.concatenate([self._audio, chunk])
        total_frames = n_frames(self._received / SPEECH_RATE, self.fps) if final else None
        if final:  # pad so every frame up to the end is computable
            pad = _FLUSH_PAD
            self._audio = np.concatenate([self._audio, np.zeros(pad, np.float32)])
            self._vad_tail = np.concatenate([self._vad_tail, chunk, np.zeros(pad, np.float32)])
        else:
            self._vad_tail = np.concatenate([self._vad_tail, chunk])
        self._run_vad()
        self._run_features()
        self._run_smoothing()
        return self._emit(total_frames)

    def _run_vad(self) -> None:
        usable = len(self._vad_tail) // VAD_BLOCK * VAD_BLOCK
        if usable:
            probs = self._vad.blocks(self._vad_tail[:usable])
            self._vad_probs = np.concatenate([self._vad_probs, probs])
            self._vad_done += usable // VAD_BLOCK
            self._vad_tail = self._vad_tail[usable:]

    def _run_features(self) -> None:
        end_abs = self._offset + len(self._audio)  # padded-sample index after the last sample
        by_audio = (end_abs - WINDOW) // HOP + 1  # frames whose window is complete
        by_vad = math.ceil(self._vad_done * VAD_BLOCK / HOP)  # frames whose VAD block is done
        stop = max(self._frames_done, min(by_audio, by_vad))
        if stop == self._frames_done:
            return
        idx = np.arange(self._frames_done, stop)
        starts = idx * HOP - self._offset
        frames = self._audio[starts[:, None] + np.arange(WINDOW)[None, :]].astype(np.float64)
        feats = _spectral(frames)
        vad = self._vad_probs[(idx * HOP) // VAD_BLOCK - self._vad_first]
        level = np.where(vad > 0.5, feats["level_db"], -np.inf)
        # Running peak with linear decay: max over s <= t of level_s - decay * (t - s).
        steps = np.arange(1, len(idx) + 1) * self._decay
        ref = np.maximum.accumulate(np.maximum(level + steps, self._reference)) - steps
        ref = np.maximum(ref, MIN_REFERENCE_DB)
        self._reference = float(ref[-1])
        rows = _mouth_rows(feats, vad, ref)
        self._raw = np.concatenate([self._raw, rows])
        self._frames_done = stop
        drop = (self._frames_done * HOP) // VAD_BLOCK - self._vad_first
        self._vad_probs, self._vad_first = self._vad_probs[drop:], self._vad_first + drop
        keep = max(0, self._frames_done * HOP - self._offset)
        self._audio, self._offset = self._audio[keep:], self._offset + keep

    def _run_smoothing(self) -> None:
        # Smoothed frame t needs raw frames t-SMOOTH_HALF .. t+SMOOTH_HALF (edge-clamped).
        first = self._smoothed_start + len(self._smoothed)
        last = self._frames_done - SMOOTH_HALF  # exclusive
        if last <= first:
            return
        lo = self._raw_start
        padded = self._raw
        if lo == 0 and first < SMOOTH_HALF:  # clamp at the start of the stream
            padded = np.concatenate([np.repeat(self._raw[:1], SMOOTH_HALF, axis=0), self._raw])
            lo = -SMOOTH_HALF
        width = 2 * SMOOTH_HALF + 1
        take = np.arange(first, last)[:, None] - SMOOTH_HALF - lo + np.arange(width)[None, :]
        out = np.einsum("nwk,w->nk", padded[take], _SMOOTH)
        self._smoothed = np.concatenate([self._smoothed, out])
        drop = max(0, (last - SMOOTH_HALF) - self._raw_start)
        self._raw, self._raw_start = self._raw[drop:], self._raw_start + drop

    def _emit(self, total_frames: int | None) -> MouthTrack:
        # Output frame k shows time (k + 0.5) / fps: interpolate smoothed frames.
        available = self._smoothed_start + len(self._smoothed)  # smoothed frames 0..available-1
        k_stop = math.floor(((available - 1) / FEATURE_RATE) * self.fps - 0.5) + 1
        if total_frames is not None:
            k_stop = min(max(k_stop, self._emitted), total_frames)
        k = np.arange(self._emitted, max(self._emitted, k_stop))
        pos = (k + 0.5) / self.fps * FEATURE_RATE - self._smoothed_start
        if len(k):
            pos = np.clip(pos, 0.0, len(self._smoothed) - 1)
            i0 = np.floor(pos).astype(np.int64)
            i1 = np.minimum(i0 + 1, len(self._smoothed) - 1)
            frac = (pos - i0)[:, None]
            rows = self._smoothed[i0] * (1.0 - frac) + self._smoothed[i1] * frac
        else:
            rows = np.zeros((0, len(MOUTH_PARAMS)))
        track = MouthTrack(rows.astype(np.float32), self.fps, "acoustic", self._emitted, None)
        self._emitted += len(k)
        needed = math.floor((self._emitted + 0.5) / self.fps * FEATURE_RATE) - self._smoothed_start
        if needed > 0:
            self._smoothed = self._smoothed[needed:]
            self._smoothed_start += needed
        return track


def acoustic_features(
    audio: np.ndarray, sample_rate: int = SPEECH_RATE, vad: str = "auto"
) -> AcousticFeatures:
    """Frame features of a whole clip at 100 Hz (frame ``t`` centred at ``t / 100`` s).

    Args:
        audio: float32 mono ``(N,)`` in [-1, 1].
        sample_rate: Hz; resampled to 16 kHz when different.
        vad: ``"auto"``, ``"silero"`` or ``"energy"``.
    """
    return _analyse(_mono16k(audio, sample_rate), vad)[0]


def _analyse(x: np.ndarray, vad: str) -> tuple[AcousticFeatures, np.ndarray]:
    """Features of 16 kHz audio, and the VAD block probabilities over the audio
    plus the stream's end padding (what :class:`StreamingMouth` would compute)."""
    count = math.ceil(len(x) / HOP)
    padded = np.concatenate([np.zeros(WINDOW // 2), x, np.zeros(WINDOW)])
    feats = _spectral(padded[np.arange(count)[:, None] * HOP + np.arange(WINDOW)[None, :]])
    detector = _Vad(vad)
    stream = np.concatenate([x, np.zeros(_FLUSH_PAD, np.float32)])
    blocks = detector.blocks(stream[: len(stream) // VAD_BLOCK * VAD_BLOCK])
    probs = blocks[(np.arange(count) * HOP) // VAD_BLOCK]
    features = AcousticFeatures(
        vad=probs.astype(np.float32),
        level_db=feats["level_db"].astype(np.float32),
        bands_db=feats["bands_db"].astype(np.float32),
        flatness=feats["flatness"].astype(np.float32),
        frication=feats["frication"].astype(np.float32),
        f1_hz=feats["f1_hz"].astype(np.float32),
        f2_hz=feats["f2_hz"].astype(np.float32),
        vad_backend=detector.backend,
    )
    return features, blocks


def voice_activity(
    audio: np.ndarray, sample_rate: int = SPEECH_RATE, vad: str = "auto"
) -> np.ndarray:
    """Speech probability at 100 Hz, ``(T,)`` float32 (frame ``t`` at ``t / 100`` s)."""
    return acoustic_features(audio, sample_rate, vad).vad


def speech_spans(
    audio: np.ndarray,
    sample_rate: int = SPEECH_RATE,
    vad: str = "auto",
    pad_s: float = SPEECH_PAD_S,
) -> list[tuple[float, float]]:
    """Where someone speaks: voice-activity intervals (seconds), widened by ``pad_s``.

    Runs the VAD alone (no spectral features), in blocks of 32 ms, so memory stays
    flat on long clips. Digital silence and faint noise give ``[]``.
    """
    x = _mono16k(audio, sample_rate)
    if not len(x):
        return []
    blocks = _Vad(vad).blocks(np.pad(x, (0, -len(x) % VAD_BLOCK)))
    per_frame = blocks[(np.arange(math.ceil(len(x) / HOP)) * HOP) // VAD_BLOCK]
    duration = len(x) / SPEECH_RATE
    spans = speech_segments(per_frame, min_gap_s=2.0 * pad_s)
    return [(max(0.0, s - pad_s), min(duration, e + pad_s)) for s, e in spans]


def speech_reference_db(features: AcousticFeatures) -> float:
    """The level (dBFS) that maps to a full jaw: the 95th percentile over speech frames."""
    speech = features.level_db[features.vad > 0.5]
    return float(np.percentile(speech, 95)) if len(speech) else DEFAULT_REFERENCE_DB


def acoustic_track(
    audio: np.ndarray, sample_rate: int = SPEECH_RATE, fps: float = DEFAULT_FPS, vad: str = "auto"
) -> MouthTrack:
    """Mouth parameters from the sound alone (any language), ``n_frames(duration, fps)`` rows.

    Runs :class:`StreamingMouth` over the whole clip, seeded with the clip's own
    speech level (:func:`speech_reference_db`), so offline and live output agree.
    """
    x = _mono16k(audio, sample_rate)
    features, blocks = _analyse(x, vad)
    stream = StreamingMouth(SPEECH_RATE, fps, "energy", speech_reference_db(features))
    stream._vad = _Vad(features.vad_backend, replay=blocks)  # VAD runs once per clip
    return MouthTrack.concatenate([stream.push(x), stream.flush()])


def _mono16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise OptionError(f"audio must be mono (N,), got shape {x.shape}: average the channels")
    return resample(x, sample_rate, SPEECH_RATE) if sample_rate != SPEECH_RATE else x
