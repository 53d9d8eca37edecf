"""Options of the training recipes; each field is one ``avatarlab train`` flag.

Kept free of heavy imports (no torch, no numpy) so the command line can build its
flags from the defaults here. Defaults follow the reference recipe
(Rudrabha/Wav2Lip ``hparams.py``, ``color_syncnet_train.py``, ``wav2lip_train.py``,
``hq_wav2lip_train.py``) where it names a value.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatarlab.errors import OptionError

#: Eval sync loss under which the expert's weight switches on (the reference's 0.75).
SYNC_THRESHOLD = 0.75
#: Expert sync-loss weight once switched on: ``wav2lip_train.py`` uses 0.01, and
#: ``hq_wav2lip_train.py`` (with the GAN) 0.03.
SYNCNET_WT_PLAIN = 0.01
SYNCNET_WT_GAN = 0.03


@dataclass(frozen=True)
class TrainOptions:
    """What every recipe shares.

    Attributes:
        steps: optimiser steps to reach (a resumed run continues up to this total).
        batch_size: samples per step.
        lr: Adam learning rate.
        checkpoint_every: save a checkpoint every N steps (0: only at the end); one is
            also saved at the end and on Ctrl-C.
        eval_every: validate every N steps (0: never; else also at the end).
        eval_batches: batches per validation (the same samples each time).
        keep_checkpoints: checkpoints kept in the run folder, newest first (0: all).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds the weights' initialisation and every sample drawn.
        num_workers: data-loading processes (0: in the training process).
        val_split: prepared split used for validation; when it has no usable segment
            the ``train`` split is used and a note says so.
        resume: a run folder (continue from its latest checkpoint) or a checkpoint file
            (official or ours) to continue from; ``None`` starts fresh.
        overfit: cycle through this many fixed training samples instead of drawing fresh
            ones (0: off): the sanity check that the recipe can fit data at all.
    """

    steps: int = 200_000
    batch_size: int = 16
    lr: float = 1e-4
    checkpoint_every: int = 3000
    eval_every: int = 3000
    eval_batches: int = 100
    keep_checkpoints: int = 3
    device: str = "auto"
    seed: int = 0
    num_workers: int = 4
    val_split: str = "val"
    resume: str | None = None
    overfit: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0 (0: only at the end)"),
            (self.eval_every >= 0, "eval_every must be >= 0 (0: never)"),
            (self.eval_batches >= 1, "eval_batches must be >= 1"),
            (self.keep_checkpoints >= 0, "keep_checkpoints must be >= 0 (0: keep all)"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.overfit >= 0, "overfit must be >= 0 (0: off)"),
            (self.val_split in ("train", "val", "test"), "val_split must be train, val or test"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)


@dataclass(frozen=True)
class SyncNetTrainOptions(TrainOptions):
    """The SyncNet_color lip-sync expert (``color_syncnet_train.py``): BCE on the cosine
    similarity of audio and lower-face embeddings, 5-frame windows of 96x96 crops,
    half in sync, half with the frames taken from elsewhere in the same clip.
    Defaults: batch 64, lr 1e-4, checkpoint and validation every 10000 steps."""

    batch_size: int = 64
    checkpoint_every: int = 10_000
    eval_every: int = 10_000
    eval_batches: int = 200


@dataclass(frozen=True)
class Wav2LipTrainOptions(TrainOptions):
    """The Wav2Lip generator (``wav2lip_train.py``; ``hq_wav2lip_train.py`` with ``gan``).

    The loss is ``syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt)
    * L1``; ``syncnet_wt`` starts at 0 and switches on for good once a validation's
    expert sync loss falls under ``sync_threshold``.

    Attributes:
        expert: the frozen lip-sync expert: ``lipsync_expert.pth``, one of our SyncNet
            checkpoints, or a SyncNet run folder (its latest checkpoint). Required.
        syncnet_wt: expert loss weight once switched on; ``None``: the recipe's value
            (0.01, or 0.03 with ``gan``).
        sync_threshold: validation sync loss under which ``syncnet_wt`` switches on.
        gan: also train the visual-quality discriminator (``Wav2Lip_disc_qual``).
        disc_wt: weight of its perceptual (adversarial) loss on the generator.
        disc_lr: its Adam learning rate.
        syncnet_weights: ``syncnet_v2.model`` of syncnet_python; when given, each
            validation also scores LSE-D / LSE-C on generated val clips.
        lse_clips: validation segments scored for LSE (the first ones, sorted).
        lse_frames: frames scored per segment, from its start.
    """

    eval_batches: int = 100
    expert: str | None = None
    syncnet_wt: float | None = None
    sync_threshold: float = SYNC_THRESHOLD
    gan: bool = False
    disc_wt: float = 0.07
    disc_lr: float = 1e-4
    syncnet_weights: str | None = None
    lse_clips: int = 4
    lse_frames: int = 250

    def __post_init__(self) -> None:
        super().__post_init__()
        wt = self.sync_weight
        disc = self.disc_wt if self.gan else 0.0
        if not 0 <= wt < 1 or disc < 0 or wt + disc >= 1:
            raise OptionError(
                f"syncnet_wt={wt} and disc_wt={disc} must be >= 0 and sum to less than 1 "
                "(the rest weighs the L1 reconstruction)"
            )
        if self.disc_lr <= 0:
            raise OptionError("disc_lr must be > 0")
        if self.lse_clips < 0 or self.lse_frames < 6:
            raise OptionError("lse_clips must be >= 0 and lse_frames >= 6 (SyncNet's window)")

    @property
    def sync_weight(self) -> float:
        """The expert loss weight applied once switched on."""
        if self.syncnet_wt is not None:
            return self.syncnet_wt
        return SYNCNET_WT_GAN if self.gan else SYNCNET_WT_PLAIN
