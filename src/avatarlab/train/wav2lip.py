"""Train the Wav2Lip generator (``wav2lip_train.py``; with ``gan``, ``hq_wav2lip_train.py``).

The generator sees 5-frame windows (:class:`avatarlab.train.data.Wav2LipTrainDataset`):
the target frames with their lower half zeroed plus frames of the same clip from
elsewhere, and one mel window per frame; it must redraw the lower half. The loss is
``syncnet_wt * sync + disc_wt * perceptual + (1 - syncnet_wt - disc_wt) * L1``:

- L1 between generated and real frames;
- sync: the frozen expert's BCE of "in sync" for the generated lower halves and the
  window's audio; its weight is 0 until a validation's sync loss falls under 0.75, then
  0.01 (0.03 with the GAN) for good, as in the reference;
- perceptual (``gan`` only): the quality discriminator's BCE of "real" for the generated
  frames; the discriminator trains on real vs generated lower halves alongside.

Adam, lr 1e-4 (betas 0.5, 0.999 with the GAN, as ``hq_wav2lip_train.py``), batch 16.
One difference from the reference: the expert runs in eval mode (its batch-norm uses
the statistics it was trained with); the reference leaves it in train mode by omission.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avatarlab._torch import resolve_device
from avatarlab._util import make_output_folder
from avatarlab.engines.wav2lip.model import FACE_SIZE, Wav2Lip
from avatarlab.errors import OptionError
from avatarlab.train.data import Wav2LipTrainDataset
from avatarlab.train.disc import Wav2LipDiscQual
from avatarlab.train.loop import (
    Echo,
    Recipe,
    Trainable,
    TrainResult,
    resolve_checkpoint,
    run_training,
    step_loader,
    train_length,
    validation_dataset,
)
from avatarlab.train.options import Wav2LipTrainOptions
from avatarlab.train.syncnet import sync_bce

#: Generated frames per network call when scoring LSE.
_LSE_BATCH = 32
#: Batch items drawn in a checkpoint's sample image.
_SAMPLE_ITEMS = 4


def generated_lower_halves(g: torch.Tensor) -> torch.Tensor:
    """Generator output ``(B, 3, T, H, W)`` -> the expert's input ``(B, 3T, H/2, W)``."""
    return g[:, :, :, g.shape[3] // 2 :].transpose(1, 2).flatten(1, 2)


class Wav2LipRecipe(Recipe):
    """The generator's recipe for :func:`run_training`."""

    name = "wav2lip"
    title = "Wav2Lip generator"
    columns = (
        "loss", "l1", "sync", "syncnet_wt", "perceptual", "disc_real", "disc_fake",
        "lse_d", "lse_c",
    )  # fmt: skip

    def __init__(
        self, data: str | os.PathLike[str], options: Wav2LipTrainOptions, device: torch.device
    ) -> None:
        from avatarlab.engines.wav2lip.checkpoints import load_syncnet_color

        super().__init__(options, device)
        self.opts = options
        if options.expert is None:
            raise OptionError(
                "Wav2Lip training needs a lip-sync expert: pass --expert lipsync_expert.pth "
                "(or the run folder of `avatarlab train syncnet`)"
            )
        o, expert = options, options.expert
        self.train_set = Wav2LipTrainDataset(data, "train", seed=o.seed, length=train_length(o))
        self.epoch_items = int(sum(self.train_set.starts))
        self._val_set: Any = None
        if o.eval_every > 0:
            self._val_set = validation_dataset(
                lambda split: Wav2LipTrainDataset(
                    data, split, seed=o.seed + 1, length=o.eval_batches * o.batch_size
                ),
                o.val_split,
                self.notes,
            )
        self.model = Wav2Lip().to(device)
        betas = (0.5, 0.999) if o.gan else (0.9, 0.999)
        self.trainables = [
            Trainable(self.model, torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=betas))
        ]
        self.disc: Wav2LipDiscQual | None = None
        if o.gan:
            self.disc = Wav2LipDiscQual().to(device)
            disc_opt = torch.optim.Adam(self.disc.parameters(), lr=o.disc_lr, betas=(0.5, 0.999))
            self.trainables.append(Trainable(self.disc, disc_opt, prefix="disc_"))
        self.expert = load_syncnet_color(resolve_checkpoint(expert), device)
        self.expert.requires_grad_(False)
        self.syncnet_wt = 0.0
        self.disc_wt = o.disc_wt if o.gan else 0.0
        self.lse_model: Any = None
        if o.syncnet_weights is not None and o.lse_clips > 0 and o.eval_every > 0:
            from avatarlab.metrics.syncnet import load_syncnet

            self.lse_model = load_syncnet(o.syncnet_weights, device=str(device))
        elif o.eval_every > 0:
            self.notes.append(
                "LSE-D/LSE-C skipped in validation: pass --syncnet-weights syncnet_v2.model "
                "(syncnet_python's SyncNet) to score them"
            )
        self._last: tuple[torch.Tensor, ...] | None = None

    @property
    def val_set(self) -> Wav2LipTrainDataset:
        """Validation samples (built when ``eval_every > 0``)."""
        assert self._val_set is not None
        return self._val_set  # type: ignore[no-any-return]

    def set_train(self, mode: bool) -> None:
        super().set_train(mode)
        self.expert.eval()

    def state(self) -> dict[str, Any]:
        return {"syncnet_wt": self.syncnet_wt}

    def load_state(self, state: dict[str, Any]) -> None:
        self.syncnet_wt = float(state.get("syncnet_wt", 0.0))

    def train_loader(self, first_step: int) -> Any:
        o = self.opts
        return step_loader(
            self.train_set, o.batch_size, first_step, o.steps, o.num_workers, self.device, o.overfit
        )

    def _sync_loss(self, mel: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        audio_emb, face_emb = self.expert(mel, generated_lower_halves(g))
        return sync_bce(audio_emb, face_emb, torch.ones(len(g), device=g.device))[0]

    def _losses(self, batch: Any, *, always_sync: bool) -> dict[str, torch.Tensor]:
        x, indiv_mels, mel, gt = (t.to(self.device, non_blocking=True) for t in batch)
        g = self.model(indiv_mels, x)  # (B, 3, T, 96, 96)
        out = {"g": g, "gt": gt, "x": x, "l1": F.l1_loss(g, gt)}
        if always_sync or self.syncnet_wt > 0:
            out["sync"] = self._sync_loss(mel, g)
        if self.disc is not None:
            out["perceptual"] = self.disc.perceptual_loss(g)
        total = (1.0 - self.syncnet_wt - self.disc_wt) * out["l1"]
        if self.syncnet_wt > 0:
            total = total + self.syncnet_wt * out["sync"]
        if self.disc_wt > 0:
            total = total + self.disc_wt * out["perceptual"]
        out["loss"] = total
        return out

    def _disc_losses(self, g: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.disc is not None
        real = self.disc(gt)
        fake = self.disc(g.detach())
        return (
            F.binary_cross_entropy(real, torch.ones_like(real)),
            F.binary_cross_entropy(fake, torch.zeros_like(fake)),
        )

    def train_step(self, batch: Any) -> dict[str, float]:
        gen_opt = self.trainables[0].optimizer
        out = self._losses(batch, always_sync=False)
        gen_opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        gen_opt.step()
        values = _floats(out, self.syncnet_wt)
        if self.disc is not None:
            disc_opt = self.trainables[1].optimizer
            disc_opt.zero_grad(set_to_none=True)  # drops what the perceptual loss left
            real, fake = self._disc_losses(out["g"], out["gt"])
            (real + fake).backward()
            disc_opt.step()
            values.update(disc_real=real.item(), disc_fake=fake.item())
        self._last = (out["x"].detach(), out["g"].detach(), out["gt"].detach())
        return values

    def validate(self) -> dict[str, float]:
        o = self.opts
        loader = step_loader(
            self.val_set, o.batch_size, 0, o.eval_batches, o.num_workers, self.device
        )
        sums: dict[str, float] = {}
        total = 0
        for batch in loader:
            out = self._losses(batch, always_sync=True)
            values = _floats(out, self.syncnet_wt)
            if self.disc is not None:
                real, fake = self._disc_losses(out["g"], out["gt"])
                values.update(disc_real=real.item(), disc_fake=fake.item())
            n = len(out["g"])
            total += n
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * n
        result = {key: value / total for key, value in sums.items()}
        result["syncnet_wt"] = self.syncnet_wt
        if self.syncnet_wt == 0 and result["sync"] < o.sync_threshold:
            self.syncnet_wt = o.sync_weight
            self.notes.append(
                f"validation sync loss {result['sync']:.4f} < {o.sync_threshold}: "
                f"expert sync loss weight switched on ({self.syncnet_wt})"
            )
        if self.lse_model is not None:
            result.update(self._lse())
        return result

    def _lse(self) -> dict[str, float]:
        """Mean LSE-D / LSE-C (syncnet_python) of generated validation clips.

        Each of the first ``lse_clips`` validation segments is re-generated as inference
        does (each frame's own crop, lower half masked, as the reference; the per-frame
        mel window ``int(i * 80 / 25)``), upscaled to 224x224 and scored with its audio.
        The crops are the prepared ones (Wav2Lip's tight box), not syncnet_python's wider
        crop, so the numbers track training progress rather than match published tables.
        """
        import cv2

        from avatarlab.datasets.torch import segment_mel
        from avatarlab.media import mel_windows
        from avatarlab.metrics.syncnet import CROP_SIZE, evaluate_sync

        o = self.opts
        dists, confs = [], []
        for folder, n in sorted(self.val_set.segments)[: o.lse_clips]:
            count = min(n, o.lse_frames)
            crops = self.val_set.read_frames(folder, 0, count)  # (N, 96, 96, 3) BGR uint8
            windows = mel_windows(segment_mel(str(folder)), self.val_set.fps, count)
            faces = []
            for i in range(0, count, _LSE_BATCH):
                bgr = torch.from_numpy(crops[i : i + _LSE_BATCH]).to(self.device)
                bgr = bgr.permute(0, 3, 1, 2).float().div_(255.0)
                masked = bgr.clone()
                masked[:, :, FACE_SIZE // 2 :] = 0.0
                audio = torch.from_numpy(windows[i : i + _LSE_BATCH]).to(self.device)[:, None]
                pred = self.model(audio, torch.cat((masked, bgr), dim=1))
                faces.append(pred.flip(1).permute(0, 2, 3, 1).mul(255.0).round().byte().cpu())
            rgb = torch.cat(faces).numpy()
            big = np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in rgb])
            wav = self.val_set.segment_audio(folder, count)
            res = evaluate_sync(big, wav, self.lse_model, device=str(self.device))
            dists.append(res.min_dist)
            confs.append(res.confidence)
        return {"lse_d": float(np.mean(dists)), "lse_c": float(np.mean(confs))}

    def on_checkpoint(self, run_dir: Path, step: int) -> None:
        """Write ``samples/step{N}.jpg``: per item and frame, reference | input | output | real."""
        if self._last is None:
            return
        import cv2

        from avatarlab._util import atomic_output

        x, g, gt = (t[:_SAMPLE_ITEMS].float().cpu() for t in self._last)
        # each (B, 3, T, H, W) -> side by side along width, frames down, items across
        tiles = torch.cat((x[:, 3:], x[:, :3], g, gt), dim=4)  # (B, 3, T, H, 4W)
        grid = tiles.permute(2, 3, 0, 4, 1).flatten(0, 1).flatten(1, 2)  # (T*H, B*4W, 3)
        image = (grid.clamp(0, 1) * 255).round().byte().numpy()
        with atomic_output(run_dir / "samples" / f"step{step:09d}.jpg") as tmp:
            cv2.imwrite(str(tmp), image)  # BGR, as the networks see it


def _floats(out: dict[str, torch.Tensor], syncnet_wt: float) -> dict[str, float]:
    values = {"loss": out["loss"].item(), "l1": out["l1"].item(), "syncnet_wt": syncnet_wt}
    for key in ("sync", "perceptual"):
        if key in out:
            values[key] = out[key].item()
    return values


def train_wav2lip(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: Wav2LipTrainOptions,
    echo: Echo | None = None,
) -> TrainResult:
    """Train the Wav2Lip generator on prepared data into run folder ``out``.

    Args:
        data: output root of ``avatarlab prepare --preset wav2lip``.
        out: run folder for checkpoints (``wav2lip.pth``'s layout; ``disc_...`` beside
            them with ``gan``), ``latest``, ``metrics.csv``, ``samples/``.
        options: see :class:`Wav2LipTrainOptions`; ``expert`` is required.
        echo: called with one line per validation and per note (e.g. ``print``).

    The checkpoints load with :func:`avatarlab.engines.wav2lip.load_wav2lip`, so
    ``avatarlab dub --engine wav2lip --checkpoint RUN/checkpoint_step....pth`` uses them.
    """
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(options.seed)
    make_output_folder(out, create=False)  # a wrong -o fails before any work
    recipe = Wav2LipRecipe(data, options, device)
    return run_training(recipe, Path(out), echo, data)


__all__ = ["Wav2LipRecipe", "generated_lower_halves", "train_wav2lip"]
