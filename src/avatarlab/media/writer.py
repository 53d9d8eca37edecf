"""Writing video (H.264 + AAC in MP4) frame by frame, and muxing audio into video.

Conventions:
- Frames are RGB uint8 ``(H, W, 3)``; all frames of one file share one size.
- H.264 yuv420p needs even sizes: odd widths/heights are **padded** by repeating
  the last column/row (nothing is cut off, face coordinates stay valid), so a
  333x251 input is stored as 334x252.
- Fractional rates (22.13 fps) are kept exactly as a Fraction; frame ``i`` has
  pts ``i`` in time base ``1/fps``.
- Audio is float32 ``(N,)`` or ``(C, N)`` at ``sample_rate``, encoded as AAC
  and interleaved with the video as it is written, so memory does not grow with
  the length of the clip.
- The output appears only on success: frames go to a temporary file beside the
  target, which is moved into place on close and deleted on any error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sized
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from avatarlab._util import atomic_output, track_progress
from avatarlab.errors import MediaError, NoVideoError, OptionError
from avatarlab.media._open import av_errors, open_input
from avatarlab.media.audio import as_channels_first

#: Largest denominator kept when turning a float fps into a Fraction (22.13 -> 2213/100;
#: 29.97 -> 2997/100; 30000/1001 given as a Fraction stays exact).
_FPS_MAX_DENOMINATOR = 1001 * 100
#: x264 speed presets, fastest first.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
#: Audio sent to the encoder per call (samples); any size works, PyAV re-frames to 1024.
_AUDIO_BLOCK = 4096
#: AAC bit rate per channel (bits/second): transparent for speech.
_AAC_BITRATE_PER_CHANNEL = 96_000


VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi")
"""Containers the H.264/AAC writer can produce."""


def check_video_output(path: str | os.PathLike[str]) -> Path:
    """Fail fast, before any work, on an output path the writer cannot produce.

    Raises:
        OptionError: the name has no supported video extension, or is an existing folder.
    """
    target = Path(path)
    if target.is_dir():
        raise OptionError(f"{target} is a folder: give a file name such as {target / 'out.mp4'}")
    if target.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
        raise OptionError(
            f"cannot write video to {target}: use one of {', '.join(VIDEO_OUTPUT_SUFFIXES)}"
        )
    return target


def fps_fraction(fps: float | Fraction) -> Fraction:
    """Exact frame rate as a Fraction (``22.13`` -> ``2213/100``)."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        if not np.isfinite(fps):
            raise MediaError(f"fps must be a finite number, got {fps}")
        rate = Fraction(str(float(fps))).limit_denominator(_FPS_MAX_DENOMINATOR)
    if rate <= 0 or rate > 1000:
        raise MediaError(f"fps must be in (0, 1000], got {float(rate)}")
    return rate


def even_size(width: int, height: int) -> tuple[int, int]:
    """The stored (width, height) for a frame size: odd sides padded up by one pixel."""
    return width + width % 2, height + height % 2


def _audio_frame(chunk: np.ndarray, layout: str, rate: int, pts: int) -> av.AudioFrame:
    """A planar float32 AudioFrame from ``(C, n)`` samples starting at sample ``pts``."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(chunk, dtype=np.float32), format="fltp", layout=layout
    )
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def _pad_even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Stream RGB frames (and optionally audio) into an H.264/AAC MP4, atomically.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=25, audio=wav, sample_rate=16000) as w:
            for frame in frames:
                w.write(frame)

    Args:
        path: output file; its extension picks the container (``.mp4``, ``.mov``, ``.mkv``).
        fps: frames per second, float or Fraction (fractional rates kept exactly).
        audio: optional float32 ``(N,)`` / ``(C, N)`` audio, muxed as AAC in sync
            (sample 0 at the first frame). Alternatively stream it with :meth:`write_audio`.
        sample_rate: rate of ``audio`` (required with any audio).
        crf: x264 constant rate factor (0 lossless .. 51 worst; 18 is visually lossless).
        preset: x264 speed/size preset ("ultrafast" .. "veryslow").
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        *,
        audio: np.ndarray | None = None,
        sample_rate: int | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ) -> None:
        self.path = check_video_output(path)
        self.rate = fps_fraction(fps)
        if not 0 <= crf <= 51:
            raise MediaError(f"crf must be in 0..51, got {crf}")
        if preset not in X264_PRESETS:
            raise MediaError(
                f"preset {preset!r} is not an x264 preset; use one of {', '.join(X264_PRESETS)}"
            )
        if audio is not None and sample_rate is None:
            raise MediaError("audio was given without sample_rate: pass sample_rate=<Hz>")
        self._crf = crf
        self._preset = preset
        self.sample_rate = sample_rate
        self._pending_audio = as_channels_first(audio) if audio is not None else None
        self._audio_channels = 0
        self._audio_sent = 0  # samples handed to the encoder so far
        self._audio_buffer: list[np.ndarray] = []  # streamed chunks not yet encoded
        self._stack = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        self._size: tuple[int, int] | None = None  # input (width, height)
        self.frames_written = 0
        self._closed = False
        self._open()

    # -- lifecycle -----------------------------------------------------------------
    def _open(self) -> None:
        tmp = self._stack.enter_context(atomic_output(self.path))
        try:
            with av_errors(self.path, "create"):
                options = (
                    {"movflags": "+faststart"}
                    if self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
                    else {}
                )
                self._container = av.open(str(tmp), mode="w", options=options)
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __del__(self) -> None:
        # Never closed (not used as a context manager): drop the temporary file.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self._abort(MediaError(f"VideoWriter for {self.path} was not closed"))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)

    def _abort(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        # Re-raise inside atomic_output so it deletes the temporary file.
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(exc), exc, exc.__traceback__)

    def close(self) -> None:
        """Flush encoders, finish the file and move it into place."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise MediaError(f"no frames were written to {self.path}: nothing to save")
            with av_errors(self.path, "write"):
                if self._needs_silence():
                    n = max(1, int(self.frames_written / self.rate * int(self.sample_rate or 0)))
                    self._audio_buffer.append(np.zeros((self._audio_channels, n), np.float32))
                self._send_audio(until=None)
                assert self._container is not None and self._video is not None
                for packet in self._video.encode(None):
                    self._container.mux(packet)
                if self._audio is not None:
                    for packet in self._audio.encode(None):
                        self._container.mux(packet)
                self._container.close()
        except BaseException as exc:
            self._abort(exc)
            raise
        self._closed = True
        self._stack.close()

    def _needs_silence(self) -> bool:
        """sample_rate was given for streamed audio but no audio ever arrived."""
        return (
            self._audio is not None
            and self._pending_audio is None
            and self._audio_sent == 0
            and not self._audio_buffer
        )

    # -- streams -------------------------------------------------------------------
    def _add_video(self, width: int, height: int) -> None:
        assert self._container is not None
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = even_size(width, height)
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / self.rate
        stream.codec_context.time_base = 1 / self.rate
        stream.options = {"crf": str(self._crf), "preset": self._preset}
        stream.thread_type = "AUTO"
        self._video = stream

    def _add_audio(self, channels: int) -> None:
        assert self._container is not None and self.sample_rate is not None
        layout = {1: "mono", 2: "stereo"}.get(channels)
        if layout is None:
            raise MediaError(f"audio must have 1 or 2 channels for AAC here, got {channels}")
        stream = self._container.add_stream("aac", rate=int(self.sample_rate), layout=layout)
        stream.bit_rate = _AAC_BITRATE_PER_CHANNEL * channels
        stream.time_base = Fraction(1, int(self.sample_rate))
        self._audio = stream
        self._audio_channels = channels

    # -- writing -------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 ``(H, W, 3)`` frame (all frames must share one size)."""
        if self._closed:
            raise MediaError(f"VideoWriter for {self.path} is closed")
        arr = np.asarray(frame)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise MediaError(f"frames must be RGB (H, W, 3), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise MediaError(
                f"frames must be uint8, got {arr.dtype}: convert with np.clip(x, 0, 255).astype(np.uint8)"
            )
        h, w = arr.shape[:2]
        try:
            if self._size is None:
                self._start(w, h)
            elif (w, h) != self._size:
                raise MediaError(
                    f"frame {self.frames_written} is {w}x{h} but the video is "
                    f"{self._size[0]}x{self._size[1]}: resize frames to one size"
                )
            assert self._container is not None and self._video is not None
            with av_errors(self.path, "write"):
                vf = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(_pad_even(arr)), format="rgb24"
                )
                vf.pts = self.frames_written
                vf.time_base = self._video.codec_context.time_base
                for packet in self._video.encode(vf):
                    self._container.mux(packet)
                self.frames_written += 1
                # Encode audio only up to the current video time so the two interleave.
                self._send_audio(until=self.frames_written / self.rate)
        except BaseException as exc:
            self._abort(exc)
            raise

    def _start(self, w: int, h: int) -> None:
        """Create the streams on the first frame (the header is written on first mux)."""
        if h < 2 or w < 2:
            raise MediaError(f"frame size {w}x{h} is too small to encode (need at least 2x2)")
        self._size = (w, h)
        self._add_video(w, h)
        if self._pending_audio is not None:
            self._add_audio(self._pending_audio.shape[0])
        elif self.sample_rate is not None:
            # Streamed audio: channel count from the chunks buffered so far, else mono.
            self._add_audio(self._audio_buffer[0].shape[0] if self._audio_buffer else 1)

    def write_audio(self, chunk: np.ndarray) -> None:
        """Append streamed audio ``(n,)`` / ``(C, n)`` at ``sample_rate``; sample 0 = frame 0.

        Needs ``sample_rate`` at open and no ``audio=`` argument. Chunks may come
        before or after the frames they belong to. The channel count is fixed by
        the chunks received before the first frame (mono if none); later chunks
        are averaged to mono or duplicated to stereo to match.
        """
        if self._closed:
            raise MediaError(f"VideoWriter for {self.path} is closed")
        if self.sample_rate is None:
            raise MediaError("write_audio needs sample_rate=<Hz> when the VideoWriter is opened")
        if self._pending_audio is not None:
            raise MediaError(
                "audio was already given at open; do not also stream it with write_audio"
            )
        x = as_channels_first(chunk)
        if x.shape[0] > 2:
            raise MediaError(f"audio must have 1 or 2 channels, got {x.shape[0]}")
        try:
            if self._audio is not None and x.shape[0] != self._audio_channels:
                x = (
                    x.mean(axis=0, keepdims=True)
                    if self._audio_channels == 1
                    else np.repeat(x, self._audio_channels, axis=0)
                )
            elif self._audio_buffer and x.shape[0] != self._audio_buffer[0].shape[0]:
                raise MediaError("audio chunks before the first frame must share one channel count")
            self._audio_buffer.append(x)
            if self._audio is not None:
                with av_errors(self.path, "write"):
                    self._send_audio(until=self.frames_written / self.rate)
        except BaseException as exc:
            self._abort(exc)
            raise

    def _take_audio(self, n: int) -> np.ndarray | None:
        """Pop up to ``n`` samples of not-yet-encoded audio as float32 ``(C, m)``."""
        if self._pending_audio is not None:
            chunk = self._pending_audio[:, self._audio_sent : self._audio_sent + n]
            return chunk if chunk.shape[1] else None
        if not self._audio_buffer:
            return None
        parts: list[np.ndarray] = []
        got = 0
        while self._audio_buffer and got < n:
            head = self._audio_buffer[0]
            take = min(n - got, head.shape[1])
            parts.append(head[:, :take])
            got += take
            if take == head.shape[1]:
                self._audio_buffer.pop(0)
            else:
                self._audio_buffer[0] = head[:, take:]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _send_audio(self, until: Fraction | None) -> None:
        """Encode queued audio up to time ``until`` seconds (all of it when None)."""
        if self._audio is None:
            return
        assert self._container is not None and self.sample_rate is not None
        limit = None if until is None else int(until * self.sample_rate)
        while True:
            want = _AUDIO_BLOCK if limit is None else min(_AUDIO_BLOCK, limit - self._audio_sent)
            if want <= 0:
                return
            chunk = self._take_audio(want)
            if chunk is None:
                return
            af = _audio_frame(
                chunk, self._audio.layout.name, int(self.sample_rate), self._audio_sent
            )
            self._audio_sent += chunk.shape[1]
            for packet in self._audio.encode(af):
                self._container.mux(packet)


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    **kw: object,
) -> int:
    """Write frames (an iterable or an ``(N, H, W, 3)`` array) to a video; returns the count.

    ``kw`` goes to :class:`VideoWriter` (``crf``, ``preset``).
    """
    total = len(frames) if isinstance(frames, Sized) else None
    with VideoWriter(path, fps, audio=audio, sample_rate=sample_rate, **kw) as writer:  # type: ignore[arg-type]
        for frame in track_progress(frames, f"writing {Path(path).name}", total=total):
            writer.write(frame)
    return writer.frames_written


def mux_audio(
    video_path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    out_path: str | os.PathLike[str],
) -> None:
    """Copy the video stream of ``video_path`` (no re-encoding) and add ``audio`` as AAC.

    Any audio already in ``video_path`` is dropped. Sample 0 of ``audio`` is placed
    at time 0 of the container. ``out_path`` may equal ``video_path`` (written via
    a temporary file).
    """
    x = as_channels_first(audio)
    if x.shape[0] > 2:
        raise MediaError(f"audio must have 1 or 2 channels, got {x.shape[0]}")
    out_path = Path(out_path)
    with open_input(video_path) as src:
        if not src.streams.video:
            raise NoVideoError(f"{video_path} has no video stream to put audio under")
        vin = src.streams.video[0]
        with atomic_output(out_path) as tmp, av_errors(out_path, "write"):
            options = (
                {"movflags": "+faststart"}
                if out_path.suffix.lower() in (".mp4", ".mov", ".m4v")
                else {}
            )
            with av.open(str(tmp), mode="w", options=options) as dst:
                vout = dst.add_stream_from_template(vin)
                aout = dst.add_stream(
                    "aac", rate=int(sample_rate), layout="mono" if x.shape[0] == 1 else "stereo"
                )
                aout.bit_rate = _AAC_BITRATE_PER_CHANNEL * x.shape[0]
                for i in range(0, x.shape[1], _AUDIO_BLOCK):
                    af = _audio_frame(
                        x[:, i : i + _AUDIO_BLOCK], aout.layout.name, int(sample_rate), i
                    )
                    for packet in aout.encode(af):
                        dst.mux(packet)
                for packet in aout.encode(None):
                    dst.mux(packet)
                for packet in src.demux(vin):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = vout
                    dst.mux(packet)
