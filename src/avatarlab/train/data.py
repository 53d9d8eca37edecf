"""What the Wav2Lip generator trains on, read from ``avatarlab prepare --preset wav2lip`` output.

:class:`Wav2LipTrainDataset` yields the items of the reference ``wav2lip_train.py``
``Dataset``: a 5-frame window with its lower half zeroed stacked on a "wrong" window of
the same clip (the identity reference), one mel window per frame, the mel window of the
whole 5-frame span (for the expert), and the unmasked window as the target. Segment
listing, frame reading and the frame-to-mel indexing are those of
:class:`avatarlab.datasets.torch.Wav2LipDataset` (the SyncNet expert's dataset), which
this class extends.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from avatarlab.constants import DEFAULT_FPS
from avatarlab.datasets.torch import Wav2LipDataset, mel_start, segment_mel
from avatarlab.errors import MediaError
from avatarlab.media import MEL_STEP_SIZE, SPEECH_RATE, read_audio

#: Frames per training window (the reference's ``syncnet_T``).
WINDOW = 5
#: Side of the face crops both networks see.
IMG_SIZE = 96


class Wav2LipTrainDataset(Wav2LipDataset):
    """Generator training items from prepared segments, BGR like the official checkpoints.

    Item ``i`` is a pure function of ``(seed, i)``: a segment, a window start ``s`` and a
    different "wrong" start, drawn as the reference draws them (``s >= 1``, because frame
    ``s + k`` takes the mel window that starts at frame ``s + k - 1``, the reference's
    ``get_segmented_mels``).

    Args:
        root: output root of ``avatarlab prepare --preset wav2lip``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        seed: makes item ``i`` a pure function of ``(seed, i)``.
        length: items per epoch; default one per valid window start.
        fps: frame rate of the prepared frames (25).

    Items are ``(x, indiv_mels, mel, y)``, float32:
        ``x`` ``(6, 5, 96, 96)``: channels 0-2 the target window with rows 48..95 zeroed,
        channels 3-5 the wrong window, BGR in [0, 1];
        ``indiv_mels`` ``(5, 1, 80, 16)``: the generator's mel window per frame;
        ``mel`` ``(1, 80, 16)``: the window of frames ``s .. s + 4`` (the expert's input);
        ``y`` ``(3, 5, 96, 96)``: the target window, BGR in [0, 1].
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        seed: int = 0,
        length: int | None = None,
        fps: float = DEFAULT_FPS,
    ) -> None:
        super().__init__(
            root, split, window=WINDOW, img_size=IMG_SIZE, fps=fps, seed=seed,
            length=length, channel_order="bgr",
        )  # fmt: skip
        if length is None:
            self.length = int(sum(self.generator_starts(k) for k in range(len(self.segments))))

    def generator_starts(self, segment: int) -> int:
        """Valid window starts ``1 .. n`` of a segment for the generator (returns ``n``).

        The last frame's mel window starts at frame ``s + 3``, so ``s + 3`` must be a
        valid expert start (``< starts[segment]``).
        """
        return self.starts[segment] - self.window + 1

    def draw(self, index: int) -> tuple[int, int, int]:
        """``(segment, start, wrong_start)`` of item ``index``."""
        rng = np.random.default_rng([self.seed, index])
        segment = int(rng.integers(len(self.segments)))
        start = 1 + int(rng.integers(self.generator_starts(segment)))
        wrong = int(rng.integers(self.starts[segment] - 1))  # any other expert start
        return segment, start, wrong + (wrong >= start)

    def read_frames(self, folder: Path, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start + count - 1`` of a segment: ``(count, 96, 96, 3)`` uint8 BGR."""
        return np.stack([self._read(folder / f"{k}.jpg") for k in range(start, start + count)])

    def segment_audio(self, folder: Path, n_frames: int) -> np.ndarray:
        """The segment's first ``n_frames`` frames of audio, float32 mono 16 kHz ``(N,)``."""
        wav = read_audio(folder / "audio.wav", SPEECH_RATE)
        return wav[: int(round(n_frames * SPEECH_RATE / self.fps))]

    def __getitem__(  # type: ignore[override]
        self, index: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        segment, start, wrong = self.draw(index)
        folder, _ = self.segments[segment]
        mel = segment_mel(str(folder))
        cols = [mel_start(f, self.fps) for f in range(start - 1, start - 1 + self.window)]
        if cols[-1] + MEL_STEP_SIZE > mel.shape[1]:
            raise MediaError(
                f"{folder}/audio.wav is shorter than its frames: re-run avatarlab prepare"
            )
        indiv = np.stack([mel[:, c : c + MEL_STEP_SIZE] for c in cols])  # (T, 80, 16)
        target = self.read_frames(folder, start, self.window).transpose(3, 0, 1, 2)
        y = np.ascontiguousarray(target, dtype=np.float32) / 255.0  # (3, T, H, W)
        masked = y.copy()
        masked[:, :, IMG_SIZE // 2 :] = 0.0
        reference = self.read_frames(folder, wrong, self.window).transpose(3, 0, 1, 2)
        x = np.concatenate([masked, np.ascontiguousarray(reference, dtype=np.float32) / 255.0])
        return (
            torch.from_numpy(x),
            torch.from_numpy(np.ascontiguousarray(indiv[:, None], dtype=np.float32)),
            # frame s's window (cols[1]) spans the 5 frames: what the expert scores
            torch.from_numpy(np.ascontiguousarray(indiv[1:2], dtype=np.float32)),
            torch.from_numpy(y),
        )
