"""Media in and out: decode frames and audio, resample, encode and mux, Wav2Lip mel features.

Frames are RGB uint8 ``(H, W, 3)`` in display orientation; audio is float32 in
[-1, 1], mono ``(N,)`` or ``(C, N)``, at a stated sample rate. Pictures over
``MAX_IMAGE_PIXELS`` (50 megapixels) are refused from their header with
``MediaLimitError``, before anything is decoded. All decoding and
encoding goes through PyAV (FFmpeg); errors surface as ``MediaError`` and its
subclasses, never as ``av.error``.
"""

from avatarlab.constants import DEFAULT_FPS, SPEECH_RATE
from avatarlab.errors import MediaError, MediaLimitError, NoAudioError, NoVideoError
from avatarlab.media._open import MAX_IMAGE_PIXELS, is_image_path
from avatarlab.media.audio import (
    read_audio,
    read_audio_with_rate,
    resample,
    write_audio,
)
from avatarlab.media.mel import (
    MEL_STEP_SIZE,
    WAV2LIP_MEL,
    MelParams,
    mel_chunk_starts,
    mel_windows,
    melspectrogram,
)
from avatarlab.media.probe import MediaInfo, probe
from avatarlab.media.video import Video, iter_frames, read_image, read_video
from avatarlab.media.writer import VideoWriter, mux_audio, write_video

__all__ = [
    "DEFAULT_FPS",
    "is_image_path",
    "MAX_IMAGE_PIXELS",
    "MEL_STEP_SIZE",
    "SPEECH_RATE",
    "WAV2LIP_MEL",
    "MediaError",
    "MediaInfo",
    "MediaLimitError",
    "MelParams",
    "NoAudioError",
    "NoVideoError",
    "Video",
    "VideoWriter",
    "iter_frames",
    "mel_chunk_starts",
    "mel_windows",
    "melspectrogram",
    "mux_audio",
    "probe",
    "read_audio",
    "read_audio_with_rate",
    "read_image",
    "read_video",
    "resample",
    "write_audio",
    "write_video",
]
