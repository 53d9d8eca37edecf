"""librosa 0.11's onset strength and dynamic-programming beat tracker, in NumPy.

``librosa.beat`` compiles its Numba kernels when it is imported (about 8 s on one core,
15 s on a loaded one, every process: one of them is built with ``cache=False``), and a
stale Numba cache made it crash the evaluation process with a segmentation fault. The
Beat Align Score needs only ``onset_strength`` (mel spectrogram defaults) and
``beat_track`` (tempo from the autocorrelation tempogram, then Ellis' dynamic
programme) on one mono signal of a few hundred frames, so they are written out here
step by step, with librosa's dtypes (float32 spectrogram, float64 tempogram and
scores), its edge cases and tie-breaking. ``tests/metrics/test_beats.py`` checks the
envelopes and beat frames against librosa itself.
"""

from __future__ import annotations

import numpy as np

N_FFT = 2048
N_MELS = 128
TOP_DB = 80.0
AMIN = 1e-10
AC_SIZE_S = 8.0  # tempogram window, seconds
MAX_TEMPO = 320.0
STD_BPM = 1.0


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``)."""
    return np.hanning(n + 1)[:-1]


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = hz >= 1000.0
    mels[log_t] = 1000.0 / f_sp + np.log(hz[log_t] / 1000.0) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    logstep = np.log(6.4) / 27.0
    min_log_mel = 1000.0 / f_sp
    log_t = mels >= min_log_mel
    freqs[log_t] = 1000.0 * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def mel_filters(sr: float, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=sr / 2)``: ``(n_mels,
    1 + n_fft // 2)`` float32, Slaney-normalised triangles."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = _hz_to_mel(np.array([0.0, sr / 2.0]))
    mel_f = _mel_to_hz(np.linspace(edges[0], edges[1], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights


def onset_strength(y: np.ndarray, sr: float, hop_length: int) -> np.ndarray:
    """``librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length)``, ``(T,)`` float32.

    Power mel spectrogram (centred zero-padded STFT, periodic Hann, 2048 points, 128
    bands) in dB (``top_db=80``), positive first difference, mean over bands, shifted
    by ``1 + n_fft // (2 hop)`` frames.
    """
    y = np.asarray(y, dtype=np.float32)
    padded = np.pad(y, N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::hop_length][:n_frames]
    spec = np.fft.rfft(_hann(N_FFT)[:, None] * frames.T, axis=-2).astype(np.complex64)
    power = np.abs(spec) ** 2.0
    mel = np.einsum("...ft,mf->...mt", power, mel_filters(sr), optimize=True)
    db = 10.0 * np.log10(np.maximum(AMIN, mel))
    db -= 10.0 * np.log10(np.maximum(AMIN, 1.0))
    db = np.maximum(db, db.max() - TOP_DB)
    env = np.maximum(0.0, db[:, 1:] - db[:, :-1]).mean(axis=-2)
    env = np.pad(env, (1 + N_FFT // (2 * hop_length), 0))
    return env[: db.shape[-1]]


def _autocorrelate(x: np.ndarray) -> np.ndarray:
    """Autocorrelation of each column of ``x`` (``librosa.autocorrelate(axis=-2)``)."""
    from scipy.fft import next_fast_len

    n = x.shape[-2]
    n_pad = next_fast_len(2 * n - 1, real=True)
    spec = np.fft.rfft(x, n=n_pad, axis=-2)
    power = spec.real**2 + spec.imag**2
    return np.fft.irfft(power, n=n_pad, axis=-2)[:n]


def tempo(env: np.ndarray, sr: float, hop_length: int, start_bpm: float) -> float:
    """``librosa.feature.tempo`` with its defaults (8 s autocorrelation tempogram, mean
    over frames, log-normal prior around ``start_bpm`` of one octave std, < 320 BPM)."""
    win = int(np.floor(int(AC_SIZE_S * sr) // hop_length))
    n = len(env)
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=0)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win).T[:, :n]
    ac = _autocorrelate(frames * _hann(win)[:, None])
    length = np.abs(ac).astype(float).max(axis=-2, keepdims=True)
    length[length < np.finfo(ac.dtype).tiny] = 1.0
    tg = (ac / length).mean(axis=-1, keepdims=True)
    bpms = np.zeros(win, dtype=np.float64)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win))
    logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / STD_BPM) ** 2
    logprior[: int(np.argmax(bpms < MAX_TEMPO))] = -np.inf
    best = np.argmax(np.log1p(1e6 * tg) + logprior[:, None], axis=-2)
    return float(bpms[best][0])


def _local_score(env: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """Onsets over their std, smoothed by a Gaussian of ``frames_per_beat / 32`` frames.

    As librosa's loop, the envelope's first value never contributes.
    """
    onsets = env / (env.std(ddof=1, axis=-1, keepdims=True) + np.finfo(env.dtype).tiny)
    x = onsets.astype(np.float64)
    x[0] = 0.0
    window = np.exp(
        -0.5 * (np.arange(-frames_per_beat, frames_per_beat + 1) * 32.0 / frames_per_beat) ** 2
    )
    half = len(window) // 2
    return np.convolve(x, window)[half : half + len(x)]


def _track_dp(local: np.ndarray, fpb: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """Ellis' dynamic programme: best predecessor of each frame and cumulative score.

    Predecessors from ``i - round(fpb / 2)`` back to ``i - 2 fpb`` are searched nearest
    first; a tie keeps the nearest, as librosa's strict ``>``.
    """
    n = len(local)
    tight = float(np.float32(tightness))
    backlink = np.full(n, -1, dtype=np.int64)
    cumscore = np.empty(n, dtype=np.float64)
    thresh = 0.01 * local.max()
    first_beat = True
    start, stop = int(np.round(fpb / 2)), int(2 * fpb)
    log_fpb = np.log(fpb)
    for i in range(n):
        locs = np.arange(i - start, max(i - stop - 1, -1), -1)
        best = -1
        if len(locs):
            score = cumscore[locs] - tight * (np.log(i - locs) - log_fpb) ** 2
            k = int(np.argmax(score))
            best = int(locs[k])
            cumscore[i] = local[i] + score[k]
        else:
            cumscore[i] = local[i]
        if first_beat and local[i] < thresh:
            backlink[i] = -1
        else:
            backlink[i] = best
            first_beat = False
    return backlink, cumscore


def _local_max(x: np.ndarray) -> np.ndarray:
    """``librosa.util.localmax``: ``x[i] > x[i-1]`` and ``x[i] >= x[i+1]``; never the first
    frame; the last one if it exceeds its predecessor."""
    out = np.zeros(len(x), dtype=bool)
    out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    if len(x) > 1:
        out[-1] = x[-1] > x[-2]
    return out


def _last_beat(cumscore: np.ndarray) -> int:
    peaks = _local_max(cumscore)
    threshold = 0.5 * float(np.ma.getdata(np.ma.median(np.ma.masked_array(cumscore, ~peaks))))
    ok = np.flatnonzero(peaks & (cumscore >= threshold))
    return int(ok[-1]) if len(ok) else len(cumscore) - 1


def _trim(local: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Drop frames at both ends whose score is at most half the RMS of the smoothed beat
    scores (librosa's ``trim=True``)."""
    w = np.hanning(5)
    smooth = np.convolve(local[beats], w)[len(w) // 2 : len(local) + len(w) // 2]
    threshold = 0.5 * ((smooth**2).mean() ** 0.5)
    out = beats.copy()
    n = 0
    while n < len(local) and local[n] <= threshold:
        out[n] = False
        n += 1
    n = len(local) - 1
    while n >= 0 and local[n] <= threshold:
        out[n] = False
        n -= 1
    return out


def beat_track(
    env: np.ndarray, sr: float, hop_length: int, start_bpm: float, tightness: float
) -> np.ndarray:
    """Beat frames of an onset envelope: ``librosa.beat.beat_track(onset_envelope=env, sr=sr,
    hop_length=hop_length, start_bpm=start_bpm, tightness=tightness)[1]``."""
    env = np.asarray(env)
    if not env.any():
        return np.zeros(0, dtype=np.int64)
    bpm = tempo(env, sr, hop_length, start_bpm)
    fpb = float(np.round(float(sr) / hop_length * 60.0 / bpm))
    local = _local_score(env, fpb)
    backlink, cumscore = _track_dp(local, fpb, tightness)
    beats = np.zeros(len(env), dtype=bool)
    n = _last_beat(cumscore)
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    return np.flatnonzero(_trim(local, beats)).astype(np.int64)
