"""What a media file holds: streams, sizes, rates, durations, frame counts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from avatarlab.errors import MediaError
from avatarlab.media._open import (
    check_exists,
    check_pixels,
    display_rotation,
    full_index,
    is_image_path,
    open_image,
    open_input,
)

_EXIF_ORIENTATION = 0x0112
#: EXIF orientations that swap width and height (transpose / rotate 90 / transverse / 270).
_EXIF_TRANSPOSED = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class MediaInfo:
    """Facts about one media file, as returned by :func:`probe`.

    Attributes:
        path: the file probed.
        duration: seconds; the container's duration (longest stream). 0 for images.
        has_video: a video stream or a still image is present.
        has_audio: an audio stream is present.
        width, height: *display* size in pixels (after rotation metadata); 0 without video.
        fps: average frame rate (frames / second); 0 without video, 0 for images.
        n_frames: exact number of video frames (1 for an image, 0 without video).
        rotation: clockwise degrees (0/90/180/270) applied for display.
        video_codec, audio_codec: FFmpeg codec names ("h264", "aac", "png"), "" if absent.
        sample_rate: audio samples per second; 0 without audio.
        channels: audio channel count; 0 without audio.
        is_image: a still image (read with Pillow, one frame at t=0).
    """

    path: Path
    duration: float
    has_video: bool
    has_audio: bool
    width: int
    height: int
    fps: float
    n_frames: int
    rotation: int
    video_codec: str
    audio_codec: str
    sample_rate: int
    channels: int
    is_image: bool


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe ``path`` (video, audio or still image) without decoding it fully.

    ``n_frames`` comes from the container's frame count when it has one (MP4/MOV)
    and otherwise from counting demuxed video packets, so it is exact either way.

    Raises:
        MediaLimitError: a picture (image or video frame) over ``MAX_IMAGE_PIXELS``,
            found from the header alone.
        MediaError: the file is missing or is not media FFmpeg/Pillow can read.
    """
    p = check_exists(path)
    if is_image_path(p):
        return _probe_image(p)
    with open_input(p) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaError(f"{p} has neither video nor audio streams: pass a media file")
        _check_complete(p, container)
        duration = _duration(container)
        width = height = n_frames = rotation = 0
        fps = 0.0
        video_codec = audio_codec = ""
        if video is not None:
            video_codec = video.codec_context.name
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else 0.0
            check_pixels(p, video.codec_context.width, video.codec_context.height, "video frame")
            first = _first_frame(container, video)
            rotation = display_rotation(first) if first is not None else 0
            width, height = video.codec_context.width, video.codec_context.height
            if first is not None:
                width, height = first.width, first.height
            if rotation in (90, 270):
                width, height = height, width
            n_frames = _count_frames(p, video)
            if n_frames == 0:
                raise MediaError(
                    f"{p} has a video stream with no frames: the file is empty or truncated"
                )
            if fps == 0.0 and duration > 0:
                fps = n_frames / duration
        sample_rate = channels = 0
        if audio is not None:
            audio_codec = audio.codec_context.name
            sample_rate = int(audio.codec_context.sample_rate or 0)
            channels = int(audio.codec_context.channels or 0)
        return MediaInfo(
            path=p,
            duration=duration,
            has_video=video is not None,
            has_audio=audio is not None,
            width=int(width),
            height=int(height),
            fps=fps,
            n_frames=int(n_frames),
            rotation=rotation,
            video_codec=video_codec,
            audio_codec=audio_codec,
            sample_rate=sample_rate,
            channels=channels,
            is_image=False,
        )


def _probe_image(p: Path) -> MediaInfo:
    """Header-only facts about a still image (no pixel decoding)."""
    with open_image(p) as img:
        width, height = img.size
        codec = (img.format or p.suffix.lstrip(".")).lower()
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in _EXIF_TRANSPOSED:
        width, height = height, width
    return MediaInfo(
        path=p,
        duration=0.0,
        has_video=True,
        has_audio=False,
        width=width,
        height=height,
        fps=0.0,
        n_frames=1,
        rotation=0,
        video_codec=codec,
        audio_codec="",
        sample_rate=0,
        channels=0,
        is_image=True,
    )


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    longest = 0.0
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None:
            longest = max(longest, float(stream.duration * stream.time_base))
    return longest


def _first_frame(
    container: av.container.InputContainer, stream: av.VideoStream
) -> av.VideoFrame | None:
    for frame in container.decode(stream):
        return frame
    return None


def _count_frames(p: Path, stream: av.VideoStream) -> int:
    """Frames a decoder will output: index entries minus those an edit list discards.

    MP4's ``nb_frames`` counts every stored sample, including the ones before a
    stream-copy cut point that players skip, so it can overcount.
    """
    if full_index(stream):
        return sum(1 for e in stream.index_entries if not e.is_discard)
    if stream.frames > 0:
        return int(stream.frames)
    # No index (MKV without cues, TS, raw streams): count the packets that carry a frame.
    with open_input(p) as fresh:
        vs = fresh.streams.video[0]
        return sum(1 for pkt in fresh.demux(vs) if pkt.size > 0 and not pkt.is_discard)


def _check_complete(p: Path, container: av.container.InputContainer) -> None:
    """Raise MediaError when the index points past the end of the file (truncated copy)."""
    size = p.stat().st_size
    for stream in container.streams:
        if stream.type not in ("video", "audio"):
            continue
        entries = stream.index_entries
        if len(entries) and max(e.pos + e.size for e in entries) > size:
            raise MediaError(
                f"{p} is truncated: its {stream.type} data runs past the end of the file "
                f"({size} bytes); re-download or re-export it"
            )
