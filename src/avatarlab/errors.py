"""The error types avatarlab raises for user mistakes and missing resources.

Every message says what went wrong *and* what to do; the CLI prints it as one
line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class AvatarLabError(Exception):
    """Base class of every error avatarlab raises on purpose."""

    exit_code = 1


class MediaError(AvatarLabError):
    """A file is missing, unreadable, not media, empty, or in an unsupported format."""

    exit_code = 2


class MediaLimitError(MediaError):
    """Valid media over a stated limit (pixels, seconds), refused before it is decoded whole."""


class NoVideoError(MediaError):
    """The media has no video stream but one is needed."""


class NoAudioError(MediaError):
    """The media has no audio stream but one is needed."""


class NoFaceError(AvatarLabError):
    """No face was found where one is needed.

    ``frames`` lists the frame indices without a face (empty for a still image).
    """

    exit_code = 3

    def __init__(self, message: str, frames: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.frames = list(frames)


class NoPersonError(NoFaceError):
    """No person (body) was found where one is needed; ``frames`` lists the frames without anybody."""


class MissingWeightsError(AvatarLabError):
    """A checkpoint that must come from the user is missing or not the expected file."""

    exit_code = 4


class CheckpointError(MissingWeightsError):
    """A checkpoint file exists but its keys, shapes or checksum are wrong."""


class OptionError(AvatarLabError):
    """An option value is out of range or inconsistent with another."""

    exit_code = 2


def describe_frames(frames: Sequence[int], limit: int = 12) -> str:
    """Render frame indices compactly as ranges, e.g. ``0-4, 9, 12-20``."""
    if not frames:
        return "none"
    runs: list[str] = []
    start = prev = frames[0]
    for f in list(frames[1:]) + [None]:  # type: ignore[list-item]
        if f is not None and f == prev + 1:
            prev = f
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    text = ", ".join(runs[:limit])
    return text + (f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else "")
