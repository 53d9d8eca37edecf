"""Wav2Lip's per-frame mel windows for audio that arrives in chunks.

Frame ``i`` uses the 16 mel columns from ``int(i * 80 / fps)`` (the reference indexing,
:func:`avatarlab.media.mel_chunk_starts`). Column ``c`` of the centred STFT reads samples
``[200c - 400, 200c + 400)`` at 16 kHz, and Wav2Lip's normalisation is fixed rather than
data-dependent, so a window is final as soon as those samples have arrived: a frame is
ready 212.5 ms of audio after its time (15 columns of 12.5 ms plus half an STFT window).
Only the audio still needed is kept.
"""

from __future__ import annotations

import math

import numpy as np

from avatarlab.media import MEL_STEP_SIZE, SPEECH_RATE, mel_chunk_starts, melspectrogram
from avatarlab.media.mel import WAV2LIP_MEL

_HOP = WAV2LIP_MEL.hop_size
_HALF_WINDOW = WAV2LIP_MEL.n_fft // 2
# Columns recomputed before the first one needed: the segment's zero padding and its
# pre-emphasis start (which lacks the previous sample) reach into the first 3 columns.
_WARMUP_COLS = 3


def frame_count(n_samples: int, fps: float) -> int:
    """Frames that cover ``n_samples`` of 16 kHz audio: ``ceil(duration * fps)``, at least 1."""
    return max(1, math.ceil(n_samples / SPEECH_RATE * fps - 1e-6))


class MelWindowStream:
    """Push 16 kHz float32 mono chunks, get the mel windows ``(k, 80, 16)`` of ready frames.

    After all chunks, :meth:`finish` returns the remaining windows, so that the windows of
    all calls together equal ``mel_windows(melspectrogram(audio), fps, frame_count(...))``
    for the whole audio.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._multiplier = SPEECH_RATE / _HOP / fps
        self._buffer = np.zeros(0, dtype=np.float32)
        self._base = 0  # sample index of _buffer[0] in the whole stream (a multiple of _HOP)
        self._received = 0
        self._next = 0  # next frame to emit

    def _start(self, frame: int) -> int:
        return int(frame * self._multiplier)

    def _segment_mel(self, first_col: int) -> tuple[np.ndarray, int]:
        """Mel of the kept audio from column ``first_col - 3`` on; returns (mel, its column 0)."""
        col0 = max(0, first_col - _WARMUP_COLS)
        offset = col0 * _HOP - self._base
        return melspectrogram(self._buffer[offset:]), col0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add audio; return the windows of the frames whose audio is now complete."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._received += chunk.size
        # Frame i is ready when its last column's STFT frame lies inside the received audio.
        last_ready_col = (self._received - _HALF_WINDOW) // _HOP
        end = self._next
        while self._start(end) + MEL_STEP_SIZE - 1 <= last_ready_col:
            end += 1
        if end == self._next:
            return np.zeros((0, WAV2LIP_MEL.num_mels, MEL_STEP_SIZE), dtype=np.float32)
        starts = np.array([self._start(i) for i in range(self._next, end)])
        mel, col0 = self._segment_mel(int(starts[0]))
        windows = _cut(mel, starts - col0)
        self._next = end
        self._trim()
        return windows

    def finish(self) -> np.ndarray:
        """The windows of the remaining frames, clamped at the end of the audio as the
        reference clamps its last window."""
        total = frame_count(self._received, self.fps)
        if self._next >= total:
            return np.zeros((0, WAV2LIP_MEL.num_mels, MEL_STEP_SIZE), dtype=np.float32)
        n_cols = 1 + self._received // _HOP
        starts = mel_chunk_starts(n_cols, self.fps, total)[self._next :]
        mel, col0 = self._segment_mel(int(starts[0]))
        self._next = total
        return _cut(mel, starts - col0)

    def _trim(self) -> None:
        """Drop audio that no later window (or its warm-up) can reach.

        The next frame's window starts at ``start(next)`` unless the audio ends soon, when it
        is clamped to the last 16 columns: both stay kept.
        """
        last_start = self._received // _HOP + 1 - MEL_STEP_SIZE
        first_col = min(self._start(self._next), last_start)
        keep_from = max(0, first_col - _WARMUP_COLS) * _HOP
        drop = keep_from - self._base
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._base = keep_from


def _cut(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    index = starts[:, None] + np.arange(MEL_STEP_SIZE)[None, :]
    return np.ascontiguousarray(mel[:, index].transpose(1, 0, 2), dtype=np.float32)
