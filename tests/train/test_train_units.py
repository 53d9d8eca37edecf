"""Training pieces on small synthetic inputs: items, discriminator, stacking, loop files."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avatarlab.datasets.torch import mel_start  # noqa: E402
from avatarlab.errors import (  # noqa: E402
    CheckpointError,
    MediaError,
    MissingWeightsError,
    NoFaceError,
    OptionError,
)
from avatarlab.media import melspectrogram, read_audio, write_audio  # noqa: E402
from avatarlab.train.data import Wav2LipTrainDataset  # noqa: E402
from avatarlab.train.disc import Wav2LipDiscQual  # noqa: E402
from avatarlab.train.loop import (  # noqa: E402
    LATEST,
    MetricsLog,
    Recipe,
    StepIndices,
    Trainable,
    checkpoints_to_prune,
    from_worker,
    load_checkpoint,
    resolve_checkpoint,
    run_training,
    save_checkpoint,
)
from avatarlab.train.options import SyncNetTrainOptions, Wav2LipTrainOptions  # noqa: E402
from avatarlab.train.syncnet import lower_half_stack  # noqa: E402
from avatarlab.train.wav2lip import generated_lower_halves  # noqa: E402


def _level(k: int) -> tuple[int, int, int]:
    """BGR colour of synthetic frame ``k``: each channel tells the frame apart differently."""
    return 10 + 2 * k, 128, 240 - 2 * k


def _segment(folder: Path, n_frames: int, seed: int) -> None:
    folder.mkdir(parents=True)
    for k in range(n_frames):
        cv2.imwrite(str(folder / f"{k}.jpg"), np.full((32, 32, 3), _level(k), dtype=np.uint8))
    noise = 0.1 * np.random.default_rng(seed).standard_normal(n_frames * 640)
    write_audio(folder / "audio.wav", noise.astype(np.float32), 16000)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_prepared")
    _segment(root / "a" / "a" / "00", 40, 1)
    _segment(root / "b" / "b" / "00", 30, 2)
    (root / "filelists").mkdir()
    (root / "filelists" / "train.txt").write_text("a/a/00\nb/b/00\n")
    return root


def test_generator_items_follow_wav2lip_train(synthetic: Path) -> None:
    data = Wav2LipTrainDataset(synthetic, "train", seed=3)
    mels = [melspectrogram(read_audio(f / "audio.wav")) for f, _ in data.segments]
    assert len(data) == sum(data.generator_starts(k) for k in range(2)) == (36 - 4) + (26 - 4)
    for i in range(8):
        segment, start, wrong = data.draw(i)
        x, indiv, mel, y = data[i]
        assert x.shape == (6, 5, 96, 96) and indiv.shape == (5, 1, 80, 16)
        assert mel.shape == (1, 80, 16) and y.shape == (3, 5, 96, 96)
        assert 1 <= start <= data.starts[segment] - 4 and wrong != start
        blue = np.array([_level(k)[0] for k in range(start, start + 5)]) / 255
        red = np.array([_level(k)[2] for k in range(start, start + 5)]) / 255
        assert np.allclose(y[0, :, 50, 50], blue, atol=2 / 255)  # BGR, like the checkpoints
        assert np.allclose(y[2, :, 50, 50], red, atol=2 / 255)
        assert torch.equal(x[:3, :, :48], y[:, :, :48]) and not x[:3, :, 48:].any()
        wrong_blue = np.array([_level(k)[0] for k in range(wrong, wrong + 5)]) / 255
        assert np.allclose(x[3, :, 70, 20], wrong_blue, atol=2 / 255)
        # frame s + t hears the window from frame s + t - 1 (get_segmented_mels)
        for t in range(5):
            c = mel_start(start + t - 1)
            assert np.allclose(indiv[t, 0], mels[segment][:, c : c + 16])
        assert torch.equal(mel, indiv[1])
    # every start drawn leaves the last frame's mel window inside the audio
    for i in range(400):
        segment, start, _ = data.draw(i)
        assert mel_start(start + 3) + 16 <= mels[segment].shape[1]


#: (block, layer, out channels, in channels, kernel) of Wav2Lip_disc_qual (models/wav2lip.py).
DISC_LAYERS = [
    (0, 0, 32, 3, 7),
    (1, 0, 64, 32, 5), (1, 1, 64, 64, 5),
    (2, 0, 128, 64, 5), (2, 1, 128, 128, 5),
    (3, 0, 256, 128, 5), (3, 1, 256, 256, 5),
    (4, 0, 512, 256, 3), (4, 1, 512, 512, 3),
    (5, 0, 512, 512, 3), (5, 1, 512, 512, 3),
    (6, 0, 512, 512, 3), (6, 1, 512, 512, 1),
]  # fmt: skip


def test_discriminator_has_the_reference_layout() -> None:
    expected = {"binary_pred.0.weight": (1, 512, 1, 1), "binary_pred.0.bias": (1,)}
    for block, layer, cout, cin, k in DISC_LAYERS:
        key = f"face_encoder_blocks.{block}.{layer}.conv_block.0"
        expected[f"{key}.weight"] = (cout, cin, k, k)
        expected[f"{key}.bias"] = (cout,)
    disc = Wav2LipDiscQual()
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == expected
    torch.manual_seed(0)
    faces = torch.rand(2, 3, 5, 96, 96)
    with torch.no_grad():
        pred = disc(faces)
        assert pred.shape == (10, 1) and 0 < float(pred.min()) <= float(pred.max()) < 1
        # time-major folding (frame 0 of both items first) and lower half only
        single = disc(faces[1, :, 0][None])
        assert torch.allclose(pred[1], single[0])
        changed = faces.clone()
        changed[:, :, :, :48] = 0.0  # the upper half is never looked at
        assert torch.equal(disc(changed), pred)
        loss = disc.perceptual_loss(faces)
        assert torch.isclose(loss, -torch.log(pred).mean())


def test_expert_inputs_stack_frames_like_the_reference() -> None:
    torch.manual_seed(1)
    g = torch.rand(2, 3, 5, 96, 96)  # generator output (B, 3, T, H, W)
    half = g[:, :, :, 48:]
    reference = torch.cat([half[:, :, i] for i in range(5)], dim=1)  # get_sync_loss
    assert torch.equal(generated_lower_halves(g), reference)
    frames = torch.rand(2, 5, 3, 96, 96)  # dataset windows (B, T, 3, H, W)
    stacked = torch.cat([frames[:, t] for t in range(5)], dim=1)[:, :, 48:]  # x[:, H//2:]
    assert torch.equal(lower_half_stack(frames), stacked)


def test_step_indices_and_options() -> None:
    assert list(StepIndices(4, 2, 5)) == list(range(8, 20))
    assert list(StepIndices(4, 2, 5, pool=6)) == [i % 6 for i in range(8, 20)]
    assert len(StepIndices(4, 2, 5)) == 12
    assert Wav2LipTrainOptions().sync_weight == 0.01
    assert Wav2LipTrainOptions(gan=True).sync_weight == 0.03
    assert Wav2LipTrainOptions(syncnet_wt=0.2).sync_weight == 0.2
    assert SyncNetTrainOptions().batch_size == 64 and Wav2LipTrainOptions().batch_size == 16
    for bad in ({"steps": 0}, {"lr": 0}, {"val_split": "dev"}, {"overfit": -1}):
        with pytest.raises(OptionError):
            SyncNetTrainOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="sum to less than 1"):
        Wav2LipTrainOptions(gan=True, syncnet_wt=0.5, disc_wt=0.5)


def test_metrics_log_continues_a_resumed_run(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, ("loss",), 0)
    for step in range(1, 6):
        log.write(step, "train", {"loss": 1.0 / step})
    log.write(4, "val", {"loss": float("nan")})
    log.close()
    resumed = MetricsLog(tmp_path, ("loss",), 3)  # crashed after the checkpoint of step 3
    resumed.write(4, "train", {"loss": 0.5})
    resumed.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [(r["step"], r["split"]) for r in rows] == [(str(s), "train") for s in range(1, 5)]
    assert rows[0]["loss"] == "1" and rows[2]["loss"] == "0.333333" and rows[3]["loss"] == "0.5"
    assert float(rows[3]["wall_s"]) >= float(rows[2]["wall_s"])


class _TinyRecipe(Recipe):
    name = "tiny"
    title = "tiny network"

    def __init__(self, seed: int, with_disc: bool = False) -> None:
        super().__init__(SyncNetTrainOptions(batch_size=2), torch.device("cpu"))
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        self.trainables = [Trainable(net, torch.optim.Adam(net.parameters(), lr=0.1))]
        if with_disc:
            disc = torch.nn.Linear(4, 1)
            self.trainables.append(
                Trainable(disc, torch.optim.Adam(disc.parameters()), prefix="disc_")
            )
        self.counter = 0.0

    def state(self) -> dict[str, float]:
        return {"counter": self.counter}

    def load_state(self, state: dict) -> None:
        self.counter = state["counter"]

    def step(self) -> None:
        for t in self.trainables:
            t.optimizer.zero_grad()
            t.model(torch.rand(2, 3 if t.prefix == "" else 4)).sum().backward()
            t.optimizer.step()


def test_checkpoints_use_the_official_container_and_resume(tmp_path: Path) -> None:
    recipe = _TinyRecipe(0, with_disc=True)
    for step in range(1, 4):
        recipe.step()
        recipe.counter = step
        saved = save_checkpoint(recipe, tmp_path, step, keep=2)
    assert saved.name == "checkpoint_step000000003.pth"
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "checkpoint_step000000002.pth",
        "checkpoint_step000000003.pth",
        "disc_checkpoint_step000000002.pth",
        "disc_checkpoint_step000000003.pth",
    ]
    assert (tmp_path / LATEST).read_text().strip() == saved.name
    container = torch.load(saved, weights_only=True)
    assert set(container) == {"state_dict", "optimizer", "global_step", "global_epoch", "avatarlab"}
    assert all(k.startswith("module.") for k in container["state_dict"])
    assert container["global_step"] == 3 and container["avatarlab"]["recipe"] == "tiny"

    fresh = _TinyRecipe(1, with_disc=True)
    assert resolve_checkpoint(tmp_path) == saved
    assert load_checkpoint(fresh, resolve_checkpoint(tmp_path)) == 3
    assert fresh.counter == 3
    for a, b in zip(recipe.trainables, fresh.trainables, strict=True):
        for (ka, va), (kb, vb) in zip(
            a.model.state_dict().items(), b.model.state_dict().items(), strict=True
        ):
            assert ka == kb and torch.equal(va, vb)
        assert a.optimizer.state_dict()["state"][0]["step"] == 3
        assert torch.equal(
            a.optimizer.state_dict()["state"][0]["exp_avg"],
            b.optimizer.state_dict()["state"][0]["exp_avg"],
        )


def test_checkpoint_errors_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="no 'latest' file"):
        resolve_checkpoint(tmp_path)
    (tmp_path / LATEST).write_text("checkpoint_step000000009.pth\n")
    with pytest.raises(MissingWeightsError, match="missing"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nothing.pth")
    other = torch.nn.Linear(5, 5)
    torch.save({"state_dict": other.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="does not fit the tiny network"):
        load_checkpoint(_TinyRecipe(0), tmp_path / "other.pth")


def test_pruning_keeps_what_latest_names_and_drops_other_histories(tmp_path: Path) -> None:
    def ckpt(step: int, prefix: str = "") -> Path:
        return tmp_path / f"{prefix}checkpoint_step{step:09d}.pth"

    # resumed from step 100 into a folder whose earlier run reached 300; now saving 110
    files = [ckpt(s) for s in (50, 100, 110, 200, 300)]
    assert checkpoints_to_prune(files, ckpt(110), 2) == [ckpt(50), ckpt(300), ckpt(200)]
    assert checkpoints_to_prune(files, ckpt(110), 1) == [ckpt(100), ckpt(50), ckpt(300), ckpt(200)]
    assert checkpoints_to_prune(files, ckpt(110), 4) == [ckpt(200)]
    assert checkpoints_to_prune(files, ckpt(110), 0) == []
    # an ordinary run: the oldest go
    assert checkpoints_to_prune(files[:3], ckpt(110), 2) == [ckpt(50)]
    disc = [ckpt(s, "disc_") for s in (100, 110, 200)]
    assert checkpoints_to_prune(disc, ckpt(110, "disc_"), 1) == [
        ckpt(100, "disc_"),
        ckpt(200, "disc_"),
    ]


def test_save_after_resuming_from_an_older_step_keeps_latest(tmp_path: Path) -> None:
    recipe = _TinyRecipe(0)
    for step in (1, 5, 6):
        save_checkpoint(recipe, tmp_path, step, keep=0)  # keep all
    resumed = _TinyRecipe(0)
    assert load_checkpoint(resumed, tmp_path / "checkpoint_step000000001.pth") == 1
    saved = save_checkpoint(resumed, tmp_path, 2, keep=2)  # sorted: 1 2 5 6
    assert resolve_checkpoint(tmp_path) == saved and saved.is_file()
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "checkpoint_step000000001.pth",
        "checkpoint_step000000002.pth",
    ]


class _Broken(torch.utils.data.Dataset):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        raise self.error


def test_worker_errors_come_back_clean() -> None:
    for error in (MediaError("a.jpg is missing: re-run prepare"), NoFaceError("no face", [3])):
        loader = torch.utils.data.DataLoader(_Broken(error), num_workers=1)
        with pytest.raises(Exception) as caught:
            next(iter(loader))
        assert "Traceback" in str(caught.value)
        clean = from_worker(caught.value)
        assert clean is not None and str(clean) == str(error)
        assert isinstance(clean, MediaError if isinstance(error, MediaError) else Exception)
    assert from_worker(RuntimeError("CUDA out of memory")) is None


def test_run_training_surfaces_a_worker_error_clean(tmp_path: Path) -> None:
    class BrokenData(_TinyRecipe):
        def train_loader(self, first_step: int) -> torch.utils.data.DataLoader:
            data = _Broken(MediaError("0.jpg is missing: re-run avatarlab prepare"))
            return torch.utils.data.DataLoader(data, num_workers=1)

    with pytest.raises(MediaError) as caught:
        run_training(BrokenData(0), tmp_path / "run")
    assert str(caught.value) == "0.jpg is missing: re-run avatarlab prepare"


def test_train_output_must_be_a_folder(tmp_path: Path) -> None:
    from avatarlab.train.syncnet import train_syncnet

    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(OptionError, match="taken.* is a file"):
        train_syncnet(tmp_path / "no-data", file, SyncNetTrainOptions(device="cpu"))
    with pytest.raises(OptionError, match="/dev/null.* is not a folder"):
        train_syncnet(tmp_path / "no-data", "/dev/null/x", SyncNetTrainOptions(device="cpu"))
