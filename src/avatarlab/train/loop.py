"""The training loop both recipes share: steps, checkpoints, resume, metrics, Ctrl-C.

A run folder holds

- ``checkpoint_step{N:09d}.pth``: the official Wav2Lip container
  ``{"state_dict": {"module.<key>": tensor}, "optimizer": ..., "global_step": N,
  "global_epoch": E}`` (what ``load_wav2lip`` / ``load_syncnet_color`` and the reference
  scripts read), plus an ``"avatarlab"`` entry with the recipe's own state;
  ``disc_checkpoint_step{N:09d}.pth`` beside it when a discriminator trains;
- ``latest``: the file name of the newest checkpoint, written after the file is
  complete, so it never points at a partial one;
- ``metrics.csv``: one row per training step (``split=train``) and per validation
  (``split=val``); on resume, rows after the resumed step are dropped first;
- ``tensorboard/``: the same scalars, when the ``tensorboard`` package is installed;
- ``options.json``: the options of the latest invocation.

Samples are drawn as pure functions of ``(seed, index)`` and step ``k`` uses indices
``k * batch .. (k + 1) * batch - 1``, so a resumed run sees exactly the samples an
uninterrupted one would have.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from avatarlab import errors
from avatarlab._util import atomic_output, make_output_folder, track_progress
from avatarlab.errors import (
    AvatarLabError,
    CheckpointError,
    MediaError,
    MissingWeightsError,
    OptionError,
)
from avatarlab.train.options import TrainOptions
from avatarlab.weights import compare_layout, read_state_dict

CHECKPOINT_NAME = "checkpoint_step{:09d}.pth"
LATEST = "latest"
METRICS = "metrics.csv"
OPTIONS = "options.json"
TENSORBOARD = "tensorboard"
#: Prefix of the state-dict keys in the official files (written by ``nn.DataParallel``).
MODULE_PREFIX = "module."

Echo = Callable[[str], None]


@dataclass
class Trainable:
    """One network the loop checkpoints: saved as ``{prefix}checkpoint_step*.pth``."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    prefix: str = ""


class Recipe:
    """What a training recipe gives the loop (subclassed by SyncNet and Wav2Lip).

    ``trainables[0]`` is the network a run is "of" (its checkpoint is the one ``latest``
    names); ``columns`` are the metric names of ``train_step`` and ``validate``.
    """

    name = "recipe"
    title = "network"
    columns: tuple[str, ...] = ("loss",)

    def __init__(self, options: TrainOptions, device: torch.device) -> None:
        self.options = options
        self.device = device
        self.trainables: list[Trainable] = []
        self.notes: list[str] = []
        self.epoch_items = 1  # samples in one pass over the training data

    def train_loader(self, first_step: int) -> Iterable[Any]:
        """Batches of steps ``first_step .. options.steps - 1``."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimiser step on ``batch``; returns its metrics (a subset of ``columns``)."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Metrics on the validation samples (the same ones every time)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Recipe state a resumed run needs besides weights and optimisers."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

    def on_checkpoint(self, run_dir: Path, step: int) -> None:
        """Called after a checkpoint is written (e.g. to save sample images)."""

    def set_train(self, mode: bool) -> None:
        for t in self.trainables:
            t.model.train(mode)


@dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        run_dir: the run folder.
        recipe: ``"syncnet"`` or ``"wav2lip"``.
        start_step: the step the run started (or resumed) from.
        step: the step it stopped at.
        checkpoint: the newest checkpoint (``None`` when no step was taken).
        interrupted: stopped by Ctrl-C (a checkpoint of ``step`` was saved).
        seconds: wall time of this invocation.
        last_eval: the metrics of the last validation (empty when none ran).
        notes: what was decided on the way (fallbacks, switches, skipped parts).
    """

    run_dir: Path
    recipe: str
    start_step: int
    step: int
    checkpoint: Path | None
    interrupted: bool
    seconds: float
    last_eval: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_csv(self) -> Path:
        return self.run_dir / METRICS


class StepIndices:
    """Sample indices of steps ``first .. last - 1``: ``step * batch_size + j``, taken
    modulo ``pool`` when ``pool > 0`` (a fixed set of samples, cycled)."""

    def __init__(self, batch_size: int, first: int, last: int, pool: int = 0) -> None:
        self.range = range(first * batch_size, last * batch_size)
        self.pool = pool

    def __len__(self) -> int:
        return len(self.range)

    def __iter__(self) -> Iterator[int]:
        if self.pool > 0:
            return (i % self.pool for i in self.range)
        return iter(self.range)


def train_length(options: TrainOptions) -> int:
    """Training samples a run draws (its dataset's length)."""
    return options.overfit or options.steps * options.batch_size


def step_loader(
    dataset: Dataset[Any],
    batch_size: int,
    first_step: int,
    last_step: int,
    num_workers: int,
    device: torch.device,
    pool: int = 0,
) -> DataLoader[Any]:
    """Batches of steps ``first_step .. last_step - 1`` (see :class:`StepIndices`)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StepIndices(batch_size, first_step, last_step, pool),  # type: ignore[arg-type]
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's latest checkpoint (via its ``latest`` file)."""
    p = Path(path)
    if p.is_dir():
        pointer = p / LATEST
        if not pointer.is_file():
            raise MissingWeightsError(
                f"{p} holds no training run (no '{LATEST}' file): pass a checkpoint file, or "
                "the -o folder of an earlier avatarlab train run"
            )
        file = p / pointer.read_text(encoding="utf-8").strip()
        if not file.is_file():
            raise MissingWeightsError(f"{pointer} names {file.name}, which is missing")
        return file
    if not p.is_file():
        raise MissingWeightsError(f"checkpoint {p} does not exist")
    return p


def _container(
    trainable: Trainable, step: int, epoch: int, extra: dict[str, Any] | None
) -> dict[str, Any]:
    state = {MODULE_PREFIX + k: v.detach().cpu() for k, v in trainable.model.state_dict().items()}
    out: dict[str, Any] = {
        "state_dict": state,
        "optimizer": trainable.optimizer.state_dict(),
        "global_step": step,
        "global_epoch": epoch,
    }
    if extra is not None:
        out["avatarlab"] = extra
    return out


def save_checkpoint(recipe: Recipe, run_dir: Path, step: int, keep: int) -> Path:
    """Write the checkpoints of ``step``, point ``latest`` at them, prune old ones."""
    epoch = step * recipe.options.batch_size // max(1, recipe.epoch_items)
    extra = {"recipe": recipe.name, "state": recipe.state()}
    main = run_dir / CHECKPOINT_NAME.format(step)
    for i, trainable in enumerate(recipe.trainables):
        path = run_dir / (trainable.prefix + CHECKPOINT_NAME.format(step))
        with atomic_output(path) as tmp:
            torch.save(_container(trainable, step, epoch, extra if i == 0 else None), tmp)
    with atomic_output(run_dir / LATEST) as tmp:
        tmp.write_text(main.name + "\n", encoding="utf-8")
    if keep > 0:
        for trainable in recipe.trainables:
            files = list(run_dir.glob(trainable.prefix + "checkpoint_step*.pth"))
            current = run_dir / (trainable.prefix + main.name)
            for p in checkpoints_to_prune(files, current, keep):
                p.unlink(missing_ok=True)
    recipe.on_checkpoint(run_dir, step)
    return main


_STEP = re.compile(r"checkpoint_step(\d+)\.pth$")


def checkpoints_to_prune(files: Sequence[Path], current: Path, keep: int) -> list[Path]:
    """The checkpoint files to delete so that ``keep`` remain (``keep <= 0``: none).

    ``current`` (the one ``latest`` names) is always kept; then the newest ones at or
    below its step; checkpoints above its step (left by a longer run this one resumed
    from an earlier point of) are deleted first, since they belong to another history.
    """
    if keep <= 0:
        return []

    def step(p: Path) -> int:
        match = _STEP.search(p.name)
        return int(match.group(1)) if match else -1

    now = step(current)
    others = [p for p in files if p.name != current.name]
    # keep order: current, then newest at or below its step, then (last) those above it
    ranked = sorted(others, key=lambda p: (step(p) > now, -step(p)))
    return ranked[keep - 1 :]


def _load_container(file: Path) -> dict[str, Any]:
    """The whole checkpoint (optimizer, step, ...) read without running code from it."""
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except Exception:  # read_state_dict already explained unreadable files; keep weights only
        return {}
    return obj if isinstance(obj, dict) else {}


def _load_into(trainable: Trainable, file: Path, title: str, notes: list[str]) -> dict[str, Any]:
    state = read_state_dict(file)
    model = trainable.model
    diff = compare_layout(state, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    if not diff.ok:
        raise CheckpointError(
            f"{file} does not fit the {title}: {diff.summary()}. Resume from a checkpoint "
            f"of the same network (a run folder of this recipe, or its official file)."
        )
    model.load_state_dict(state, strict=False)
    container = _load_container(file)
    optimizer_state = container.get("optimizer")
    if isinstance(optimizer_state, dict):
        try:
            trainable.optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as err:
            notes.append(f"{file.name}: optimizer state does not fit ({err}); it starts fresh")
    else:
        notes.append(f"{file.name} holds no optimizer state: the optimizer starts fresh")
    return container


def load_checkpoint(recipe: Recipe, file: Path) -> int:
    """Load weights, optimisers and recipe state from ``file``; returns its global step.

    Takes our checkpoints and the official ones (``lipsync_expert.pth``, ``wav2lip.pth``,
    ...: then the optimiser state is used when the file has one). A discriminator is
    read from ``disc_<file name>`` beside ``file`` when there is one, else starts fresh.
    """
    main, *others = recipe.trainables
    container = _load_into(main, file, recipe.title, recipe.notes)
    for trainable in others:
        sibling = file.with_name(trainable.prefix + file.name)
        if sibling.is_file():
            _load_into(trainable, sibling, f"{recipe.title} ({trainable.prefix[:-1]})", [])
        else:
            recipe.notes.append(f"no {sibling.name} beside {file.name}: it starts fresh")
    ours = container.get("avatarlab")
    if isinstance(ours, dict) and isinstance(ours.get("state"), dict):
        recipe.load_state(ours["state"])
    return int(container.get("global_step", 0) or 0)


class MetricsLog:
    """``metrics.csv`` (and TensorBoard when installed): step, split, wall seconds, metrics."""

    def __init__(self, run_dir: Path, columns: Sequence[str], start_step: int) -> None:
        self.fields = ("step", "split", "wall_s", *columns)
        path = run_dir / METRICS
        kept: list[dict[str, str]] = []
        if path.is_file() and start_step > 0:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if tuple(reader.fieldnames or ()) == self.fields:
                    kept = [r for r in reader if int(r["step"]) <= start_step]
        with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(kept)
        self.wall0 = float(kept[-1]["wall_s"]) if kept else 0.0
        self.t0 = time.monotonic()
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, self.fields)
        self._tb = _tensorboard(run_dir / TENSORBOARD)

    def write(self, step: int, split: str, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": step, "split": split}
        row["wall_s"] = f"{self.wall0 + time.monotonic() - self.t0:.3f}"
        for key, value in values.items():
            row[key] = "" if value is None or math.isnan(value) else f"{value:.6g}"
            if self._tb is not None and value is not None and not math.isnan(value):
                self._tb.add_scalar(f"{split}/{key}", value, step)
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional and not a dependency
        return None
    return SummaryWriter(str(folder))


def _echo_eval(echo: Echo | None, step: int, values: dict[str, float]) -> None:
    if echo is not None:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if not math.isnan(v))
        echo(f"step {step} val: {shown}")


def run_training(
    recipe: Recipe,
    out: str | os.PathLike[str],
    echo: Echo | None = None,
    data: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train ``recipe`` up to ``options.steps`` in run folder ``out``.

    Resumes from ``options.resume`` (a run folder or checkpoint file); refuses to start
    afresh in a folder that already holds a run. Validates every ``eval_every`` steps and
    at the end, checkpoints every ``checkpoint_every`` steps, at the end and on Ctrl-C
    (then returns with ``interrupted=True``).
    """
    opts = recipe.options
    run_dir = make_output_folder(out, create=False)
    t_start = time.monotonic()
    if opts.resume is None and (run_dir / LATEST).is_file():
        raise OptionError(
            f"{run_dir} already holds a training run: pass --resume {run_dir} to continue it, "
            "or choose a new output folder"
        )
    start_step = 0
    checkpoint: Path | None = None
    if opts.resume is not None:
        checkpoint = resolve_checkpoint(opts.resume)
        start_step = load_checkpoint(recipe, checkpoint)
        recipe.notes.append(f"resumed from {checkpoint} at step {start_step}")
    make_output_folder(run_dir)
    with atomic_output(run_dir / OPTIONS) as tmp:
        info = {"recipe": recipe.name, "data": None if data is None else str(data)}
        tmp.write_text(json.dumps({**info, **asdict(opts)}, indent=2), encoding="utf-8")
    if start_step >= opts.steps:
        recipe.notes.append(f"already at step {start_step} >= steps {opts.steps}: nothing to do")
        return TrainResult(
            run_dir, recipe.name, start_step, start_step, checkpoint, False,
            time.monotonic() - t_start, notes=recipe.notes,
        )  # fmt: skip
    for note in recipe.notes:
        if echo is not None:
            echo(note)
    shown_notes = len(recipe.notes)

    log = MetricsLog(run_dir, recipe.columns, start_step)
    step, saved_step, evaluated_step = start_step, start_step, -1
    last_eval: dict[str, float] = {}
    interrupted = False

    def evaluate() -> None:
        nonlocal evaluated_step, last_eval
        recipe.set_train(False)
        with torch.no_grad():
            last_eval = recipe.validate()
        log.write(step, "val", last_eval)
        _echo_eval(echo, step, last_eval)
        evaluated_step = step

    def save() -> None:
        nonlocal checkpoint, saved_step
        checkpoint = save_checkpoint(recipe, run_dir, step, opts.keep_checkpoints)
        saved_step = step

    try:
        batches = recipe.train_loader(start_step)
        title = f"train {recipe.name}"
        for batch in track_progress(batches, title, total=opts.steps - start_step):
            recipe.set_train(True)
            values = recipe.train_step(batch)
            step += 1
            log.write(step, "train", values)
            if opts.eval_every and step % opts.eval_every == 0:
                evaluate()
            if opts.checkpoint_every and step % opts.checkpoint_every == 0:
                save()
            if echo is not None and len(recipe.notes) > shown_notes:
                for note in recipe.notes[shown_notes:]:
                    echo(note)
                shown_notes = len(recipe.notes)
        if opts.eval_every and evaluated_step != step:
            evaluate()
        if saved_step != step:
            save()
    except (AvatarLabError, RuntimeError) as err:
        worker_error = from_worker(err)
        if worker_error is None:
            raise
        raise worker_error from None
    except KeyboardInterrupt:
        interrupted = True
        if step > saved_step:
            save()
        if checkpoint is None:
            recipe.notes.append("interrupted before the first step: nothing saved")
        else:
            recipe.notes.append(
                f"interrupted at step {step}: {checkpoint.name} saved; "
                f"continue with --resume {run_dir}"
            )
    finally:
        log.close()
    if echo is not None:
        for note in recipe.notes[shown_notes:]:
            echo(note)
    return TrainResult(
        run_dir, recipe.name, start_step, step, checkpoint, interrupted,
        time.monotonic() - t_start, last_eval, recipe.notes,
    )  # fmt: skip


_WORKER_MARK = "in DataLoader worker process"
_ERROR_LINE = re.compile(r"^avatarlab\.errors\.(\w+): (.*)$")


def from_worker(err: BaseException) -> AvatarLabError | None:
    """The clean avatarlab error behind a DataLoader worker's re-raised one, else None.

    A worker's exception reaches the main process as the same type (or a
    ``RuntimeError`` when it cannot be rebuilt) whose message is the whole worker
    traceback; this rebuilds the original error from its last line, so the user sees
    the message that says what to do.
    """
    text = str(err)
    if _WORKER_MARK not in text:
        return None
    lines = text.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        match = _ERROR_LINE.match(lines[i])
        if match:
            break
    else:
        return None
    cls = getattr(errors, match.group(1), None)
    if not (isinstance(cls, type) and issubclass(cls, AvatarLabError)):
        return None
    message = "\n".join([match.group(2), *lines[i + 1 :]])
    try:
        return cls(message)
    except TypeError:  # e.g. NoFaceError(msg, frames)
        return AvatarLabError(message)


def validation_dataset(
    make: Callable[[str], Dataset[Any]], split: str, notes: list[str]
) -> Dataset[Any]:
    """``make(split)``, or ``make("train")`` with a note when ``split`` has no usable segment."""
    try:
        return make(split)
    except MediaError:
        if split == "train":
            raise
    notes.append(
        f"the '{split}' split has no usable segments: validating on 'train' segments "
        "(the validation numbers are not held out)"
    )
    return make("train")
