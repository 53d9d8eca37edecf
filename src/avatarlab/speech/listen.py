"""Live listening: microphone chunks in, utterance events with English words out.

A :class:`Listener` follows one user talking to the avatar (one browser
microphone). Each :meth:`Listener.push` takes a chunk of microphone audio, and
optionally what the avatar was playing over the same span, and returns the
events that chunk completed:

- ``speech_start`` once speech is confirmed (``min_speech_s`` of voiced audio:
  about ``min_speech_s`` + 40 ms after the voice starts, for barge-in);
- ``partial`` with the running PocketSphinx hypothesis, every
  ``partial_every_s`` while it changes (the decoder is fed as audio arrives);
- ``final`` with the whole text once ``min_silence_s`` of silence ends the
  utterance (or it reaches ``max_utterance_s``), then ``speech_end``.

Voice activity comes from Silero VAD (ONNX when onnxruntime is installed, one
thread per listener; else TorchScript) in 32 ms blocks at 16 kHz, or from the
energy detector of :mod:`avatarlab.speech.features`. Words come from the bundled
US-English trigram model, first search pass only with at most
:data:`MAX_HMM_PER_FRAME` active HMMs (the same words on our clips at about a
third of the default cost). Decoders are slow to create (0.4 s, 90 MB), so a
listener borrows one from a process-wide pool for the length of an utterance
only, and resets its front end first: a decoder serves one listener at a time.

Echo: the microphone may hear the avatar through the speakers. When ``played``
is given, a band-envelope echo model (16 bands, 10 ms frames) decides for every
VAD block how much of the microphone's energy the played audio explains. The
delay (0-300 ms) is the peak of the normalised cross-correlation of the two
envelopes over the last second; the echo's shape is the played band power at
that delay with a 1.5 dB / 10 ms reverberant tail; the per-band coupling gain is
the 90th percentile of mic / shape power ratios over the last 3 s, the mic's
noise floor removed. The model learns only while nobody speaks, or while the
envelopes show the echo dominating the mic (correlation >= 0.8): a user talking
over the avatar does not teach it that their voice is echo, and a false start on
loud echo does not freeze it. Until it has learnt, it assumes the worst (any
delay, echo as loud as the played audio). A block at least ``echo_threshold``
explained is not speech: the avatar's own voice never starts an utterance, while
a user talking over it does (when about as loud as the echo or louder). The echo
is not removed from what the recogniser hears.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.media import SPEECH_RATE
from avatarlab.speech import align, features

#: Silero VAD block at 16 kHz (32 ms): every decision covers one block.
BLOCK = features.VAD_BLOCK
BLOCK_S = BLOCK / SPEECH_RATE
#: A block is voiced at this speech probability; inside an utterance, above the lower one.
SPEECH_ON = 0.5
SPEECH_OFF = 0.35
#: A speech candidate is dropped after this much silence before it is confirmed.
CANDIDATE_GAP_S = 0.1
#: Audio before the first voiced block that the decoder also hears (a word's faint onset).
PREROLL_S = 0.2
#: Decoder search: first pass only, and a cap on active HMMs per frame (the default,
#: 30000, costs 3x the CPU for the same words on the shared clips).
MAX_HMM_PER_FRAME = 3000
_DECODER_CONFIG: dict[str, Any] = {**align._FAST_ASR_CONFIG, "maxhmmpf": MAX_HMM_PER_FRAME}
#: Idle decoders kept for reuse by the next utterance of any listener.
POOL_SIZE = 4

EventKind = Literal["speech_start", "partial", "final", "speech_end"]


@dataclass(frozen=True)
class ListenOptions:
    """How a :class:`Listener` cuts and transcribes utterances.

    Attributes:
        min_silence_s: silence that ends an utterance.
        min_speech_s: voiced audio needed to confirm speech; shorter bursts
            (clicks, coughs) are ignored. It sets the barge-in latency.
        max_utterance_s: an utterance is cut (and finalised) at this length; a voice
            that goes on starts the next one.
        partial_every_s: how often the running hypothesis is read while speaking.
        vad: ``"silero"``, ``"energy"`` or ``"auto"`` (Silero when installed).
        echo_threshold: share (0-1) of a block's microphone energy the played audio
            must explain for the block to count as echo, not speech.
        transcribe: run PocketSphinx; ``False`` gives the same events with empty text.
    """

    min_silence_s: float = 0.5
    min_speech_s: float = 0.25
    max_utterance_s: float = 15.0
    partial_every_s: float = 0.5
    vad: str = "auto"
    echo_threshold: float = 0.6
    transcribe: bool = True

    def __post_init__(self) -> None:
        if self.vad not in ("auto", "silero", "energy"):
            raise OptionError(f"unknown VAD {self.vad!r}: use auto, silero or energy")
        if not 0.0 < self.echo_threshold <= 1.0:
            raise OptionError(f"echo_threshold must be in (0, 1], got {self.echo_threshold}")
        for name in ("min_silence_s", "min_speech_s", "partial_every_s"):
            if getattr(self, name) <= 0:
                raise OptionError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_utterance_s < 2 * self.min_speech_s:
            raise OptionError(
                f"max_utterance_s ({self.max_utterance_s}) must be at least twice min_speech_s"
            )


@dataclass(frozen=True)
class ListenEvent:
    """One step of an utterance.

    Attributes:
        kind: ``"speech_start"``, ``"partial"``, ``"final"`` or ``"speech_end"``.
        text: the words heard so far (``partial``) or in all (``final``, empty when
            nothing was recognised); empty for the other kinds.
        start_s: stream time (seconds since the listener started) of the utterance's
            first voiced block.
        end_s: ``speech_start``: when speech was confirmed; ``partial``: the end of
            the audio decoded; ``final`` and ``speech_end``: the end of the last
            voiced block.
    """

    kind: EventKind
    text: str
    start_s: float
    end_s: float


# ----------------------------------------------------------------------------- decoders


def _new_decoder() -> Any:
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:  # checked in Listener.__init__; kept for a clear message
        raise AvatarLabError(_NO_SPHINX) from exc
    return Decoder(samprate=SPEECH_RATE, loglevel="FATAL", **_DECODER_CONFIG)


_NO_SPHINX = (
    "PocketSphinx is not installed: `pip install 'avatarlab[speech]'` to transcribe, "
    "or pass ListenOptions(transcribe=False)"
)


class _DecoderPool:
    """Idle decoders shared by all listeners; each is lent to one listener at a time."""

    def __init__(self, keep: int = POOL_SIZE) -> None:
        self._free: list[Any] = []
        self._keep = keep
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        with self._lock:
            decoder = self._free.pop() if self._free else None
        if decoder is None:
            decoder = _new_decoder()
        decoder.reinit_feat()  # no noise or cepstral estimate carried over from another voice
        return decoder

    def release(self, decoder: Any) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(decoder)

    def preload(self, count: int = 1) -> None:
        """Create decoders now, so the first utterances do not wait for them."""
        made = [self.acquire() for _ in range(count)]
        for decoder in made:
            self.release(decoder)


_POOL = _DecoderPool()


def preload_decoders(count: int = 1) -> None:
    """Create ``count`` PocketSphinx decoders now (0.4 s CPU each), e.g. at server start.

    Otherwise the first utterance of the process waits for one before its first partial.
    """
    _POOL.preload(count)


def _words(hypstr: str) -> str:
    """Recognised words without fillers (``<sil>``, ``[NOISE]``, ...) or variant marks."""
    words = (align._base_word(w) for w in hypstr.split())
    return " ".join(w for w in words if w and not align._is_filler(w))


# ----------------------------------------------------------------------------- VAD


def _load_silero() -> Any:
    """Silero VAD, ONNX (single-threaded session) when onnxruntime is there, or ``None``."""
    loader: Callable[..., Any] | None = features._silero_loader()  # load_silero_vad
    if loader is None:
        return None
    onnx = importlib.util.find_spec("onnxruntime") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return loader(onnx=True) if onnx else loader()


#: Lowest noise floor (dBFS) of the energy VAD: speech must pass about -49 dBFS.
ENERGY_MIN_FLOOR_DB = -60.0


class _BlockVad:
    """Speech probability of consecutive 512-sample blocks (16 kHz), stateful."""

    def __init__(self, backend: str) -> None:
        self.model = None if backend == "energy" else _load_silero()
        if backend == "silero" and self.model is None:
            raise OptionError(
                "Silero VAD needs torch and silero-vad: `pip install 'avatarlab[neural]'`, "
                "or use vad='energy'"
            )
        self.backend = "silero" if self.model is not None else "energy"
        self._energy = features._Vad("energy")

    def probability(self, block: np.ndarray) -> float:
        if self.model is None:
            # A muted browser mic sends digital zeros: without a bound the floor would
            # sink there, and the first room noise would read as speech for seconds.
            self._energy.floor_db = max(self._energy.floor_db, ENERGY_MIN_FLOOR_DB)
            return float(self._energy.blocks(block)[0])
        import torch

        with torch.inference_mode():
            return float(self.model(torch.from_numpy(block)[None], SPEECH_RATE))

    def reset(self) -> None:
        if self.model is not None:
            self.model.reset_states()
        self._energy = features._Vad("energy")


# ----------------------------------------------------------------------------- echo

#: Echo model geometry at 16 kHz: 10 ms hop, 20 ms Hann window, 16 log-spaced bands.
ECHO_HOP = 160
ECHO_WIN = 320
ECHO_BAND_HZ = np.geomspace(150.0, 7000.0, 17)
MAX_ECHO_LAG_S = 0.3
_MAX_LAG = round(MAX_ECHO_LAG_S * SPEECH_RATE / ECHO_HOP)  # 30 frames
_LAG_WINDOW = 100  # frames (1 s) of envelope correlated to find the delay
_LAG_MIN_NCC = 0.5  # a delay is adopted only from a clear correlation peak ...
_LAG_MIN_FRAMES = 30  # ... over at least 0.3 s
_DOMINANT_NCC = 0.8  # correlation at the delay over 0.5 s above which echo dominates the mic
_DOMINANT_WINDOW = 50
_GAIN_WINDOW = 300  # frames (3 s) of mic/played ratios behind the coupling gain
_GAIN_MIN_FRAMES = 20  # fewer loud frames in a band: assume the initial gain
_UPDATE_EVERY = 10  # frames between updates of the delay and gain (100 ms)
_GAIN_QUANTILE = 0.9  # coupling gain: this quantile of mic / echo-shape power ratios
_GAIN0 = 1.0  # before that, the echo may be as loud as the played audio (0 dB)
_ECHO_MARGIN = 2.0  # mic power within 3 dB of the estimate counts as explained
_REVERB = 10.0 ** (-1.5 / 10.0)  # echo estimate decay per frame (1.5 dB / 10 ms)
_FLOOR_RISE = 10.0 ** (3.0 / 10.0 / 100.0)  # mic noise floor may rise 3 dB/s
_LOUD_REL = 1e-4  # a band is loud within 40 dB of its peak over the window ...
_LOUD_ABS = 1e-9  # ... and above -90 dB
_EPS = 1e-12


def _ncc(longer: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``x`` with every window of ``longer``, ``(len - n + 1,)``."""
    segs = np.lib.stride_tricks.sliding_window_view(longer, len(x))
    segs = segs - segs.mean(axis=1, keepdims=True)
    x = x - x.mean()
    out: np.ndarray = segs @ x / (np.linalg.norm(segs, axis=1) * np.linalg.norm(x) + _EPS)
    return out


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(ECHO_WIN, 1.0 / SPEECH_RATE)
    lo, hi = ECHO_BAND_HZ[:-1, None], ECHO_BAND_HZ[1:, None]
    return ((freqs[None, :] >= lo) & (freqs[None, :] < hi)).astype(np.float64).T  # (bins, 16)


_ECHO_BANDS = _band_matrix()
_ECHO_HANN = np.hanning(ECHO_WIN + 2)[1:-1]
_N_BANDS = _ECHO_BANDS.shape[1]


class _EchoGate:
    """How much of the microphone the played audio explains, frame by frame.

    Both streams are 16 kHz sample streams with absolute indices; frame ``t``
    covers ``[origin + t*HOP, origin + t*HOP + WIN)`` and is computed once both
    have arrived that far.
    """

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self._mic = np.zeros(0, np.float32)
        self._mic_pos = origin  # absolute index of self._mic[0]
        self._ply = np.zeros(0, np.float32)
        self._ply_pos = origin
        self.frames = 0
        keep = _GAIN_WINDOW + _MAX_LAG + 2
        self._m = np.zeros((keep, _N_BANDS))  # mic power minus noise floor, last `keep` frames
        self._p = np.zeros((keep, _N_BANDS))  # played power
        self._e = np.zeros((keep, _N_BANDS))  # echo shape: played at the delay, with a tail
        self._adapt = np.zeros(keep, bool)  # frame may update the delay and gain
        self._floor: np.ndarray | None = None
        self._eff = np.zeros(_N_BANDS)
        self.gain = np.full(_N_BANDS, _GAIN0)
        self.lag: int | None = None
        self.dominance = 0.0  # envelope correlation at the delay over the last 0.5 s
        self._since_update = 0
        self._ends: list[int] = []  # per frame not yet consumed: absolute end sample,
        self._unexplained: list[float] = []  # mic power the echo does not explain,
        self._total: list[float] = []  # and mic power (floor removed)

    def add(self, mic: np.ndarray, mic_pos: int, played: np.ndarray, played_pos: int) -> None:
        self._mic, self._mic_pos = self._append(self._mic, self._mic_pos, mic, mic_pos)
        self._ply, self._ply_pos = self._append(self._ply, self._ply_pos, played, played_pos)

    def _append(self, buf: np.ndarray, pos: int, x: np.ndarray, x_pos: int) -> tuple[Any, int]:
        if x_pos < self.origin:  # before the gate existed
            x = x[self.origin - x_pos :]
            x_pos = self.origin
        if not len(buf):
            return x.astype(np.float32), x_pos
        return np.concatenate([buf, x]), pos

    def ready(self, end: int) -> bool:
        """Whether every frame ending at or before ``end`` is computed."""
        return self.origin + self.frames * ECHO_HOP + ECHO_WIN > end

    def run(self, idle: bool) -> None:
        """Compute the frames both streams now cover; ``idle``: nobody is speaking."""
        start = self.origin + self.frames * ECHO_HOP
        avail = min(self._mic_pos + len(self._mic), self._ply_pos + len(self._ply))
        n = max(0, (avail - start - ECHO_WIN) // ECHO_HOP + 1)
        if n == 0:
            return
        mic_p = self._band_power(self._mic, start - self._mic_pos, n)
        ply_p = self._band_power(self._ply, start - self._ply_pos, n)
        keep_from = start + n * ECHO_HOP
        self._mic = self._mic[keep_from - self._mic_pos :]
        self._ply = self._ply[keep_from - self._ply_pos :]
        self._mic_pos = self._ply_pos = keep_from

        # Noise floor (per band, min-tracking) and the echo shape: played power at the
        # delay with a reverberant tail.
        clean = np.empty_like(mic_p)
        floor = mic_p[0].copy() if self._floor is None else self._floor
        for i in range(n):
            floor = np.minimum(floor * _FLOOR_RISE, mic_p[i])
            clean[i] = mic_p[i] - floor
        self._floor = floor
        self._p = np.concatenate([self._p[n:], ply_p])[-len(self._p) :]
        aligned = self._aligned(self._p[-(n + _MAX_LAG + 1) :])[-n:]
        shape = np.empty_like(aligned)
        eff = self._eff
        for i in range(n):
            eff = shape[i] = np.maximum(aligned[i], eff * _REVERB)
        self._eff = eff
        self._m = np.concatenate([self._m[n:], clean])[-len(self._m) :]
        self._e = np.concatenate([self._e[n:], shape])[-len(self._e) :]
        # The model learns from frames where nobody speaks, or where the echo plainly
        # dominates the mic (so a false start on loud echo cannot freeze it).
        adapt = idle or self.dominance >= _DOMINANT_NCC
        self._adapt = np.concatenate([self._adapt[n:], np.full(n, adapt)])[-len(self._adapt) :]
        self.frames += n
        self._since_update += n
        if self._since_update >= _UPDATE_EVERY:
            self._since_update = 0
            if self._p[-(_LAG_WINDOW + _MAX_LAG) :].max() >= _LOUD_ABS:  # the avatar spoke
                self._update_lag(idle)
                if idle or self.dominance >= _DOMINANT_NCC:
                    self._update_gain()
            else:
                self.dominance = 0.0

        echo = self.gain * shape
        over = clean > _ECHO_MARGIN * echo
        self._unexplained.extend(np.where(over, clean - echo, 0.0).sum(axis=1).tolist())
        self._total.extend(clean.sum(axis=1).tolist())
        self._ends.extend((start + np.arange(n) * ECHO_HOP + ECHO_WIN).tolist())

    @staticmethod
    def _band_power(buf: np.ndarray, first: int, n: int) -> np.ndarray:
        idx = first + np.arange(n)[:, None] * ECHO_HOP + np.arange(ECHO_WIN)[None, :]
        spec = np.fft.rfft(buf[idx].astype(np.float64) * _ECHO_HANN, axis=1)
        power: np.ndarray = (spec.real**2 + spec.imag**2) @ _ECHO_BANDS
        return power / ECHO_WIN

    def _aligned(self, p: np.ndarray) -> np.ndarray:
        """Played power at the echo delay (+-1 frame; any delay 0-300 ms while unknown)."""
        lags = range(_MAX_LAG + 1) if self.lag is None else range(self.lag - 1, self.lag + 2)
        padded = np.concatenate([np.zeros((_MAX_LAG + 1, _N_BANDS)), p])
        n = len(p)
        out = np.zeros_like(p)
        for k in lags:
            if 0 <= k <= _MAX_LAG:
                np.maximum(out, padded[_MAX_LAG + 1 - k : _MAX_LAG + 1 - k + n], out=out)
        return out

    def _update_lag(self, idle: bool) -> None:
        """Echo delay: the peak of the envelopes' normalised cross-correlation (0-300 ms)."""
        window = min(_LAG_WINDOW, self.frames - _MAX_LAG)
        if window < _LAG_MIN_FRAMES:
            return
        em = np.sqrt(self._m.sum(axis=1))
        ep = np.sqrt(self._p.sum(axis=1))
        ncc = _ncc(ep[-(window + _MAX_LAG) :], em[-window:])  # entry j: delay MAX - j
        best = int(np.argmax(ncc))
        # While someone speaks, only a correlation that shows the echo dominating counts.
        if ncc[best] >= (_LAG_MIN_NCC if idle else _DOMINANT_NCC):
            self.lag = _MAX_LAG - best
        if self.lag is not None:
            w = min(_DOMINANT_WINDOW, window)
            lagged = ep[len(ep) - w - self.lag : len(ep) - self.lag]
            self.dominance = float(_ncc(lagged, em[-w:])[0])

    def _update_gain(self) -> None:
        """Per-band coupling: a quantile of mic power / echo shape over the loud frames.

        At a known delay, the median; while none is found (no echo, or one too smeared
        to time), the 90th percentile against the loudest played power of any delay,
        once there is a second of it: an upper bound that stays small without echo.
        """
        known = self.lag is not None
        shape = self._e[-_GAIN_WINDOW:]
        m = self._m[-_GAIN_WINDOW:]
        peak = shape.max(axis=0, keepdims=True)
        loud = (shape > np.maximum(_LOUD_REL * peak, _LOUD_ABS)) & self._adapt[-_GAIN_WINDOW:, None]
        ratio = np.where(loud, m / (shape + _EPS), np.inf).T  # (bands, frames), inf: quiet
        count = loud.sum(axis=0)
        rank = np.minimum(count * _GAIN_QUANTILE, np.maximum(count - 1, 0)).astype(np.int64)
        quantile = np.take_along_axis(np.sort(ratio, axis=1), rank[:, None], axis=1)[:, 0]
        enough = _GAIN_MIN_FRAMES if known else _LAG_WINDOW
        self.gain = np.where(count >= enough, quantile, _GAIN0)

    def explained(self, start: int, end: int) -> float:
        """Share of the mic energy in frames ending in ``(start, end]`` that echo explains."""
        ends = np.asarray(self._ends)
        take = ends <= end
        sel = take & (ends > start)
        unexplained = float(np.sum(np.asarray(self._unexplained)[sel])) if sel.any() else 0.0
        total = float(np.sum(np.asarray(self._total)[sel])) if sel.any() else 0.0
        drop = int(take.sum())
        del self._ends[:drop], self._unexplained[:drop], self._total[:drop]
        if total <= _EPS:
            return 0.0
        return 1.0 - unexplained / total


# ----------------------------------------------------------------------------- listener

_IDLE, _CANDIDATE, _SPEAKING = 0, 1, 2


def _resampler(rate: int) -> Any:
    if rate == SPEECH_RATE:
        return None
    import soxr

    return soxr.ResampleStream(rate, SPEECH_RATE, 1, dtype="float32")


class Listener:
    """Streaming utterance detection and English transcription for one microphone.

    Args:
        sample_rate: rate of the chunks given to :meth:`push` (resampled to 16 kHz
            with a streaming soxr).
        options: see :class:`ListenOptions`.

    A listener keeps state from one chunk to the next: use it from one thread at a
    time (calls are serialised by a lock). It loads its own VAD (0.3 s CPU); the
    decoder comes from a shared pool when an utterance starts.

    Raises:
        OptionError: a bad sample rate, or ``vad="silero"`` without Silero.
        AvatarLabError: transcription asked for without PocketSphinx installed.
    """

    def __init__(self, sample_rate: int = 48_000, options: ListenOptions | None = None) -> None:
        if int(sample_rate) != sample_rate or sample_rate < 8000:
            raise OptionError(
                f"sample_rate must be an integer of at least 8000 Hz, got {sample_rate}"
            )
        self.sample_rate = int(sample_rate)
        self.options = options or ListenOptions()
        if self.options.transcribe and importlib.util.find_spec("pocketsphinx") is None:
            raise AvatarLabError(_NO_SPHINX)
        self._vad = _BlockVad(self.options.vad)
        self._lock = threading.Lock()
        self._decoder: Any = None
        self._start_state()

    @property
    def vad_backend(self) -> str:
        """``"silero"`` or ``"energy"``."""
        return self._vad.backend

    @property
    def echo_delay_s(self) -> float | None:
        """The echo delay found in the played audio (seconds), or ``None`` yet."""
        gate = self._gate
        return None if gate is None or gate.lag is None else gate.lag * ECHO_HOP / SPEECH_RATE

    def _start_state(self) -> None:
        self._mic_rs = _resampler(self.sample_rate)
        self._ply_rs: Any = None
        self._gate: _EchoGate | None = None
        self._in_samples = 0  # input samples pushed (at sample_rate)
        self._buf = np.zeros(0, np.float32)  # 16 kHz mic audio from absolute index _buf_pos
        self._buf_pos = 0
        self._ply_out = 0  # 16 kHz played samples produced (absolute, from the gate origin)
        self._next_block = 0  # index of the next VAD block
        self._state = _IDLE
        self._utt_start = 0  # absolute 16 kHz sample of the first voiced block
        self._voiced = 0  # voiced blocks of the candidate
        self._quiet = 0  # consecutive unvoiced blocks
        self._last_voiced_end = 0
        self._fed = 0  # absolute sample up to which the decoder has heard the audio
        self._utt_open = False
        self._last_partial_at = 0
        self._last_partial = ""

    def push(self, mic: np.ndarray, played: np.ndarray | None = None) -> list[ListenEvent]:
        """Add a chunk; return the events it completed (often none).

        Args:
            mic: float32 mono microphone chunk ``(N,)`` at ``sample_rate``, any length.
            played: what the avatar was playing over the same span, ``(N,)`` at the
                same rate, or ``None`` (nothing played).
        """
        mic = self._mono(mic, "mic")
        if played is not None:
            played = self._mono(played, "played")
            if len(played) != len(mic):
                raise OptionError(
                    f"played has {len(played)} samples but mic has {len(mic)}: pass the "
                    "avatar audio of the same time span, or None"
                )
        with self._lock:
            events: list[ListenEvent] = []
            if self._state == _SPEAKING:
                self._feed(None)  # audio of earlier chunks: speech_start went out first
            self._take(mic, played, last=False)
            self._run_blocks(events, final=False)
            self._maybe_partial(events)
            return events

    def flush(self) -> list[ListenEvent]:
        """End of stream: finalise an utterance in progress; the listener then starts afresh."""
        with self._lock:
            events: list[ListenEvent] = []
            self._take(np.zeros(0, np.float32), None, last=True)
            pad = -(self._buf_pos + len(self._buf)) % BLOCK  # complete the last block
            self._buf = np.concatenate([self._buf, np.zeros(pad, np.float32)])
            self._run_blocks(events, final=True)
            if self._state == _SPEAKING:
                self._finish(events, self._last_voiced_end)
            self._drop_decoder()
            self._vad.reset()
            self._start_state()
            return events

    def reset(self) -> None:
        """Forget the stream (an utterance in progress gives no events); time restarts at 0."""
        with self._lock:
            if self._decoder is not None and self._utt_open:
                try:
                    self._decoder.end_utt()
                    self._utt_open = False
                except RuntimeError:
                    self._decoder = None  # not returned to the pool
            self._drop_decoder()
            self._vad.reset()
            self._start_state()

    @staticmethod
    def _mono(x: np.ndarray, name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise OptionError(
                f"{name} must be mono (N,), got shape {x.shape}: average the channels"
            )
        return x

    # -- audio in

    def _take(self, mic: np.ndarray, played: np.ndarray | None, last: bool) -> None:
        """Resample the chunk to 16 kHz into the buffer and the echo gate."""
        mic16 = mic if self._mic_rs is None else self._mic_rs.resample_chunk(mic, last=last)
        mic_pos = self._buf_pos + len(self._buf)
        self._buf = np.concatenate([self._buf, mic16])
        if played is not None and self._gate is None:  # first played audio: start the gate
            origin = round(self._in_samples * SPEECH_RATE / self.sample_rate)
            self._gate = _EchoGate(origin)
            self._ply_rs = _resampler(self.sample_rate)
            self._ply_out = origin
        self._in_samples += len(mic)
        if self._gate is None:
            return
        if played is None:
            played = np.zeros(len(mic), np.float32)
        ply16 = played if self._ply_rs is None else self._ply_rs.resample_chunk(played, last=last)
        self._gate.add(mic16, mic_pos, ply16, self._ply_out)
        self._ply_out += len(ply16)
        self._gate.run(idle=self._state == _IDLE)

    # -- decisions

    def _run_blocks(self, events: list[ListenEvent], final: bool) -> None:
        end_avail = self._buf_pos + len(self._buf)
        while (self._next_block + 1) * BLOCK <= end_avail:
            b0 = self._next_block * BLOCK
            b1 = b0 + BLOCK
            if self._gate is not None and not final and not self._gate.ready(b1):
                break
            block = self._buf[b0 - self._buf_pos : b1 - self._buf_pos]
            prob = self._vad.probability(block)
            echo = self._gate is not None and (
                self._gate.explained(b0, b1) >= self.options.echo_threshold
            )
            threshold = SPEECH_OFF if self._state == _SPEAKING else SPEECH_ON
            self._step(prob >= threshold and not echo, b0, b1, events)
            self._next_block += 1
        self._trim()

    def _step(self, voiced: bool, b0: int, b1: int, events: list[ListenEvent]) -> None:
        opts = self.options
        if self._state == _IDLE:
            if voiced:
                self._state, self._utt_start, self._voiced, self._quiet = _CANDIDATE, b0, 0, 0
            else:
                return
        if voiced:
            self._voiced += 1
            self._quiet = 0
            self._last_voiced_end = b1
        else:
            self._quiet += 1
        if self._state == _CANDIDATE:
            if self._quiet * BLOCK_S > CANDIDATE_GAP_S:
                self._state = _IDLE
            elif self._voiced * BLOCK_S >= opts.min_speech_s - 1e-9:
                self._state = _SPEAKING
                self._fed = max(self._buf_pos, self._utt_start - round(PREROLL_S * SPEECH_RATE))
                self._last_partial_at, self._last_partial = self._fed, ""
                events.append(
                    ListenEvent("speech_start", "", self._t(self._utt_start), self._t(b1))
                )
            return
        if self._quiet * BLOCK_S >= opts.min_silence_s - 1e-9:
            self._finish(events, self._last_voiced_end, upto=b1)
        elif (b1 - self._utt_start) / SPEECH_RATE >= opts.max_utterance_s - 1e-9:
            self._finish(events, b1, upto=b1)

    def _finish(self, events: list[ListenEvent], end: int, upto: int | None = None) -> None:
        """Close the utterance: decode its audio up to ``upto``, emit final + speech_end."""
        text = ""
        if self.options.transcribe:
            self._feed(upto)
            if self._decoder is not None and self._utt_open:
                try:
                    self._decoder.end_utt()
                    hyp = self._decoder.hyp()
                    text = _words(hyp.hypstr) if hyp is not None else ""
                except RuntimeError:
                    self._decoder = None  # a failed decoder is not reused
                self._utt_open = False
            self._drop_decoder()
        start, stop = self._t(self._utt_start), self._t(end)
        events.append(ListenEvent("final", text, start, stop))
        events.append(ListenEvent("speech_end", "", start, stop))
        self._state, self._voiced, self._quiet = _IDLE, 0, 0

    # -- decoding

    def _feed(self, upto: int | None) -> None:
        """Give the decoder the utterance's audio from ``_fed`` up to ``upto`` (or all)."""
        stop = self._buf_pos + len(self._buf) if upto is None else upto
        if stop <= self._fed:
            return
        if not self.options.transcribe:
            self._fed = stop
            return
        if self._decoder is None:
            self._decoder = _POOL.acquire()
        if not self._utt_open:
            self._decoder.start_utt()
            self._utt_open = True
        audio = self._buf[self._fed - self._buf_pos : stop - self._buf_pos]
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        try:
            self._decoder.process_raw(pcm, False, False)
        except RuntimeError:
            self._decoder, self._utt_open = None, False  # dropped, not pooled
        self._fed = stop

    def _maybe_partial(self, events: list[ListenEvent]) -> None:
        if self._state != _SPEAKING or self._decoder is None or not self._utt_open:
            return
        if (self._fed - self._last_partial_at) / SPEECH_RATE < self.options.partial_every_s:
            return
        self._last_partial_at = self._fed
        hyp = self._decoder.hyp()
        text = _words(hyp.hypstr) if hyp is not None else ""
        if text and text != self._last_partial:
            self._last_partial = text
            events.append(
                ListenEvent("partial", text, self._t(self._utt_start), self._t(self._fed))
            )

    def _drop_decoder(self) -> None:
        if self._decoder is not None and not self._utt_open:
            _POOL.release(self._decoder)
        self._decoder, self._utt_open = None, False

    # -- bookkeeping

    def _trim(self) -> None:
        """Keep the audio still needed: the next block, a pre-roll, and what is not decoded."""
        preroll = round(PREROLL_S * SPEECH_RATE)
        keep = self._next_block * BLOCK - preroll
        if self._state == _CANDIDATE:
            keep = min(keep, self._utt_start - preroll)
        elif self._state == _SPEAKING:
            keep = min(keep, self._fed)
        drop = keep - self._buf_pos
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_pos = keep

    @staticmethod
    def _t(sample: int) -> float:
        return sample / SPEECH_RATE
