"""Reading, resampling and writing audio.

Audio arrays are float32 in [-1, 1]: mono ``(N,)`` or multi-channel ``(C, N)``
(channels first, as librosa and PyAV's planar formats use), at a stated rate.
"""

from __future__ import annotations

import os

import av
import numpy as np

from avatarlab._util import atomic_output
from avatarlab.constants import SPEECH_RATE
from avatarlab.errors import MediaError, MediaLimitError, NoAudioError
from avatarlab.media._open import (
    av_errors,
    full_index,
    is_image_path,
    open_input,
)

#: soxr quality preset used everywhere; librosa's default ``res_type`` is the same.
SOXR_QUALITY = "HQ"
#: Seconds a container's stated duration may exceed ``max_seconds`` before it is refused
#: unread (encoder padding and rounding: the decoded length is then checked exactly).
DURATION_SLACK_S = 1.0


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = SPEECH_RATE,
    mono: bool = True,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode the first audio stream of ``path`` (wav, mp3, aac, m4a, mp4, ...).

    Args:
        path: any file FFmpeg decodes that has an audio stream.
        sample_rate: resample to this rate (soxr HQ); ``None`` keeps the native rate.
        mono: average the channels (as ``librosa.load`` does).
        max_seconds: refuse audio longer than this (see :func:`read_audio_with_rate`).

    Returns:
        float32 in [-1, 1]: ``(N,)`` when ``mono``, else ``(C, N)``.

    Raises:
        NoAudioError: the file has no audio stream (e.g. a silent video or an image).
        MediaLimitError: the audio is longer than ``max_seconds``.
        MediaError: missing, unreadable or empty file.
    """
    audio, rate = read_audio_with_rate(path, mono=mono, max_seconds=max_seconds)
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
    return audio


def read_audio_with_rate(
    path: str | os.PathLike[str], mono: bool = True, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode audio at its native rate; returns ``(audio, sample_rate)``.

    Sample 0 sits at time 0 of the container, the same origin as
    :func:`avatarlab.media.iter_frames` timestamps: when the audio stream starts
    later than the container, the gap is filled with silence, so audio and frame
    times stay in sync.

    ``max_seconds`` bounds the memory a small file can claim (an hour of Opus is 2 MB
    but 700 MB decoded): a container whose header states a longer duration is refused
    unread, and decoding stops as soon as the samples (with any leading gap) pass the
    limit, for files whose header is missing (live WebM) or lies. Raises
    :class:`MediaLimitError` in both cases.
    """
    if is_image_path(path):
        raise NoAudioError(f"{path} is a still image and has no audio: pass an audio or video file")
    with open_input(path) as container:
        if not container.streams.audio:
            raise NoAudioError(
                f"{path} has no audio stream: pass a file with sound, or give the audio separately"
            )
        stream = container.streams.audio[0]
        if max_seconds is not None:
            _check_stated_duration(path, container, stream, max_seconds)
        rate = int(stream.codec_context.sample_rate or 0)
        # Convert every decoded frame to planar float32, keeping rate and layout.
        converter = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        end_pts: int | None = None  # end of the last packet: AAC pads its final frame
        packets = 0
        decoded = 0  # samples per channel
        origin = 0.0 if container.start_time is None else container.start_time / av.time_base
        for packet in container.demux(stream):
            packets += packet.size > 0
            if packet.pts is not None and packet.duration:
                end = packet.pts + packet.duration
                end_pts = end if end_pts is None else max(end_pts, end)
            for frame in packet.decode():
                if first_time is None and frame.pts is not None and frame.time_base is not None:
                    first_time = float(frame.pts * frame.time_base)
                rate = frame.sample_rate or rate
                decoded += frame.samples
                if max_seconds is not None and rate > 0:
                    lead_s = 0.0 if first_time is None else max(first_time - origin, 0.0)
                    if lead_s + decoded / rate > max_seconds + DURATION_SLACK_S:
                        raise MediaLimitError(
                            f"{path} is longer than {max_seconds:g} s (decoding stopped there); "
                            f"at most {max_seconds:g} s is read: trim it or split it"
                        )
                chunks.extend(c.to_ndarray() for c in converter.resample(frame))
        chunks.extend(c.to_ndarray() for c in converter.resample(None))
        time_base = stream.time_base
        if packets < full_index(stream):
            raise MediaError(
                f"{path} is truncated: its index lists {full_index(stream)} audio packets "
                f"but the file ends after {packets}; re-download or re-export it"
            )
    if not chunks or rate <= 0:
        raise MediaError(
            f"{path} has an audio stream but no decodable samples: the file is empty or corrupt"
        )
    audio = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if end_pts is not None and time_base is not None and first_time is not None:
        # Drop the encoder padding after the last real sample (what ffprobe's duration shows).
        keep = int(round((float(end_pts * time_base) - first_time) * rate))
        if 0 < keep < audio.shape[1]:
            audio = audio[:, :keep]
    if audio.shape[1] == 0:
        raise MediaError(f"{path} has an audio stream with zero samples")
    lead = 0 if first_time is None else int(round((first_time - origin) * rate))
    if lead > 0:
        audio = np.pad(audio, ((0, 0), (lead, 0)))
    if max_seconds is not None and audio.shape[1] / rate > max_seconds:
        raise MediaLimitError(
            f"{path} is {audio.shape[1] / rate:.1f} s long; at most {max_seconds:g} s is read: "
            "trim it or split it"
        )
    if mono:
        return audio.mean(axis=0, dtype=np.float32), rate
    return np.ascontiguousarray(audio), rate


def _check_stated_duration(
    path: object,
    container: av.container.InputContainer,
    stream: av.AudioStream,
    max_seconds: float,
) -> None:
    """Refuse, before decoding, a file whose header says it is longer than ``max_seconds``."""
    stated = None
    if stream.duration is not None and stream.time_base is not None:
        stated = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        stated = container.duration / av.time_base
    if stated is not None and stated > max_seconds + DURATION_SLACK_S:
        raise MediaLimitError(
            f"{path} is {stated:.1f} s long; at most {max_seconds:g} s is read: trim it or split it"
        )


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample ``(N,)`` or ``(C, N)`` float audio with soxr (HQ), returning float32.

    The output has exactly ``ceil(N * to_rate / from_rate)`` samples (zero-padded or
    trimmed), the same length ``librosa.resample`` returns, so features computed
    on it line up with reference implementations.
    """
    if from_rate <= 0 or to_rate <= 0:
        raise MediaError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise MediaError(f"audio must be (N,) or (C, N), got shape {x.shape}")
    if from_rate == to_rate:
        return x.copy()
    import soxr

    n_out = int(np.ceil(x.shape[-1] * to_rate / from_rate))
    # soxr wants (frames, channels)
    y = soxr.resample(x.T, from_rate, to_rate, quality=SOXR_QUALITY).T.astype(
        np.float32, copy=False
    )
    have = y.shape[-1]
    if have > n_out:
        y = y[..., :n_out]
    elif have < n_out:
        pad = [(0, 0)] * (y.ndim - 1) + [(0, n_out - have)]
        y = np.pad(y, pad)
    return np.ascontiguousarray(y)


def as_channels_first(audio: np.ndarray) -> np.ndarray:
    """View ``(N,)`` or ``(C, N)`` audio as float32 ``(C, N)``, validating the shape."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] > 8 or x.shape[1] == 0:
        raise MediaError(f"audio must be (N,) or (C, N) with 1-8 channels and N > 0, got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return (x.astype(np.float32) / float(-info.min if info.min < 0 else info.max)).astype(
            np.float32
        )
    return x.astype(np.float32, copy=False)


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write ``(N,)`` or ``(C, N)`` float audio to a 16-bit PCM WAV file, atomically.

    Values are clipped to [-1, 1] before conversion to int16.
    """
    x = as_channels_first(audio)
    if sample_rate <= 0:
        raise MediaError(f"sample_rate must be positive, got {sample_rate}")
    pcm = np.clip(np.rint(np.clip(x, -1.0, 1.0) * 32767.0), -32768, 32767).astype(np.int16)
    layout = _layout(pcm.shape[0])
    with (
        atomic_output(path, suffix=".wav") as tmp,
        av_errors(path, "write"),
        av.open(str(tmp), mode="w", format="wav") as out,
    ):
        stream = out.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
        block = 4096
        for i in range(0, pcm.shape[1], block):
            # packed s16 wants (1, N*C) interleaved samples
            chunk = np.ascontiguousarray(pcm[:, i : i + block].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
