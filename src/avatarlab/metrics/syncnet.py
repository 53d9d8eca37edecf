"""SyncNet lip-sync scores (LSE-D, LSE-C, AV offset) as in joonson/syncnet_python.

The network (:class:`SyncNet`, same layers and state-dict keys as the reference's
``SyncNetModel.S``), the MFCC front end and ``SyncNetInstance.evaluate`` are
reproduced numerically:

- audio: 16 kHz mono as int16 samples (float32 audio is scaled by 32768 and rounded,
  as FFmpeg's ``pcm_s16le`` conversion does), ``python_speech_features.mfcc`` with its
  defaults (13 coefficients, 100 columns per second), a 20-column window (0.2 s)
  starting at column ``4 * t`` for video frame ``t``;
- video: 224x224 face crops at 25 fps, 5-frame windows, pixel values 0..255 in
  **BGR** channel order (the reference feeds ``cv2.imread`` output to the network;
  our frames are RGB and are flipped at the network's edge);
- ``calc_pdist`` with ``vshift`` (vectorised here; the reference loops per frame),
  mean distance per shift over frames, ``offset = vshift - argmin``,
  ``min_dist`` = the minimum (LSE-D), ``confidence = median - min`` (LSE-C).

Offsets are meaningful only with the official weights ``syncnet_v2.model``; a
positive offset means the audio leads the video (video frame ``t`` best matches
the audio of frame ``t - offset``).

Differences from the reference when decoding a file here: frames come straight from
PyAV (the reference round-trips them through JPEG files that the ffmpeg CLI writes at
its default, lossy quality: on the fixture clip the pixels differ by 5.3 levels on
average) and audio that is not already at 16 kHz is resampled with soxr (the
reference uses FFmpeg's resampler; at 16 kHz the int16 samples differ by at most 1).
The effect on LSE-D/LSE-C with the official weights is not measured here (no weights);
conformance tests decode the reference's way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from avatarlab._util import track_progress
from avatarlab.errors import MediaError, NoAudioError, OptionError
from avatarlab.metrics.base import (
    HIGHER,
    LOWER,
    NEAR_ZERO,
    EvalContext,
    Metric,
    Requirements,
    register_metric,
)
from avatarlab.metrics.crops import CROP_SIZE, face_crops
from avatarlab.weights import Checkpoint, load_into, register, register_architecture

if TYPE_CHECKING:
    import torch

    from avatarlab.metrics._syncnet_net import SyncNet

#: Frame rate and audio rate the released SyncNet was trained for.
SYNCNET_FPS = 25
SYNCNET_RATE = 16000
#: Frames per window, MFCC columns per video frame and per window.
WINDOW_FRAMES = 5
MFCC_PER_FRAME = 4
MFCC_WINDOW = 20
#: Audio samples per video frame at 16 kHz / 25 fps (the reference's 640).
SAMPLES_PER_FRAME = SYNCNET_RATE // SYNCNET_FPS
#: Defaults of SyncNetInstance.evaluate / Wav2Lip's scores_LSE.
BATCH_SIZE = 20
VSHIFT = 15
#: Kernel of the median filter the reference applies to per-frame confidences.
FRAME_CONF_KERNEL = 9
#: ``torch.nn.functional.pairwise_distance``'s eps, added to the difference.
_PDIST_EPS = 1e-6

SYNCNET_LAYOUT = "syncnet_python.S"


def _syncnet_schema() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in new_syncnet().state_dict().items()}


register_architecture(SYNCNET_LAYOUT, _syncnet_schema)

SYNCNET_V2 = register(
    Checkpoint(
        name="syncnet_v2",
        filename="syncnet_v2.model",
        description="SyncNet lip-sync expert of joonson/syncnet_python (LSE-D/LSE-C metrics)",
        source="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        architecture=SYNCNET_LAYOUT,
        license="MIT (syncnet_python)",
    )
)


class SyncModel(Protocol):
    """Anything with syncnet_python's two towers (the real network, or a test double)."""

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class SyncResult:
    """Outcome of :func:`evaluate_sync` for one clip.

    Attributes:
        offset: AV offset in frames (``vshift - argmin``); > 0 means audio leads video.
        min_dist: minimum over shifts of the frame-mean embedding distance (LSE-D).
        confidence: median minus minimum of those mean distances (LSE-C).
        dists: ``(N, 2 * vshift + 1)`` float32 distance of each window at each shift.
        mean_dists: ``(2 * vshift + 1,)`` float32 mean over windows per shift.
        frame_conf: ``(N,)`` float32 ``median(mean_dists) - dists[:, argmin]`` per window.
        frame_conf_smooth: ``frame_conf`` median-filtered (kernel 9), as the reference logs.
    """

    offset: int
    min_dist: float
    confidence: float
    dists: np.ndarray
    mean_dists: np.ndarray
    frame_conf: np.ndarray
    frame_conf_smooth: np.ndarray


def new_syncnet() -> SyncNet:
    """An untrained :class:`SyncNet` in eval mode (for tests and training)."""
    from avatarlab.metrics._syncnet_net import SyncNet

    return SyncNet().eval()


def load_syncnet(path: str | os.PathLike[str] | None = None, device: str = "cpu") -> SyncNet:
    """Load the official ``syncnet_v2.model`` (a whole state dict) into :class:`SyncNet`.

    ``path`` is the file (or its folder); ``None`` looks in the weights cache folder.
    Keys and shapes are checked strictly (:func:`avatarlab.weights.load_into`).

    Raises:
        MissingWeightsError: the file is not found (the message names its official URL).
        CheckpointError: the file is not a SyncNet state dict of the expected layout.
    """
    return load_into(new_syncnet(), SYNCNET_V2.name, path, device=device)  # type: ignore[return-value]


def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 audio in [-1, 1] -> int16 samples (round to nearest, clip), as FFmpeg does."""
    x = np.asarray(audio, dtype=np.float64) * 32768.0
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def syncnet_mfcc(audio: np.ndarray) -> np.ndarray:
    """MFCC of 16 kHz mono audio as the reference computes it: ``(13, T)`` float32.

    ``audio`` is float32 in [-1, 1] (converted to int16 first) or already int16.
    ``T`` is ``python_speech_features``' frame count: 100 columns per second.
    """
    import python_speech_features

    samples = audio if np.asarray(audio).dtype == np.int16 else audio_to_int16(audio)
    return python_speech_features.mfcc(samples, SYNCNET_RATE).T.astype(np.float32)


def calc_pdist(feat_v: torch.Tensor, feat_a: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """Distance of each video embedding to the audio embeddings at shifts -vshift..vshift.

    ``feat_v``, ``feat_a``: ``(N, D)``. Returns ``(N, 2 * vshift + 1)`` where column
    ``j`` compares video ``i`` with audio ``i + j - vshift`` (zero vectors beyond the
    ends), using ``pairwise_distance``'s ``||v - a + 1e-6||``, like the reference.
    The reference loops over frames; looping over the 31 shifts with whole-clip
    tensor operations gives identical numbers about twice as fast.
    """
    import torch

    n = feat_v.shape[0]
    padded = torch.nn.functional.pad(feat_a, (0, 0, vshift, vshift))
    cols = [
        torch.linalg.vector_norm(feat_v - padded[j : j + n] + _PDIST_EPS, dim=1)
        for j in range(2 * vshift + 1)
    ]
    return torch.stack(cols, dim=1)


def sync_embeddings(
    frames: np.ndarray,
    audio: np.ndarray,
    model: SyncModel,
    batch_size: int = BATCH_SIZE,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings ``(N, D)`` of every 5-frame window, batched like the reference.

    ``frames``: ``(F, 224, 224, 3)`` RGB uint8 at 25 fps; ``audio``: 16 kHz mono float32
    (or int16). ``N = min(F, len(audio) // 640) - 5``, as in the reference.
    """
    import torch

    frames = _check_crops(frames)
    if audio.ndim != 1:
        raise OptionError(f"audio must be mono (N,), got shape {audio.shape}")
    mfcc = torch.from_numpy(syncnet_mfcc(audio))
    n = min(len(frames), len(audio) // SAMPLES_PER_FRAME) - WINDOW_FRAMES
    if n < 1:
        raise MediaError(
            f"SyncNet needs at least {WINDOW_FRAMES + 1} frames (0.24 s) of video and audio; "
            f"got {len(frames)} frames and {len(audio) / SYNCNET_RATE:.3f} s of audio"
        )
    lip, aud = [], []
    with torch.inference_mode():
        for i in track_progress(range(0, n, batch_size), "SyncNet", total=-(-n // batch_size)):
            idx = range(i, min(n, i + batch_size))
            clip = frames[i : idx[-1] + WINDOW_FRAMES, :, :, ::-1]  # RGB -> BGR
            video = torch.from_numpy(np.ascontiguousarray(clip)).float()  # (T, H, W, 3)
            windows = video.unfold(0, WINDOW_FRAMES, 1).permute(0, 3, 4, 1, 2)  # (B, 3, 5, H, W)
            # channels-last is the frames' own layout and runs the 3D convolutions ~25% faster
            windows = windows.contiguous(memory_format=torch.channels_last_3d)
            lip.append(model.forward_lip(windows.to(device)).cpu())
            cols = torch.stack(
                [mfcc[:, MFCC_PER_FRAME * t : MFCC_PER_FRAME * t + MFCC_WINDOW] for t in idx]
            )
            aud.append(model.forward_aud(cols[:, None].to(device)).cpu())
    return torch.cat(lip), torch.cat(aud)


def evaluate_sync(
    frames: np.ndarray | str | os.PathLike[str],
    audio: np.ndarray | None,
    model: SyncModel,
    batch_size: int = BATCH_SIZE,
    vshift: int = VSHIFT,
    device: str = "cpu",
) -> SyncResult:
    """SyncNet's offset search on one clip (``SyncNetInstance.evaluate``).

    Args:
        frames: ``(N, 224, 224, 3)`` RGB uint8 face crops at 25 fps, or the path of such a
            video (decoded with PyAV; its own audio is used when ``audio`` is None).
        audio: float32 mono at 16 kHz aligned with frame 0 (or int16 samples).
        model: :func:`load_syncnet`'s network (official weights for meaningful numbers).
        batch_size: windows per forward pass (affects speed only).
        vshift: largest shift searched, in frames each way.

    Returns:
        :class:`SyncResult` with offset, LSE-D (``min_dist``), LSE-C (``confidence``).
    """
    import torch

    if batch_size < 1 or vshift < 0:
        raise OptionError(f"need batch_size >= 1 and vshift >= 0, got {batch_size} and {vshift}")
    if isinstance(frames, str | os.PathLike):
        frames, audio = _read_clip(frames, audio)
    if audio is None:
        raise NoAudioError("SyncNet scores need the clip's audio: pass 16 kHz mono audio")
    lip, aud = sync_embeddings(frames, np.asarray(audio), model, batch_size, device)
    dists = calc_pdist(lip, aud, vshift)
    mean = dists.mean(0)
    min_idx = int(torch.argmin(mean))
    min_dist = float(mean[min_idx])
    median = float(torch.median(mean))
    frame_conf = (median - dists[:, min_idx]).numpy().astype(np.float32)
    return SyncResult(
        offset=vshift - min_idx,
        min_dist=min_dist,
        confidence=median - min_dist,
        dists=dists.numpy(),
        mean_dists=mean.numpy(),
        frame_conf=frame_conf,
        frame_conf_smooth=_medfilt_zero_padded(frame_conf, FRAME_CONF_KERNEL),
    )


def _medfilt_zero_padded(x: np.ndarray, kernel: int) -> np.ndarray:
    """``scipy.signal.medfilt`` (zero-padded ends), also for inputs shorter than ``kernel``."""
    half = kernel // 2
    padded = np.pad(x, half)
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, kernel), axis=1).astype(
        x.dtype
    )


def _check_crops(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise OptionError(
            f"SyncNet needs (N, {CROP_SIZE}, {CROP_SIZE}, 3) face crops, got {frames.shape}; "
            "crop faces first (avatarlab.metrics.crops.face_crops)"
        )
    if frames.dtype != np.uint8:
        raise OptionError(f"SyncNet frames must be uint8 RGB, got {frames.dtype}")
    return frames


def _read_clip(
    path: str | os.PathLike[str], audio: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    from avatarlab.media import read_audio, read_video

    video = read_video(path)
    if abs(video.fps - SYNCNET_FPS) > 0.01:
        raise MediaError(
            f"{path} is {video.fps:.3f} fps; SyncNet needs 25 fps: re-encode it at 25 fps"
        )
    if audio is None:
        audio = read_audio(path, SYNCNET_RATE)
    return video.frames, audio


def resample_frames(frames: np.ndarray, fps: float, to_fps: float = SYNCNET_FPS) -> np.ndarray:
    """Nearest-frame resampling of ``(N, ...)`` frames to ``to_fps`` (what ``ffmpeg -r`` does)."""
    if abs(fps - to_fps) < 1e-6:
        return frames
    n = int(np.floor(len(frames) * to_fps / fps + 1e-9))
    idx = np.minimum(np.round(np.arange(n) * fps / to_fps).astype(int), len(frames) - 1)
    return frames[idx]


@register_metric("lse")
class LSEMetric(Metric):
    """LSE-D, LSE-C and AV offset of SyncNet (``syncnet_v2.model``), per clip.

    Call ``update`` once per clip with all its frames. Frames of 224x224 are taken as
    face crops; other sizes are cropped with the reference's geometry
    (:func:`avatarlab.metrics.crops.face_crops`) around ``ctx.pred_track.boxes`` when
    a track is given, else resized whole. Clips not at 25 fps are resampled to 25 fps
    (nearest frame); audio is resampled to 16 kHz. ``compute`` averages over clips, as
    Wav2Lip's scores_LSE reports a test set. ``device`` None: the context's device.
    """

    name = "lse"
    keys = {"lse_d": LOWER, "lse_c": HIGHER, "av_offset": NEAR_ZERO}
    requires = Requirements(reference=False, audio=True, crops=True, weights=(SYNCNET_V2.name,))
    per_clip = True
    conventions = (
        "SyncNet v2 (syncnet_python): 224x224 face crops, BGR 0..255, 25 fps, 5-frame windows; "
        "MFCC of int16 16 kHz audio; vshift 15; LSE-D = min mean distance, "
        "LSE-C = median - min; mean over clips"
    )

    def __init__(
        self,
        weights: str | None = None,
        batch_size: int = BATCH_SIZE,
        vshift: int = VSHIFT,
        device: str | None = None,
    ) -> None:
        self.weights = weights
        self.batch_size = batch_size
        self.vshift = vshift
        self.device = device
        self._model: SyncModel | None = None
        self.results: list[SyncResult] = []

    def reset(self) -> None:
        self.results = []

    def model(self, ctx: EvalContext) -> SyncModel:
        if self._model is None:
            path = self.weights or ctx.weights.get(SYNCNET_V2.name)
            self._model = load_syncnet(path, device=self.device or ctx.device)
        return self._model

    def update(self, pred: np.ndarray, ref: np.ndarray | None, ctx: EvalContext) -> None:
        if pred.ndim != 4:
            raise OptionError("the lse metric scores whole clips: pass (N, H, W, 3) frames")
        if ctx.audio is None:
            raise NoAudioError("LSE needs the driving audio (EvalContext.audio)")
        from avatarlab.media import resample

        frames = self._crops(pred, ctx)
        frames = resample_frames(frames, ctx.fps)
        audio = np.asarray(ctx.audio, dtype=np.float32)
        if ctx.sample_rate != SYNCNET_RATE:
            audio = resample(audio, ctx.sample_rate, SYNCNET_RATE)
        model = self.model(ctx)
        device = self.device or ctx.device
        self.results.append(
            evaluate_sync(frames, audio, model, self.batch_size, self.vshift, device)
        )

    def _crops(self, pred: np.ndarray, ctx: EvalContext) -> np.ndarray:
        if pred.shape[1:3] == (CROP_SIZE, CROP_SIZE):
            return pred
        if ctx.pred_track is not None:
            return face_crops(pred, ctx.pred_track.boxes)
        import cv2

        return np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in pred])

    def compute(self) -> dict[str, float]:
        if not self.results:
            return {"lse_d": float("nan"), "lse_c": float("nan"), "av_offset": float("nan")}
        return {
            "lse_d": float(np.mean([r.min_dist for r in self.results])),
            "lse_c": float(np.mean([r.confidence for r in self.results])),
            "av_offset": float(np.mean([r.offset for r in self.results])),
        }

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-window confidence of the last clip (``(N,)``, raw and smoothed)."""
        if not self.results:
            return {}
        last = self.results[-1]
        return {"sync_conf": last.frame_conf, "sync_conf_smooth": last.frame_conf_smooth}


def __getattr__(name: str) -> object:
    """``SyncNet`` is defined in a torch-importing module, loaded on first access."""
    if name == "SyncNet":
        from avatarlab.metrics._syncnet_net import SyncNet

        return SyncNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SyncNet",
    "SYNCNET_V2",
    "LSEMetric",
    "SyncModel",
    "SyncResult",
    "audio_to_int16",
    "calc_pdist",
    "evaluate_sync",
    "load_syncnet",
    "new_syncnet",
    "resample_frames",
    "sync_embeddings",
    "syncnet_mfcc",
]
