"""The Wav2Lip engine: re-lip-sync a video (or make a still portrait speak) with a checkpoint.

Follows the reference ``inference.py`` where it matters for the network: the face box
padded by Wav2Lip's ``pads`` (default 10 pixels below the chin), the crop stretched to
96x96, the lower half of the target copy zeroed, one 16-column mel window per video frame
with the reference frame-to-mel indexing (:func:`avatarlab.media.mel_windows`), BGR input in
[0, 1]. It differs where the reference shows artefacts: boxes come from our face tracker
(smoothed without lag) instead of S3FD with a 5-frame mean; the output is pasted back with
a feathered lower-face mask instead of a hard rectangle; frames stream from disk, so memory
does not grow with the clip.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from avatarlab._torch import resolve_device
from avatarlab._util import track_progress
from avatarlab.engines.base import Driver, Source, register_engine
from avatarlab.engines.wav2lip.audio import MelWindowStream, frame_count
from avatarlab.engines.wav2lip.checkpoints import load_wav2lip
from avatarlab.engines.wav2lip.model import FACE_SIZE
from avatarlab.engines.wav2lip.options import DEFAULT_PADS, Wav2LipOptions
from avatarlab.errors import MediaError, NoFaceError, OptionError
from avatarlab.media import SPEECH_RATE, mel_windows, melspectrogram, read_audio, resample


@dataclass(frozen=True)
class Wav2LipAvatar:
    """A source analysed once by :meth:`Wav2LipEngine.prepare`.

    Attributes:
        source: the video or image file.
        fps: frames per second of the output (the video's rate, or ``still_fps``).
        boxes: ``(N, 4)`` int crop boxes ``x0, y0, x1, y1`` (exclusive ends) per source frame,
            padded and clipped to the frame; all zero where the frame has no face.
        still: the portrait, RGB uint8 ``(H, W, 3)``, for a still image; ``None`` for video.
        video_size: ``(width, height)`` of a video source (a still's comes from ``still``).
    """

    source: Path
    fps: float
    boxes: np.ndarray
    still: np.ndarray | None = None
    video_size: tuple[int, int] = (0, 0)

    @property
    def n_frames(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the source and of every output frame."""
        if self.still is not None:
            return (int(self.still.shape[1]), int(self.still.shape[0]))
        return self.video_size

    def describe(self) -> list[str]:
        """How many source frames have a face box (the others pass through unchanged)."""
        boxed = int(np.count_nonzero(self.boxes.any(axis=1)))
        return [f"face boxes: {boxed} of {self.n_frames} source frames"]


def crop_boxes(
    boxes: np.ndarray,
    frame_size: tuple[int, int],
    pads: tuple[int, int, int, int],
    max_gap: int = 5,
) -> np.ndarray:
    """Face boxes ``(N, 4)`` x0, y0, x1, y1 -> padded, clipped int crop boxes ``(N, 4)``.

    NaN rows (no face) within ``max_gap`` frames of a face take the nearest face's box;
    farther ones become all-zero boxes (the frame is left as it is). Raises
    :class:`NoFaceError` when no frame has a face. ``frame_size`` is ``(width, height)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.isfinite(boxes).all(axis=1)
    if not valid.any():
        raise NoFaceError("no face found in any frame: Wav2Lip needs a visible face")
    # Each frame takes the box of the nearest frame with a face (ties: the earlier one).
    known = np.flatnonzero(valid)
    frames = np.arange(len(boxes))
    after_pos = np.searchsorted(known, frames)
    before = known[np.clip(after_pos - 1, 0, len(known) - 1)]
    after = known[np.clip(after_pos, 0, len(known) - 1)]
    nearest = np.where(np.abs(frames - before) <= np.abs(after - frames), before, after)
    filled = boxes[nearest]
    top, bottom, left, right = pads
    width, height = frame_size
    out = np.empty_like(filled)
    out[:, 0] = np.clip(filled[:, 0] - left, 0, width)
    out[:, 1] = np.clip(filled[:, 1] - top, 0, height)
    out[:, 2] = np.clip(filled[:, 2] + right, 0, width)
    out[:, 3] = np.clip(filled[:, 3] + bottom, 0, height)
    out[np.abs(nearest - frames) > max_gap] = 0
    return np.rint(out).astype(np.int32)


def _ramp(n: int, width: float) -> np.ndarray:
    """Smoothstep from 0 to 1 over the first ``width`` of ``n`` samples (1 after it)."""
    if width <= 0:
        return np.ones(n, dtype=np.float32)
    t = np.clip((np.arange(n, dtype=np.float32) + 0.5) / width, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=64)
def blend_mask(height: int, width: int, blend: str, feather: float) -> np.ndarray:
    """Paste weights ``(height, width, 1)`` float32 in [0, 1] for a crop box of that size.

    Zero at the box border, rising over ``feather`` of the side, so no edge of the box
    shows; for ``"lower"`` the top rises from 35 % to 55 % of the height, so the seam sits
    between the eyes (kept from the source) and the mouth (generated).
    """
    fx, fy = feather * width, feather * height
    across = _ramp(width, fx) * _ramp(width, fx)[::-1]
    down = _ramp(height, fy)[::-1]
    if blend == "lower":
        start = int(0.35 * height)
        top = np.zeros(height, dtype=np.float32)
        top[start:] = _ramp(height - start, 0.2 * height)
    else:
        top = _ramp(height, fy)
    return (np.outer(top * down, across))[:, :, None].astype(np.float32)


@register_engine("wav2lip")
class Wav2LipEngine:
    """Lip-sync with a Wav2Lip checkpoint: ``prepare(source)`` once, then ``render``.

    Args:
        options: checkpoint, device, batch size, cropping and blending, see
            :class:`Wav2LipOptions`.
        model: an already loaded :class:`Wav2Lip` (any module with its call signature)
            used instead of ``options.checkpoint``.

    Raises:
        MissingWeightsError: no checkpoint given and none cached.
        OptionError: CUDA asked for on a machine without a GPU.
    """

    name = "wav2lip"
    Options = Wav2LipOptions
    still_only = frozenset({"still_fps"})
    drives = "speech"

    def __init__(
        self, options: Wav2LipOptions | None = None, *, model: torch.nn.Module | None = None
    ) -> None:
        self.options = options or Wav2LipOptions()
        self.device = resolve_device(self.options.device)
        self.batch_size = self.options.batch_size
        if model is not None:
            self.model = model.to(self.device).eval()
        else:
            self.model = load_wav2lip(self.options.checkpoint, self.device)

    def prepare(self, source: Source) -> Wav2LipAvatar:
        """Track the face through a video, or find it in a portrait (file or RGB array)."""
        from avatarlab.face.track import FaceTracker, track_video
        from avatarlab.media import probe, read_image

        opts = self.options
        if isinstance(source, np.ndarray):
            with FaceTracker() as tracker:
                track = tracker.track([(source, 0.0)])
            size = (source.shape[1], source.shape[0])
            boxes = crop_boxes(track.boxes, size, opts.pads, opts.max_gap)
            return Wav2LipAvatar(Path("<array>"), opts.still_fps, boxes, source.copy())
        path = Path(source)
        info = probe(path)
        track = track_video(path)
        boxes = crop_boxes(track.boxes, (info.width, info.height), opts.pads, opts.max_gap)
        if info.is_image:
            return Wav2LipAvatar(path, opts.still_fps, boxes[:1], read_image(path))
        return Wav2LipAvatar(path, info.fps, boxes, video_size=(info.width, info.height))

    @staticmethod
    def _frames(avatar: Wav2LipAvatar) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        """Endless ``(frame, crop box)``: a still repeats; a video loops like the reference."""
        if avatar.still is not None:
            yield from itertools.repeat((avatar.still, avatar.boxes[0]))
            return
        from avatarlab.media import iter_frames

        while True:
            count = 0
            for (frame, _), box in zip(iter_frames(avatar.source), avatar.boxes, strict=False):
                count += 1
                yield frame, box
            if count == 0:
                raise MediaError(f"{avatar.source} has no frames to lip-sync")

    def render(
        self, avatar: Wav2LipAvatar, driver: Driver | np.ndarray, sample_rate: int = SPEECH_RATE
    ) -> Iterator[np.ndarray]:
        """Yield RGB uint8 frames (source size) lip-synced to the driver's speech.

        ``driver`` is a :class:`~avatarlab.engines.base.Driver` (audio, text through TTS, or a
        ready speech analysis) or float32 mono audio ``(N,)`` at ``sample_rate``. Yields
        ``ceil(duration * fps)`` frames, so the video covers the whole audio (the reference
        stops up to ~0.1 s early); frame ``i`` gets the reference's mel window
        ``int(i * 80 / fps)``, clamped at the end. The video is cut short or looped (as the
        reference does) to that length.
        """
        wav = _speech_16k(driver, sample_rate, avatar.fps)
        windows = mel_windows(melspectrogram(wav), avatar.fps, frame_count(len(wav), avatar.fps))
        frames = self._frames(avatar)
        starts = range(0, len(windows), self.batch_size)
        try:
            for start in track_progress(starts, "wav2lip", total=len(starts)):
                yield from self._render_windows(frames, windows[start : start + self.batch_size])
        finally:
            frames.close()  # closes the decoder of a video source now, not at GC

    def render_stream(
        self, avatar: Wav2LipAvatar, audio_chunks: Iterable[np.ndarray], sample_rate: int
    ) -> Iterator[list[np.ndarray]]:
        """Live form of :meth:`render`: float32 mono chunks in, a list of frames per chunk out.

        A frame is ready once its 0.2 s mel window is complete (212.5 ms of audio after
        its time, :class:`MelWindowStream`), plus the network time; after the last chunk
        the remaining frames come in one list. Together they equal :meth:`render`'s frames.
        """
        mels = MelWindowStream(avatar.fps)
        resampler = None
        if sample_rate != SPEECH_RATE:
            import soxr

            resampler = soxr.ResampleStream(sample_rate, SPEECH_RATE, 1, dtype="float32")
        frames = self._frames(avatar)
        try:
            for chunk in audio_chunks:
                wav = np.asarray(chunk, dtype=np.float32).reshape(-1)
                if resampler is not None:
                    wav = resampler.resample_chunk(wav)
                yield list(self._render_batched(frames, mels.push(wav)))
            if resampler is not None:
                mels.push(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            yield list(self._render_batched(frames, mels.finish()))
        finally:
            frames.close()

    def _render_batched(
        self, frames: Iterator[tuple[np.ndarray, np.ndarray]], windows: np.ndarray
    ) -> Iterator[np.ndarray]:
        for start in range(0, len(windows), self.batch_size):
            yield from self._render_windows(frames, windows[start : start + self.batch_size])

    @torch.inference_mode()
    def _render_windows(
        self, frames: Iterator[tuple[np.ndarray, np.ndarray]], mels: np.ndarray
    ) -> Iterator[np.ndarray]:
        """One network call: the next ``len(mels)`` source frames with these mel windows."""
        if len(mels) == 0:
            return
        batch = list(itertools.islice(frames, len(mels)))
        crops = np.stack([_crop(frame, box) for frame, box in batch])  # (B, 96, 96, 3) RGB
        bgr = torch.from_numpy(crops[..., ::-1].copy()).to(self.device)
        bgr = bgr.permute(0, 3, 1, 2).float().div_(255.0)
        masked = bgr.clone()
        masked[:, :, FACE_SIZE // 2 :] = 0.0
        faces = torch.cat((masked, bgr), dim=1)
        audio = torch.from_numpy(mels).to(self.device).unsqueeze(1)
        pred = self.model(audio, faces)  # (B, 3, 96, 96) BGR in [0, 1]
        rgb = pred.flip(1).permute(0, 2, 3, 1).mul_(255.0).cpu().numpy()
        for (frame, box), face in zip(batch, rgb, strict=True):
            yield self._paste(frame, face, box)

    def _paste(self, frame: np.ndarray, face: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (int(v) for v in box)
        out = frame.copy()
        if x1 - x0 < 2 or y1 - y0 < 2:
            return out
        patch = cv2.resize(face, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        mask = blend_mask(y1 - y0, x1 - x0, self.options.blend, self.options.feather)
        region = out[y0:y1, x0:x1].astype(np.float32)
        region += mask * (patch - region)
        out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
        return out


def _speech_16k(driver: Driver | np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """The driver's speech as float32 mono 16 kHz ``(N,)``; text goes through TTS."""
    if isinstance(driver, np.ndarray):
        driver = Driver(audio=driver, sample_rate=sample_rate)
    if driver.speech is not None or driver.text is not None:
        return driver.analyse(fps).audio16k
    if isinstance(driver.audio, np.ndarray):
        wav = np.asarray(driver.audio, dtype=np.float32)
        if wav.ndim != 1:
            raise OptionError(f"audio must be mono (N,), got shape {wav.shape}")
        rate = driver.sample_rate or SPEECH_RATE
        return wav if rate == SPEECH_RATE else resample(wav, rate, SPEECH_RATE)
    if driver.audio is None:
        raise OptionError("the driver has no speech: give audio, text or a speech analysis")
    return read_audio(driver.audio, SPEECH_RATE)


def _crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box of ``frame`` stretched to 96x96 (RGB uint8), as the reference resizes it."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((FACE_SIZE, FACE_SIZE, 3), dtype=np.uint8)
    return cv2.resize(frame[y0:y1, x0:x1], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)


def wav2lip_dub(
    video: str | os.PathLike[str],
    audio: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: Wav2LipOptions | None = None,
    *,
    model: torch.nn.Module | None = None,
) -> Path:
    """Lip-sync ``video`` (or a still image) to the speech in ``audio``; write ``out`` (MP4).

    The output has the source's size and frame rate, the audio's duration (the video is
    cut or looped to it, see :meth:`Wav2LipEngine.render`) and the audio muxed in.
    Written atomically: nothing appears at ``out`` if anything fails. ``model`` is a
    loaded network used instead of ``options.checkpoint``.
    """
    from avatarlab.media import VideoWriter

    engine = Wav2LipEngine(options, model=model)
    avatar = engine.prepare(video)
    wav = read_audio(audio, SPEECH_RATE)
    with VideoWriter(out, avatar.fps, audio=wav, sample_rate=SPEECH_RATE) as writer:
        for frame in engine.render(avatar, wav, SPEECH_RATE):
            writer.write(frame)
    return Path(out)


__all__ = [
    "DEFAULT_PADS",
    "Wav2LipAvatar",
    "Wav2LipEngine",
    "Wav2LipOptions",
    "blend_mask",
    "crop_boxes",
    "wav2lip_dub",
]
