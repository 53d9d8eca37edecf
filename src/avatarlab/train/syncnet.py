"""Train the SyncNet_color lip-sync expert (Wav2Lip's ``color_syncnet_train.py``).

Each sample is five consecutive 96x96 face crops (lower half, BGR, stacked on channels:
``(15, 48, 96)``) and the 0.2 s mel window starting at the first frame's time, in sync
(label 1) or with the frames taken from elsewhere in the same segment (label 0), half
and half (:class:`avatarlab.datasets.torch.Wav2LipDataset`). The loss is the binary
cross-entropy of the embeddings' cosine similarity read as P(in sync); Adam, lr 1e-4,
batch 64. The published expert reached a validation loss near 0.25 after a few hundred
thousand steps on LRS2; a network that has learnt nothing sits at about 0.69.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from avatarlab._torch import resolve_device
from avatarlab._util import make_output_folder
from avatarlab.engines.wav2lip.model import FACE_SIZE, SyncNetColor, sync_probability
from avatarlab.train.loop import (
    Echo,
    Recipe,
    Trainable,
    TrainResult,
    run_training,
    step_loader,
    train_length,
    validation_dataset,
)
from avatarlab.train.options import SyncNetTrainOptions


def lower_half_stack(frames: torch.Tensor) -> torch.Tensor:
    """``(B, T, 3, H, W)`` frames -> ``(B, 3T, H/2, W)``: the expert's input, frame-major."""
    return frames[..., frames.shape[-2] // 2 :, :].flatten(1, 2)


def sync_bce(
    audio_emb: torch.Tensor, face_emb: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE loss, P(in sync) ``(B,)``) of expert embeddings against labels ``(B,)`` in {0, 1}."""
    prob = sync_probability(audio_emb, face_emb).clamp(0.0, 1.0)
    return F.binary_cross_entropy(prob, label), prob


class SyncNetRecipe(Recipe):
    """The expert's recipe for :func:`run_training`."""

    name = "syncnet"
    title = "SyncNet_color lip-sync expert"
    columns = ("loss", "accuracy")

    def __init__(
        self, data: str | os.PathLike[str], options: SyncNetTrainOptions, device: torch.device
    ) -> None:
        from avatarlab.datasets.torch import Wav2LipDataset

        super().__init__(options, device)

        def dataset(split: str, seed: int, length: int) -> Wav2LipDataset:
            return Wav2LipDataset(
                data, split, img_size=FACE_SIZE, channel_order="bgr", seed=seed, length=length
            )

        opts = options
        self.train_set = dataset("train", opts.seed, train_length(opts))
        self.epoch_items = int(sum(self.train_set.starts))
        self.val_set = None
        if opts.eval_every > 0:
            self.val_set = validation_dataset(
                lambda split: dataset(split, opts.seed + 1, opts.eval_batches * opts.batch_size),
                opts.val_split,
                self.notes,
            )
        self.model = SyncNetColor().to(device)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=opts.lr)
        self.trainables = [Trainable(self.model, optimizer)]

    def train_loader(self, first_step: int) -> Any:
        o = self.options
        return step_loader(
            self.train_set, o.batch_size, first_step, o.steps, o.num_workers, self.device, o.overfit
        )

    def _forward(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames, mel, label = (t.to(self.device, non_blocking=True) for t in batch)
        label = label[:, 0]
        audio_emb, face_emb = self.model(mel, lower_half_stack(frames))
        loss, prob = sync_bce(audio_emb, face_emb, label)
        return loss, prob, label

    def train_step(self, batch: Any) -> dict[str, float]:
        optimizer = self.trainables[0].optimizer
        loss, prob, label = self._forward(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": _accuracy(prob, label)}

    def validate(self) -> dict[str, float]:
        o = self.options
        assert self.val_set is not None  # built when eval_every > 0
        loader = step_loader(
            self.val_set, o.batch_size, 0, o.eval_batches, o.num_workers, self.device
        )
        total, loss_sum, acc_sum = 0, 0.0, 0.0
        for batch in loader:
            loss, prob, label = self._forward(batch)
            n = len(label)
            total += n
            loss_sum += loss.item() * n
            acc_sum += _accuracy(prob, label) * n
        return {"loss": loss_sum / total, "accuracy": acc_sum / total}


def _accuracy(prob: torch.Tensor, label: torch.Tensor) -> float:
    """Share of samples whose P(in sync) is on the label's side of 0.5."""
    return ((prob > 0.5) == (label > 0.5)).float().mean().item()


def train_syncnet(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: SyncNetTrainOptions | None = None,
    echo: Echo | None = None,
) -> TrainResult:
    """Train the SyncNet_color expert on prepared data into run folder ``out``.

    Args:
        data: output root of ``avatarlab prepare --preset wav2lip`` (its train split is
            trained on, ``options.val_split`` validated on).
        out: run folder for checkpoints (``lipsync_expert.pth``'s layout), ``latest``,
            ``metrics.csv``.
        options: see :class:`SyncNetTrainOptions`.
        echo: called with one line per validation and per note (e.g. ``print``).

    The checkpoints load with :func:`avatarlab.engines.wav2lip.load_syncnet_color` and
    serve as ``expert`` of :func:`avatarlab.train.wav2lip.train_wav2lip`.
    """
    options = options or SyncNetTrainOptions()
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(options.seed)
    make_output_folder(out, create=False)  # a wrong -o fails before any work
    recipe = SyncNetRecipe(data, options, device)
    return run_training(recipe, Path(out), echo, data)
