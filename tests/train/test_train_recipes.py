"""Smoke-train both recipes on the prepared shared clips (CPU), resume, Ctrl-C, then dub.

A full SyncNet step (16 M parameters, 96x96 crops) costs about 0.1 s per sample on one
CPU thread, so learning lip-sync itself (hundreds of thousands of steps) is out of reach
here; the SyncNet smoke instead fits a fixed pool of 16 real samples (``overfit``), which
shows that data, loss, gradients and optimiser work together.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatarlab.train import (  # noqa: E402
    SyncNetTrainOptions,
    Wav2LipTrainOptions,
    train_syncnet,
    train_wav2lip,
)
from avatarlab.train.syncnet import SyncNetRecipe  # noqa: E402

pytestmark = pytest.mark.slow

SYNC_COLUMNS = ("step", "split", "wall_s", "loss", "accuracy")
WAV2LIP_COLUMNS = (
    "step", "split", "wall_s", "loss", "l1", "sync", "syncnet_wt", "perceptual",
    "disc_real", "disc_fake", "lse_d", "lse_c",
)  # fmt: skip
CPU = {"device": "cpu", "num_workers": 0}
STEPS = 20  # of the SyncNet smoke


def read_metrics(run: Path) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    with (run / "metrics.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        return tuple(reader.fieldnames or ()), list(reader)


@pytest.fixture(scope="module")
def expert_run(prepared: Path, tmp_path_factory: pytest.TempPathFactory):
    """20 SyncNet steps of batch 8 cycling 16 fixed samples (20-40 s on one thread)."""
    options = SyncNetTrainOptions(
        steps=STEPS, batch_size=8, overfit=16, eval_every=STEPS, eval_batches=1, checkpoint_every=0,
        **CPU,
    )  # fmt: skip
    return train_syncnet(prepared, tmp_path_factory.mktemp("runs") / "expert", options)


def test_syncnet_smoke_lowers_its_loss(expert_run, prepared: Path) -> None:
    from avatarlab.datasets.torch import Wav2LipDataset
    from avatarlab.engines.wav2lip import load_syncnet_color

    columns, rows = read_metrics(expert_run.run_dir)
    assert columns == SYNC_COLUMNS
    losses = np.array([float(r["loss"]) for r in rows if r["split"] == "train"])
    print("SyncNet train loss:", " ".join(f"{x:.3f}" for x in losses))
    assert len(losses) == STEPS and [int(r["step"]) for r in rows][-1] == STEPS
    fifth = len(losses) // 5
    first, last = losses[:fifth].mean(), losses[-fifth:].mean()
    print(f"first 20%: {first:.3f}, last 20%: {last:.3f}, {expert_run.seconds:.1f} s")
    assert first > 0.5 and last < 0.5 * first  # BCE from ~0.7 (chance) down
    val = [r for r in rows if r["split"] == "val"]
    assert len(val) == 1 and 0 < float(val[0]["loss"]) < 5 and val[0]["step"] == str(STEPS)
    # no val speakers among two clips: validated on train segments, and said so
    assert any("'val' split has no usable segments" in n for n in expert_run.notes)
    # the checkpoint is lipsync_expert.pth's container and loads strictly
    assert expert_run.checkpoint.name == f"checkpoint_step{STEPS:09d}.pth"
    container = torch.load(expert_run.checkpoint, weights_only=True)
    windows = sum(Wav2LipDataset(prepared, "train").starts)  # samples in one epoch
    assert container["global_step"] == STEPS
    assert container["global_epoch"] == STEPS * 8 // windows
    assert all(k.startswith("module.") for k in container["state_dict"])
    model = load_syncnet_color(expert_run.checkpoint)
    weight = model.state_dict()["face_encoder.0.conv_block.0.weight"]
    assert torch.equal(weight, container["state_dict"]["module.face_encoder.0.conv_block.0.weight"])


def test_ctrl_c_saves_and_resume_continues_exactly(prepared: Path, tmp_path: Path, monkeypatch):
    options = SyncNetTrainOptions(
        steps=2, batch_size=2, eval_every=0, checkpoint_every=0, seed=5, **CPU
    )
    straight = train_syncnet(prepared, tmp_path / "straight", options)

    calls = {"n": 0}
    original = SyncNetRecipe.train_step

    def interrupt_second(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(SyncNetRecipe, "train_step", interrupt_second)
    stopped = train_syncnet(prepared, tmp_path / "stopped", options)
    assert stopped.interrupted and stopped.step == 1
    assert stopped.checkpoint.name == "checkpoint_step000000001.pth"
    assert (tmp_path / "stopped" / "latest").read_text().strip() == stopped.checkpoint.name
    monkeypatch.setattr(SyncNetRecipe, "train_step", original)

    from dataclasses import replace

    resumed = train_syncnet(
        prepared, tmp_path / "stopped", replace(options, resume=str(tmp_path / "stopped"))
    )
    assert (resumed.start_step, resumed.step, resumed.interrupted) == (1, 2, False)
    _, rows = read_metrics(tmp_path / "stopped")
    assert [r["step"] for r in rows] == ["1", "2"]
    # same samples, same optimiser state: the same weights as the uninterrupted run
    a = torch.load(straight.checkpoint, weights_only=True)["state_dict"]
    b = torch.load(resumed.checkpoint, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    _, straight_rows = read_metrics(tmp_path / "straight")
    assert [r["loss"] for r in straight_rows] == [r["loss"] for r in rows]


@pytest.fixture(scope="module")
def short_clip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first second of talk_c.mp4 with its own audio at 16 kHz."""
    from avatarlab.media import read_audio, read_video, write_video

    clip = read_video(data_dir / "video" / "talk_c.mp4", end=1.0)
    wav = read_audio(data_dir / "video" / "talk_c.mp4", 16000)[:16000]
    path = tmp_path_factory.mktemp("train_clip") / "talk_c_1s.mp4"
    write_video(path, clip.frames, clip.fps, audio=wav, sample_rate=16000, crf=12)
    return path


def test_wav2lip_smoke_with_gan_and_lse_then_dub(
    prepared: Path, expert_run, short_clip: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from avatarlab.cli import app
    from avatarlab.engines._fill import fill_state_dict
    from avatarlab.engines.wav2lip import Wav2Lip, load_wav2lip
    from avatarlab.media import probe, read_video
    from avatarlab.metrics.syncnet import new_syncnet

    syncnet_v2 = tmp_path / "syncnet_v2.model"  # fill-rule weights: exercises the LSE path
    torch.save(fill_state_dict(new_syncnet()).state_dict(), syncnet_v2)
    options = Wav2LipTrainOptions(
        expert=str(expert_run.run_dir), gan=True, steps=2, batch_size=1, eval_every=1,
        eval_batches=1, checkpoint_every=0, sync_threshold=10.0,
        syncnet_weights=str(syncnet_v2), lse_clips=1, lse_frames=12, **CPU,
    )  # fmt: skip
    run = tmp_path / "wav2lip"
    result = train_wav2lip(prepared, run, options)
    print(f"wav2lip: 2 steps with 2 validations in {result.seconds:.1f} s")
    columns, rows = read_metrics(run)
    assert columns == WAV2LIP_COLUMNS
    assert [(r["step"], r["split"]) for r in rows] == [
        ("1", "train"), ("1", "val"), ("2", "train"), ("2", "val"),
    ]  # fmt: skip
    for row in rows:
        print({k: v for k, v in row.items() if v})
    train1, val1, train2, val2 = rows
    # the expert loss is off until a validation's sync loss is under the threshold ...
    assert train1["sync"] == "" and float(train1["syncnet_wt"]) == 0.0
    assert float(val1["sync"]) < 10.0 and float(val1["syncnet_wt"]) == 0.0
    # ... then on with the GAN recipe's weight, in the loss of every later step
    assert float(train2["syncnet_wt"]) == pytest.approx(0.03) and float(train2["sync"]) > 0
    w = 0.03
    expected = w * float(train2["sync"]) + 0.07 * float(train2["perceptual"])
    expected += (1 - w - 0.07) * float(train2["l1"])
    assert float(train2["loss"]) == pytest.approx(expected, rel=1e-4)
    for row in (train1, train2, val1, val2):
        assert 0 < float(row["l1"]) < 1
        assert float(row["disc_real"]) > 0 and float(row["disc_fake"]) > 0
    assert all(math.isfinite(float(v[k])) for v in (val1, val2) for k in ("lse_d", "lse_c"))
    assert any("switched on (0.03)" in n for n in result.notes)

    ckpt = result.checkpoint
    assert ckpt.name == "checkpoint_step000000002.pth" and (run / f"disc_{ckpt.name}").is_file()
    assert (run / "samples" / "step000000002.jpg").is_file()
    disc = torch.load(run / f"disc_{ckpt.name}", weights_only=True)["state_dict"]
    assert "module.face_encoder_blocks.6.1.conv_block.0.weight" in disc
    trained = load_wav2lip(ckpt)  # strict keys and shapes, official container
    torch.manual_seed(options.seed)
    initial = Wav2Lip()
    moved = [
        not torch.equal(p, q)
        for p, q in zip(trained.parameters(), initial.parameters(), strict=True)
    ]
    assert all(moved)  # Adam moved every parameter

    out = tmp_path / "dubbed.mp4"
    cli = CliRunner().invoke(
        app,
        [
            "dub", "--engine", "wav2lip", "--checkpoint", str(ckpt), "--device", "cpu",
            "--video", str(short_clip), "--audio", str(short_clip), "-o", str(out),
        ],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    info = probe(out)
    assert (info.n_frames, info.fps, info.has_audio) == (25, 25.0, True)
    from avatarlab.face.track import track_video

    src, res = read_video(short_clip).frames.astype(int), read_video(out).frames.astype(int)
    x0, y0, x1, y1 = np.nanmedian(track_video(short_clip).boxes, axis=0).astype(int)
    above = np.abs(res[:, : y0 - 5] - src[:, : y0 - 5]).mean()
    mouth = np.abs(res - src)[:, (y0 + 3 * y1) // 4 : y1, (2 * x0 + x1) // 3 : (x0 + 2 * x1) // 3]
    print(f"dub: mean |output - source| above the face {above:.2f}, mouth {mouth.mean():.1f}")
    assert above < 2.0  # above the face the source is untouched (up to re-encoding)
    assert mouth.mean() > 10.0  # the barely trained generator's mouths were pasted
