"""Wav2Lip-compatible log-mel spectrogram and the per-frame mel windows Wav2Lip uses.

Numerically the same as Rudrabha/Wav2Lip ``audio.melspectrogram`` with its
``hparams.py`` (checked against ``../shared/fixtures/wav2lip_audio.npz``):
pre-emphasis 0.97, centred STFT (n_fft 800, hop 200, periodic Hann window of
800, zero padding as ``librosa.stft`` does since librosa 0.10), magnitude,
80 Slaney mel bands 55-7600 Hz (``librosa.filters.mel``), 20*log10 with a
-100 dB floor, minus 20 dB, then mapped symmetrically to [-4, 4].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from avatarlab.constants import SPEECH_RATE
from avatarlab.errors import MediaError


@dataclass(frozen=True)
class MelParams:
    """Wav2Lip's audio hyper-parameters (``hparams.py``); the defaults are the reference."""

    sample_rate: int = SPEECH_RATE
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0


WAV2LIP_MEL = MelParams()
#: Mel columns per second at the Wav2Lip rate (16000 / 200).
MEL_COLS_PER_SECOND = WAV2LIP_MEL.sample_rate / WAV2LIP_MEL.hop_size
#: Columns in one Wav2Lip audio window (0.2 s).
MEL_STEP_SIZE = 16


@functools.lru_cache(maxsize=4)
def _mel_basis(params: MelParams) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=params.sample_rate,
        n_fft=params.n_fft,
        n_mels=params.num_mels,
        fmin=params.fmin,
        fmax=params.fmax,
    )


def _stft_magnitude(y: np.ndarray, params: MelParams) -> np.ndarray:
    """``|librosa.stft(y, n_fft, hop, win, center=True)|`` as ``(n_fft//2+1, T)`` float64."""
    n_fft, hop = params.n_fft, params.hop_size
    # periodic Hann, as scipy.signal.get_window("hann", n, fftbins=True) used by librosa
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(params.win_size) / params.win_size)
    if params.win_size < n_fft:
        lpad = (n_fft - params.win_size) // 2
        window = np.pad(window, (lpad, n_fft - params.win_size - lpad))
    padded = np.pad(y, (n_fft // 2, n_fft // 2), mode="constant")
    n_cols = 1 + (padded.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_cols]
    return np.abs(np.fft.rfft(frames * window, n=n_fft, axis=1)).T


def melspectrogram(wav: np.ndarray, params: MelParams = WAV2LIP_MEL) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio.

    Args:
        wav: ``(N,)`` float audio in [-1, 1] at ``params.sample_rate`` (16 kHz).
        params: hyper-parameters; the defaults are Wav2Lip's.

    Returns:
        ``(80, T)`` float32 in [-4, 4] with ``T = 1 + N // 200`` (80 columns per second).
    """
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1:
        raise MediaError(
            f"melspectrogram needs mono (N,) audio, got shape {x.shape}: average the channels first"
        )
    if x.shape[0] == 0:
        raise MediaError("melspectrogram got empty audio")
    # pre-emphasis y[n] = x[n] - k x[n-1] (the reference's lfilter([1, -k], [1], x))
    emphasised = x.copy()
    emphasised[1:] -= params.preemphasis * x[:-1]
    mel = _mel_basis(params) @ _stft_magnitude(emphasised, params)
    floor = np.exp(params.min_level_db / 20.0 * np.log(10.0))
    db = 20.0 * np.log10(np.maximum(floor, mel)) - params.ref_level_db
    m = params.max_abs_value
    scaled = 2.0 * m * ((db - params.min_level_db) / -params.min_level_db) - m
    return np.clip(scaled, -m, m).astype(np.float32)


def mel_chunk_starts(n_mel_cols: int, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Start column of the 16-column mel window for each video frame, as Wav2Lip indexes it.

    Frame ``i`` starts at ``int(i * (80 / fps))`` (Wav2Lip's ``mel_idx_multiplier``,
    multiplied in that order so float rounding matches). With ``n_frames=None`` the
    count follows Wav2Lip's inference loop: windows are cut until one would run past
    the end, and that last one is clamped to end at the last column. With
    ``n_frames`` given, exactly that many starts are returned, each clamped to
    ``[0, n_mel_cols - 16]``.

    Returns:
        ``(n,)`` int64 column indices.
    """
    if fps <= 0:
        raise MediaError(f"fps must be positive, got {fps}")
    if n_mel_cols < MEL_STEP_SIZE:
        raise MediaError(
            f"audio too short for one mel window: {n_mel_cols} columns < {MEL_STEP_SIZE} "
            f"(needs at least {MEL_STEP_SIZE / MEL_COLS_PER_SECOND:.2f} s of audio)"
        )
    multiplier = MEL_COLS_PER_SECOND / fps
    last = n_mel_cols - MEL_STEP_SIZE
    if n_frames is not None:
        raw = np.array([int(i * multiplier) for i in range(n_frames)], dtype=np.int64)
        return np.minimum(raw, last)
    starts: list[int] = []
    i = 0
    while True:
        start = int(i * multiplier)
        if start > last:
            starts.append(last)
            return np.asarray(starts, dtype=np.int64)
        starts.append(start)
        i += 1


def mel_windows(mel: np.ndarray, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Cut ``(80, T)`` mel into Wav2Lip's per-frame windows ``(n, 80, 16)`` float32.

    See :func:`mel_chunk_starts` for the indexing and ``n_frames``.
    """
    if mel.ndim != 2:
        raise MediaError(f"mel must be (n_mels, T), got shape {mel.shape}")
    starts = mel_chunk_starts(mel.shape[1], fps, n_frames)
    index = starts[:, None] + np.arange(MEL_STEP_SIZE)[None, :]
    return np.ascontiguousarray(mel[:, index].transpose(1, 0, 2)).astype(np.float32, copy=False)
