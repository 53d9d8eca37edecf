"""``prepare`` and ``train``: corpora to training data, training data to checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import app, console
from avatarlab.cli._options import build, flags_of, with_options
from avatarlab.datasets.options import PrepareOptions
from avatarlab.tasks.prepare import PrepareRun
from avatarlab.train.options import SyncNetTrainOptions, Wav2LipTrainOptions


@app.command("prepare")
@with_options(("Output", lambda: flags_of(PrepareOptions)), ("Run", lambda: flags_of(PrepareRun)))
def prepare_cmd(
    src: Path = typer.Argument(..., help="Corpus folder (or one video) to prepare."),
    out: Path = typer.Option(..., "-o", "--out", help="Output root; re-use it to resume."),
    *,
    values: dict[str, Any],
) -> None:
    """Prepare SRC for training: 25 fps face crops, 16 kHz audio, landmarks, manifest, splits."""
    from avatarlab.tasks.prepare import prepare

    s = prepare(src, out, build(PrepareOptions, values), build(PrepareRun, values))
    console.print(
        f"{s.clips} clips: {s.ok} ok, {s.dropped} dropped, {s.failed} failed "
        f"({s.skipped} already done); {s.kept_segments} segments kept "
        f"(train {s.splits['train']}, val {s.splits['val']}, test {s.splits['test']}); "
        f"{s.clips_per_second:.2f} clips/s, {s.realtime_factor:.1f}x real time -> {out}"
    )
    if s.failed:
        console.print(
            f"[yellow]{s.failed} clips failed: see the reason column of {out}/manifest.parquet[/]"
        )
    if s.problem:
        console.print(
            f"[red]nothing was prepared in {out}: {s.problem}[/]", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1)


train_app = typer.Typer(
    help="Train the Wav2Lip generator or its SyncNet lip-sync expert on prepared data.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

_DATA = typer.Option(..., "--data", help="Output of `prepare --preset wav2lip`.")
_RUN = typer.Option(..., "-o", "--out", help="Run folder (checkpoints, metrics.csv).")


def _finish_training(result: Any) -> None:
    console.print(
        f"{result.recipe}: steps {result.start_step} -> {result.step} in {result.seconds:.0f} s; "
        f"checkpoint {result.checkpoint}; metrics {result.metrics_csv}",
        soft_wrap=True,
    )
    if result.interrupted:
        raise typer.Exit(130)


@train_app.command("syncnet")
@with_options((None, lambda: flags_of(SyncNetTrainOptions)))
def train_syncnet_cmd(data: Path = _DATA, out: Path = _RUN, *, values: dict[str, Any]) -> None:
    """Train the SyncNet_color lip-sync expert (Wav2Lip's color_syncnet_train.py)."""
    from avatarlab.train.syncnet import train_syncnet

    options = build(SyncNetTrainOptions, values)
    _finish_training(train_syncnet(data, out, options, echo=console.print))


@train_app.command("wav2lip")
@with_options((None, lambda: flags_of(Wav2LipTrainOptions)))
def train_wav2lip_cmd(data: Path = _DATA, out: Path = _RUN, *, values: dict[str, Any]) -> None:
    """Train the Wav2Lip generator against a frozen lip-sync expert (wav2lip_train.py)."""
    from avatarlab.train.wav2lip import train_wav2lip

    options = build(Wav2LipTrainOptions, values)
    _finish_training(train_wav2lip(data, out, options, echo=console.print))
