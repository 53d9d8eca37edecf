"""PyTorch datasets over prepared output (``avatarlab prepare --preset wav2lip``).

:class:`Wav2LipDataset` samples what Wav2Lip's expert SyncNet trains on: a
window of ``window`` consecutive face crops and the 16-column mel window of the
audio, labelled 1 when they are in sync and 0 when the frames come from another
random position of the same segment (Wav2Lip's ``color_syncnet_train.py``
sampling). The mel window of frame ``s`` starts at column ``int(80 * (s / 25))``
of :func:`avatarlab.media.melspectrogram` of the segment's ``audio.wav``, as
Wav2Lip's ``crop_audio_window`` does.

Unlike Wav2Lip, which draws from the global ``random`` state, item ``i`` is a
pure function of ``(seed, i)``: the same seed gives the same samples in any
worker, any order, any machine.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from avatarlab.constants import DEFAULT_FPS, SPEECH_RATE
from avatarlab.datasets.manifest import FILELIST_DIR, MANIFEST_NAME, SPLITS, read_manifest
from avatarlab.errors import MediaError, OptionError
from avatarlab.media.mel import MEL_COLS_PER_SECOND, MEL_STEP_SIZE, WAV2LIP_MEL


def mel_start(frame_index: int, fps: float = DEFAULT_FPS) -> int:
    """First mel column of frame ``frame_index``: Wav2Lip's ``int(80 * (frame / fps))``."""
    return int(MEL_COLS_PER_SECOND * (frame_index / float(fps)))


@functools.lru_cache(maxsize=64)
def segment_mel(folder: str) -> np.ndarray:
    """Wav2Lip mel spectrogram ``(80, T)`` of a prepared segment's ``audio.wav`` (cached)."""
    from avatarlab.media import melspectrogram, read_audio

    return melspectrogram(read_audio(Path(folder) / "audio.wav", sample_rate=SPEECH_RATE))


def _frame_count(folder: Path) -> int:
    count = 0
    while (folder / f"{count}.jpg").is_file():
        count += 1
    return count


def _recorded_preset(root: Path) -> str | None:
    """The preset ``root`` was prepared with (``prepare-options.json``), or None if unknown."""
    from avatarlab.datasets.pipeline import OPTIONS_NAME

    try:
        preset = json.loads((root / OPTIONS_NAME).read_text(encoding="utf-8")).get("preset")
    except (OSError, ValueError, AttributeError):
        return None
    return preset if isinstance(preset, str) else None


class Wav2LipDataset(Dataset):
    """In-sync / off-sync (frames window, mel window) pairs from prepared segments.

    Args:
        root: output root of ``avatarlab prepare --preset wav2lip``.
        split: ``"train"``, ``"val"`` or ``"test"`` (from ``root/manifest.parquet``, or
            ``root/filelists/SPLIT.txt`` when there is no manifest).
        window: consecutive frames per sample (Wav2Lip's ``syncnet_T`` = 5).
        img_size: resize crops to this square side (Wav2Lip: 96); ``None`` keeps them.
        fps: frame rate of the prepared frames (25).
        seed: makes item ``i`` a pure function of ``(seed, i)``.
        length: items per epoch; default one per valid window start.
        channel_order: ``"rgb"`` (avatarlab's convention) or ``"bgr"`` (what the
            official Wav2Lip / SyncNet checkpoints were trained on).
        min_offset: off-sync windows start at least this many frames away from the
            in-sync one (Wav2Lip: 1, i.e. any other frame).
        segments: explicit segment folders instead of a split file list.

    Items are ``(frames, mel, label)``: ``frames`` float32 ``(window, 3, H, W)`` in
    [0, 1]; ``mel`` float32 ``(1, 80, 16)``; ``label`` float32 ``(1,)``, 1 in sync.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        window: int = 5,
        img_size: int | None = 96,
        fps: float = DEFAULT_FPS,
        seed: int = 0,
        length: int | None = None,
        channel_order: str = "rgb",
        min_offset: int = 1,
        segments: list[str | os.PathLike[str]] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise OptionError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
        if channel_order not in ("rgb", "bgr"):
            raise OptionError(f"channel_order={channel_order!r}: choose 'rgb' or 'bgr'")
        if window < 1 or min_offset < 1:
            raise OptionError("window and min_offset must be >= 1")
        self.root = Path(root)
        self.window = window
        self.img_size = img_size
        self.fps = fps
        self.seed = seed
        self.channel_order = channel_order
        self.min_offset = min_offset
        listed = self._listed(split) if segments is None else [(Path(f), None) for f in segments]
        if listed:
            self._check_layout(listed[0][0])
        usable: list[tuple[Path, int]] = []
        for folder, frames in listed:
            n = self._usable_frames(frames if frames is not None else _frame_count(folder))
            # Wav2Lip skips videos with <= 3 * syncnet_T frames; we need room for an off-sync start.
            if n > 3 * window and n - window + 1 > 2 * min_offset:
                usable.append((folder, n))
        if not usable:
            raise MediaError(
                f"no usable segments for split {split!r} under {self.root}: prepare the corpus "
                f"with --preset wav2lip, and keep segments longer than {3 * window} frames"
            )
        self.segments = usable
        self.starts = [n - window + 1 for _, n in usable]
        self.length = length if length is not None else int(sum(self.starts))

    def _listed(self, split: str) -> list[tuple[Path, int | None]]:
        """Segment folders of ``split`` with their frame counts, read from the manifest
        (no per-segment file access, so millions of segments load in seconds), or from
        the split's file list, counting frames, when there is no manifest."""
        if (self.root / MANIFEST_NAME).is_file():
            rows = read_manifest(self.root).to_pylist()
            return [
                (self.root / r["output"], int(r["n_frames"]))
                for r in rows
                if r["status"] == "kept" and r["split"] == split
            ]
        listing = self.root / FILELIST_DIR / f"{split}.txt"
        if not listing.is_file():
            raise MediaError(f"{listing} not found: run `avatarlab prepare --preset wav2lip` first")
        return [(self.root / line, None) for line in listing.read_text(encoding="utf-8").split()]

    def _check_layout(self, folder: Path) -> None:
        """Raise ``MediaError`` unless ``folder`` holds the wav2lip layout (``0.jpg`` ...).

        Checked here, in the process that builds the dataset, so that data prepared
        with an mp4 preset fails with one clear message instead of inside every
        DataLoader worker.
        """
        if (folder / "0.jpg").is_file():
            return
        preset = _recorded_preset(self.root)
        if preset is None and (folder / "video.mp4").is_file():
            preset = "hdtf or syncnet"
        if preset is not None and preset != "wav2lip":
            raise MediaError(
                f"{self.root} was prepared with --preset {preset}: training needs --preset "
                "wav2lip (run avatarlab prepare SRC -o NEW_FOLDER --preset wav2lip)"
            )
        raise MediaError(f"{folder}/0.jpg is missing: re-run avatarlab prepare --preset wav2lip")

    def _usable_frames(self, n: int) -> int:
        """Frames whose mel window lies inside the segment's audio.

        ``avatarlab prepare`` writes exactly ``n / fps`` seconds of 16 kHz audio per
        segment, i.e. ``1 + samples // 200`` mel columns.
        """
        columns = 1 + int(round(n * SPEECH_RATE / self.fps)) // WAV2LIP_MEL.hop_size
        while n > 0 and mel_start(n - self.window, self.fps) + MEL_STEP_SIZE > columns:
            n -= 1
        return n

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> tuple[int, int, int, int]:
        """``(segment, frames_start, mel_frame, label)`` drawn for item ``index``."""
        rng = np.random.default_rng([self.seed, index])
        segment = int(rng.integers(len(self.segments)))
        n_starts = self.starts[segment]
        true_start = int(rng.integers(n_starts))
        if rng.random() < 0.5:
            return segment, true_start, true_start, 1
        # Off-sync: any other start at least min_offset frames away.
        allowed = np.flatnonzero(np.abs(np.arange(n_starts) - true_start) >= self.min_offset)
        return segment, int(rng.choice(allowed)), true_start, 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        segment, start, mel_frame, label = self.sample(index)
        folder, _ = self.segments[segment]
        frames = np.stack(
            [self._read(folder / f"{k}.jpg") for k in range(start, start + self.window)]
        )
        mel = segment_mel(str(folder))
        m0 = mel_start(mel_frame, self.fps)
        window = mel[:, m0 : m0 + MEL_STEP_SIZE]
        if window.shape[1] != MEL_STEP_SIZE:
            raise MediaError(
                f"{folder}/audio.wav is shorter than its frames: re-run avatarlab prepare"
            )
        return (
            torch.from_numpy(frames.transpose(0, 3, 1, 2).astype(np.float32) / 255.0),
            torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)[None]),
            torch.tensor([float(label)], dtype=torch.float32),
        )

    def _read(self, path: Path) -> np.ndarray:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MediaError(f"{path} is missing or unreadable: re-run avatarlab prepare")
        if self.img_size is not None and bgr.shape[:2] != (self.img_size, self.img_size):
            bgr = cv2.resize(bgr, (self.img_size, self.img_size), interpolation=cv2.INTER_AREA)
        return bgr if self.channel_order == "bgr" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
