"""The ``avatarlab`` command: thin typed wrappers over the public Python API.

Every command parses its arguments, calls the library, and prints a result.
User mistakes (``AvatarLabError``) become one red line and a non-zero exit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from avatarlab import __version__
from avatarlab._util import silence_native_stderr
from avatarlab.errors import AvatarLabError

app = typer.Typer(
    name="avatarlab",
    help="Talking avatars: analyse faces, make portraits speak, stream, prepare data, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"avatarlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Talking avatars: analyse faces, make portraits speak, stream, prepare data, evaluate."""


@app.command()
def info(
    media: Path = typer.Argument(..., help="Video, audio or image file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the streams, duration, frame rate and number of faces of MEDIA."""
    from rich.table import Table

    from avatarlab.face.jobs import summarize_media

    summary = summarize_media(media)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
        return
    i = summary.info
    table = Table(title=str(i.path), show_header=False)
    if i.has_video:
        kind = "image" if i.is_image else f"{i.video_codec}, {i.n_frames} frames, {i.fps:.3f} fps"
        rot = f", rotated {i.rotation} deg" if i.rotation else ""
        table.add_row("video", f"{i.width}x{i.height} {kind}{rot}")
    table.add_row(
        "audio",
        f"{i.audio_codec}, {i.sample_rate} Hz, {i.channels} ch" if i.has_audio else "none",
    )
    if not i.is_image:
        table.add_row("duration", f"{i.duration:.3f} s")
    if i.has_video:
        table.add_row(
            "faces",
            f"{summary.faces} (in {summary.frames_with_face}/{summary.frames_sampled} sampled frames)",
        )
    Console().print(table)


@app.command()
def faces(
    media: Path = typer.Argument(..., help="Video or image to analyse."),
    out: Path = typer.Option(..., "-o", "--out", help="JSON file for boxes, landmarks, pose."),
    annotate: Path | None = typer.Option(
        None, "--annotate", help="Also write an annotated preview (.mp4 for video, .jpg/.png)."
    ),
) -> None:
    """Track the face in MEDIA: per-frame boxes, 478-point mesh, 68 landmarks and head pose."""
    from avatarlab.face.jobs import analyze_faces

    result = analyze_faces(media, out, annotate=annotate)
    console.print(
        f"{result.frames_with_face}/{result.n_frames} frames with a face -> {out}"
        + (f", preview {annotate}" if annotate else "")
    )
    if result.missing:
        console.print(f"[yellow]no face in frames {result.missing}[/]")


@app.command()
def crop(
    inputs: list[Path] = typer.Argument(..., help="Images, videos or folders of them."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the crops and report.json."),
    size: int = typer.Option(512, "--size", help="Side of the square crops in pixels."),
    margin: float = typer.Option(0.4, "--margin", help="Context around the face box (fraction)."),
    every: int = typer.Option(1, "--every", help="Take every N-th frame of videos."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Crop every face, not the largest."),
    image_format: str = typer.Option("jpg", "--format", help="jpg or png."),
) -> None:
    """Batch face crops from images or video frames (the autocrop job)."""
    from avatarlab.face.jobs import CropOptions, crop_faces

    options = CropOptions(
        size=size, margin=margin, every=every, all_faces=all_faces, image_format=image_format
    )
    report = crop_faces(inputs, out, options)
    console.print(f"{len(report.written)} crops -> {out}")
    for path, frames in report.no_face.items():
        console.print(f"[yellow]no face:[/] {path} ({frames})")
    for path, err in report.failed.items():
        console.print(f"[red]failed:[/] {path}: {err}")
    if report.failed or (not report.written and report.no_face):
        raise typer.Exit(1)


def _print_generated(result: object) -> None:
    r = result  # GenerateResult
    console.print(
        f"{r.frames} frames at {r.fps:g} fps ({r.duration:.2f} s, speech: {r.speech_source})"  # type: ignore[attr-defined]
        f" -> {r.path}"  # type: ignore[attr-defined]
    )
    for note in r.notes:  # type: ignore[attr-defined]
        console.print(f"  [dim]{note}[/]")


@app.command()
def speak(
    image: Path = typer.Option(..., "--image", help="Portrait (photo, painting, cartoon)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    audio: Path | None = typer.Option(None, "--audio", help="Speech to lip-sync to."),
    text: str | None = typer.Option(None, "--text", help="Text to say (espeak-ng voice)."),
    voice: str = typer.Option("en-us", "--voice", help="espeak-ng voice for --text."),
    transcript: str | None = typer.Option(
        None, "--transcript", help="What --audio says (English): exact phone timing."
    ),
    engine: str = typer.Option("warp", "--engine", help="warp (default) or wav2lip."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Weights for wav2lip."),
    device: str = typer.Option("auto", "--device", help="Neural engines: cpu, cuda or auto."),
    batch_size: int = typer.Option(16, "--batch-size", help="Neural engines: frames per batch."),
    fps: float = typer.Option(25.0, "--fps", help="Output frame rate."),
    head_motion: float = typer.Option(0.5, "--head-motion", help="Head motion, 0..1."),
    blink_rate: float = typer.Option(17.0, "--blink-rate", help="Blinks per minute."),
    expressiveness: float = typer.Option(1.0, "--expressiveness", help="Jaw scale, 0..2."),
    seed: int = typer.Option(0, "--seed", help="Seed for blinks and head motion."),
    crop_size: int = typer.Option(256, "--crop-size", help="Face processing resolution."),
    teeth: str = typer.Option("auto", "--teeth", help="Mouth interior: auto, source, synthetic."),
    language: str = typer.Option("en", "--language", help="Language of --audio."),
    crf: int = typer.Option(18, "--crf", help="H.264 quality, 0 (lossless)..51."),
) -> None:
    """Make the face in a portrait say an audio file or a text."""
    from avatarlab.errors import OptionError
    from avatarlab.generate import SpeakOptions
    from avatarlab.generate import speak as speak_fn

    if (audio is None) == (text is None):
        raise OptionError('give exactly one of --audio SPEECH or --text "..."')
    options = SpeakOptions(
        engine=engine, fps=fps, head_motion=head_motion, blink_rate=blink_rate,
        expressiveness=expressiveness, seed=seed, crop_size=crop_size, teeth=teeth,
        language=language, checkpoint=checkpoint, device=device, batch_size=batch_size, crf=crf,
    )  # fmt: skip
    result = speak_fn(
        image, audio=audio, text=text, voice=voice, transcript=transcript, out=out, options=options
    )
    _print_generated(result)


@app.command()
def dub(
    video: Path = typer.Option(..., "--video", help="Talking video to re-lip-sync."),
    audio: Path = typer.Option(..., "--audio", help="New speech."),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    transcript: str | None = typer.Option(
        None, "--transcript", help="What --audio says (English): exact phone timing."
    ),
    engine: str = typer.Option("warp", "--engine", help="warp (default) or wav2lip."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Weights for wav2lip."),
    device: str = typer.Option("auto", "--device", help="Neural engines: cpu, cuda or auto."),
    batch_size: int = typer.Option(16, "--batch-size", help="Neural engines: frames per batch."),
    expressiveness: float = typer.Option(1.0, "--expressiveness", help="Jaw scale, 0..2."),
    crop_size: int = typer.Option(256, "--crop-size", help="Face processing resolution."),
    loop: str = typer.Option("pingpong", "--loop", help="Longer speech: pingpong or loop."),
    language: str = typer.Option("en", "--language", help="Language of --audio."),
    crf: int = typer.Option(18, "--crf", help="H.264 quality, 0 (lossless)..51."),
) -> None:
    """Re-lip-sync a talking video to new speech, keeping its head motion and background."""
    from avatarlab.generate import DubOptions
    from avatarlab.generate import dub as dub_fn

    options = DubOptions(
        engine=engine, expressiveness=expressiveness, crop_size=crop_size, loop=loop,
        language=language, checkpoint=checkpoint, device=device, batch_size=batch_size, crf=crf,
    )  # fmt: skip
    _print_generated(dub_fn(video, audio, transcript=transcript, out=out, options=options))


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "-o", "--out", help="Output folder."),
    text: str | None = typer.Option(None, "--text", help="Sentence to say instead of the default."),
) -> None:
    """The main job on built-in defaults: analyse the bundled portrait and make it speak."""
    from avatarlab.assets import DEFAULT_SENTENCE
    from avatarlab.demo import run_demo

    result = run_demo(out, text or DEFAULT_SENTENCE)
    console.print(f"portrait analysis: {result.annotated}, {result.faces_json}")
    console.print(f"talking video: {result.video}")


models_app = typer.Typer(
    help="Checkpoints avatarlab can use: list them, identify or check a file.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Show every registered checkpoint, its official source and whether it is cached."""
    from rich.table import Table

    from avatarlab import weights

    table = Table(title=f"checkpoints (cache: {weights.cache_dir()})")
    for column in ("name", "file", "size", "sha256", "source", "cached"):
        table.add_column(column, overflow="fold")
    for ck in weights.known_checkpoints():
        cached = weights.find_cached(ck.name)
        size = "?" if ck.size is None else f"{ck.size:,}"
        sha = "?" if ck.sha256 is None else ck.sha256[:12]
        table.add_row(ck.name, ck.filename, size, sha, ck.source, "yes" if cached else "no")
    Console(width=200).print(table)


@models_app.command("verify")
def models_verify(
    path: str = typer.Argument(..., help="Checkpoint file to identify or check."),
    name: str | None = typer.Option(None, "--name", help="Registered name it should be."),
    trusted: bool = typer.Option(
        False, "--trusted", help="Allow a file that pickles Python objects (runs its code)."
    ),
) -> None:
    """Identify which registered checkpoint PATH is (checksum, size or layout), or check it."""
    from avatarlab import weights

    report = weights.check_file(path, name, trusted=trusted)
    print(f"{report.path}: {report.size:,} bytes, sha256 {report.sha256}")
    if report.matches:
        print(f"matches: {', '.join(report.matches)} (by {report.method})")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("OK" if report.ok else "MISMATCH")
    if not report.ok:
        raise typer.Exit(1)


datasets_app = typer.Typer(
    help="The field's corpora: what they are, how to get them, how they lie on disk.",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list(
    kind: str | None = typer.Option(None, "--kind", help="talking-face, speech or avatar."),
) -> None:
    """Show every dataset card: year, language, setting, size and the reader to use."""
    from rich.table import Table

    from avatarlab.datasets.cards import list_cards

    table = Table(title="datasets (details: avatarlab datasets show NAME)")
    for column in ("name", "year", "kind", "language", "env", "subjects", "duration", "reader"):
        table.add_column(column, overflow="fold")
    for c in list_cards(kind):
        table.add_row(
            c.name,
            str(c.year),
            c.kind,
            c.language or "-",
            c.environment,
            c.subjects or "-",
            c.duration or "-",
            c.reader or "-",
        )
    Console(width=200).print(table)


@datasets_app.command("show")
def datasets_show(name: str = typer.Argument(..., help="Dataset name, e.g. VoxCeleb2.")) -> None:
    """Show one dataset card in full, including the on-disk layout its reader expects."""
    from dataclasses import asdict

    from rich.table import Table

    from avatarlab.datasets.cards import get_card

    card = get_card(name)
    table = Table(title=card.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in asdict(card).items():
        if key != "name":
            table.add_row(key, str(value) if value != "" else "-")
    Console(width=160).print(table)


def _prep_default(name: str) -> object:
    """Default of a ``PrepareOptions`` field (a light import: no numpy, no OpenCV)."""
    from avatarlab.datasets.options import PrepareOptions

    return getattr(PrepareOptions(), name)


@app.command("prepare")
def prepare_cmd(
    src: Path = typer.Argument(..., help="Corpus folder (or one video) to prepare."),
    out: Path = typer.Option(..., "-o", "--out", help="Output root; re-use it to resume."),
    dataset: str = typer.Option(
        "folder", "--dataset", help="Reader: folder, voxceleb2, lrs2, hdtf, ..."
    ),
    preset: str = typer.Option(
        _prep_default("preset"), "--preset", help="wav2lip, hdtf or syncnet."
    ),
    size: int = typer.Option(_prep_default("size"), "--size", help="Side of the face crops, px."),
    scale: float | None = typer.Option(
        None, "--scale", help="Crop side / face box (default: preset)."
    ),
    fps: float = typer.Option(_prep_default("fps"), "--fps", help="Output frame rate."),
    sample_rate: int = typer.Option(
        _prep_default("sample_rate"), "--sample-rate", help="Output audio rate, Hz."
    ),
    min_face: int = typer.Option(
        _prep_default("min_face"), "--min-face", help="Smallest face height, source px."
    ),
    max_yaw: float = typer.Option(
        _prep_default("max_yaw"), "--max-yaw", help="Largest |yaw|, degrees."
    ),
    max_pitch: float = typer.Option(
        _prep_default("max_pitch"), "--max-pitch", help="Largest |pitch|, degrees."
    ),
    min_sharpness: float = typer.Option(
        _prep_default("min_sharpness"), "--min-sharpness", help="Smallest median CPBD (0-1)."
    ),
    min_duration: float = typer.Option(
        _prep_default("min_duration"), "--min-duration", help="Shortest segment kept, s."
    ),
    shot_threshold: float = typer.Option(
        _prep_default("shot_threshold"),
        "--shot-threshold",
        help="Grey jump (0-255) that counts as a cut.",
    ),
    smooth: int = typer.Option(
        _prep_default("smooth"), "--smooth", help="Frames averaged to steady crop boxes."
    ),
    sharpness_every: int = typer.Option(
        _prep_default("sharpness_every"),
        "--sharpness-every",
        help="Measure CPBD every N face frames.",
    ),
    jpeg_quality: int = typer.Option(
        _prep_default("jpeg_quality"), "--jpeg-quality", help="JPEG quality (wav2lip preset)."
    ),
    val_fraction: float = typer.Option(
        _prep_default("val_fraction"), "--val-fraction", help="Share of speakers in val."
    ),
    test_fraction: float = typer.Option(
        _prep_default("test_fraction"), "--test-fraction", help="Share of speakers in test."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Redo clips that failed before."
    ),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes / Ray CPUs (default: cores)."
    ),
    address: str | None = typer.Option(None, "--address", help="Ray cluster to join, e.g. auto."),
) -> None:
    """Prepare SRC for training: 25 fps face crops, 16 kHz audio, landmarks, manifest, splits."""
    from avatarlab.datasets.options import PrepareOptions
    from avatarlab.datasets.pipeline import prepare

    options = PrepareOptions(
        preset=preset,
        size=size,
        scale=scale,
        fps=fps,
        sample_rate=sample_rate,
        min_face=min_face,
        max_yaw=max_yaw,
        max_pitch=max_pitch,
        min_sharpness=min_sharpness,
        min_duration=min_duration,
        shot_threshold=shot_threshold,
        smooth=smooth,
        sharpness_every=sharpness_every,
        jpeg_quality=jpeg_quality,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        retry_failed=retry_failed,
    )
    s = prepare(
        src, out, options, dataset=dataset, executor=executor, workers=workers, address=address
    )
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


train_app = typer.Typer(
    help="Train the Wav2Lip generator or its SyncNet lip-sync expert on prepared data.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


def _train_default(recipe: str, name: str) -> object:
    """Default of a training-options field (a light import: no torch)."""
    from avatarlab.train.options import SyncNetTrainOptions, Wav2LipTrainOptions

    cls = SyncNetTrainOptions if recipe == "syncnet" else Wav2LipTrainOptions
    return getattr(cls(), name)


def _finish_training(result: object) -> None:
    r = result  # TrainResult
    console.print(
        f"{r.recipe}: steps {r.start_step} -> {r.step} in {r.seconds:.0f} s; "  # type: ignore[attr-defined]
        f"checkpoint {r.checkpoint}; metrics {r.metrics_csv}",  # type: ignore[attr-defined]
        soft_wrap=True,
    )
    if r.interrupted:  # type: ignore[attr-defined]
        raise typer.Exit(130)


@train_app.command("syncnet")
def train_syncnet_cmd(
    data: Path = typer.Option(..., "--data", help="Output of `prepare --preset wav2lip`."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder (checkpoints, metrics.csv)."),
    steps: int = typer.Option(_train_default("syncnet", "steps"), "--steps", help="Total steps."),
    batch_size: int = typer.Option(_train_default("syncnet", "batch_size"), "--batch-size"),
    lr: float = typer.Option(_train_default("syncnet", "lr"), "--lr", help="Adam learning rate."),
    checkpoint_every: int = typer.Option(
        _train_default("syncnet", "checkpoint_every"), "--checkpoint-every", help="0: at the end."
    ),
    eval_every: int = typer.Option(
        _train_default("syncnet", "eval_every"), "--eval-every", help="Validate every N steps."
    ),
    eval_batches: int = typer.Option(_train_default("syncnet", "eval_batches"), "--eval-batches"),
    keep_checkpoints: int = typer.Option(
        _train_default("syncnet", "keep_checkpoints"), "--keep-checkpoints", help="0: keep all."
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, "--seed", help="Seeds initial weights and samples."),
    num_workers: int = typer.Option(
        _train_default("syncnet", "num_workers"), "--num-workers", help="Data loading processes."
    ),
    val_split: str = typer.Option("val", "--val-split", help="Split to validate on."),
    resume: str | None = typer.Option(
        None, "--resume", help="Run folder or checkpoint to continue from."
    ),
    overfit: int = typer.Option(0, "--overfit", help="Cycle N fixed samples (sanity check)."),
) -> None:
    """Train the SyncNet_color lip-sync expert (Wav2Lip's color_syncnet_train.py)."""
    from avatarlab.train.options import SyncNetTrainOptions
    from avatarlab.train.syncnet import train_syncnet

    options = SyncNetTrainOptions(
        steps=steps, batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
        eval_every=eval_every, eval_batches=eval_batches, keep_checkpoints=keep_checkpoints,
        device=device, seed=seed, num_workers=num_workers, val_split=val_split, resume=resume,
        overfit=overfit,
    )  # fmt: skip
    _finish_training(train_syncnet(data, out, options, echo=console.print))


@train_app.command("wav2lip")
def train_wav2lip_cmd(
    data: Path = typer.Option(..., "--data", help="Output of `prepare --preset wav2lip`."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder (checkpoints, metrics.csv)."),
    expert: str | None = typer.Option(
        None, "--expert", help="lipsync_expert.pth or a `train syncnet` run folder."
    ),
    gan: bool = typer.Option(False, "--gan", help="Also train the quality discriminator."),
    steps: int = typer.Option(_train_default("wav2lip", "steps"), "--steps", help="Total steps."),
    batch_size: int = typer.Option(_train_default("wav2lip", "batch_size"), "--batch-size"),
    lr: float = typer.Option(_train_default("wav2lip", "lr"), "--lr", help="Adam learning rate."),
    syncnet_wt: float | None = typer.Option(
        None, "--syncnet-wt", help="Expert loss weight once on (default 0.01, 0.03 with --gan)."
    ),
    sync_threshold: float = typer.Option(
        _train_default("wav2lip", "sync_threshold"),
        "--sync-threshold",
        help="Val sync loss that switches the expert loss on.",
    ),
    disc_wt: float = typer.Option(_train_default("wav2lip", "disc_wt"), "--disc-wt"),
    disc_lr: float = typer.Option(_train_default("wav2lip", "disc_lr"), "--disc-lr"),
    checkpoint_every: int = typer.Option(
        _train_default("wav2lip", "checkpoint_every"), "--checkpoint-every", help="0: at the end."
    ),
    eval_every: int = typer.Option(
        _train_default("wav2lip", "eval_every"), "--eval-every", help="Validate every N steps."
    ),
    eval_batches: int = typer.Option(_train_default("wav2lip", "eval_batches"), "--eval-batches"),
    syncnet_weights: str | None = typer.Option(
        None, "--syncnet-weights", help="syncnet_v2.model: LSE-D/LSE-C in validation."
    ),
    lse_clips: int = typer.Option(_train_default("wav2lip", "lse_clips"), "--lse-clips"),
    lse_frames: int = typer.Option(_train_default("wav2lip", "lse_frames"), "--lse-frames"),
    keep_checkpoints: int = typer.Option(
        _train_default("wav2lip", "keep_checkpoints"), "--keep-checkpoints", help="0: keep all."
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, "--seed", help="Seeds initial weights and samples."),
    num_workers: int = typer.Option(
        _train_default("wav2lip", "num_workers"), "--num-workers", help="Data loading processes."
    ),
    val_split: str = typer.Option("val", "--val-split", help="Split to validate on."),
    resume: str | None = typer.Option(
        None, "--resume", help="Run folder or checkpoint to continue from."
    ),
    overfit: int = typer.Option(0, "--overfit", help="Cycle N fixed samples (sanity check)."),
) -> None:
    """Train the Wav2Lip generator against a frozen lip-sync expert (wav2lip_train.py)."""
    from avatarlab.train.options import Wav2LipTrainOptions
    from avatarlab.train.wav2lip import train_wav2lip

    options = Wav2LipTrainOptions(
        steps=steps, batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
        eval_every=eval_every, eval_batches=eval_batches, keep_checkpoints=keep_checkpoints,
        device=device, seed=seed, num_workers=num_workers, val_split=val_split, resume=resume,
        overfit=overfit, expert=expert, syncnet_wt=syncnet_wt, sync_threshold=sync_threshold,
        gan=gan, disc_wt=disc_wt, disc_lr=disc_lr, syncnet_weights=syncnet_weights,
        lse_clips=lse_clips, lse_frames=lse_frames,
    )  # fmt: skip
    _finish_training(train_wav2lip(data, out, options, echo=console.print))


@app.command("serve")
def serve_cmd(
    avatar: list[Path] = typer.Option(
        [], "--avatar", help="Portrait or video offered on the page (repeatable; first = default)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8010, "--port", help="TCP port."),
    token: str | None = typer.Option(
        None, "--token", envvar="AVATARLAB_SERVE_TOKEN", help="Require this bearer token."
    ),
    max_sessions: int = typer.Option(4, "--max-sessions", help="Sessions alive at once."),
    session_timeout_s: float = typer.Option(
        600.0, "--session-timeout-s", help="Close a session silent for this long (s)."
    ),
    max_text_chars: int = typer.Option(2000, "--max-text-chars", help="Longest text per say."),
    max_audio_bytes: int = typer.Option(
        10_485_760, "--max-audio-bytes", help="Largest audio upload."
    ),
    max_audio_s: float = typer.Option(120.0, "--max-audio-s", help="Longest uploaded speech (s)."),
    max_avatar_bytes: int = typer.Option(
        20_971_520, "--max-avatar-bytes", help="Largest avatar upload."
    ),
    max_avatar_s: float = typer.Option(60.0, "--max-avatar-s", help="Longest avatar video (s)."),
    max_avatars: int = typer.Option(8, "--max-avatars", help="Uploaded avatars kept."),
    say_burst: int = typer.Option(5, "--say-burst", help="Say calls allowed back to back."),
    say_per_s: float = typer.Option(2.0, "--say-per-s", help="Sustained say calls per second."),
    max_side: int = typer.Option(512, "--max-side", help="Longest side of the video (pixels)."),
    voice: str = typer.Option("en-us", "--voice", help="espeak-ng voice for text."),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Extra host name the Host header may carry (repeatable)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the live talking avatar: web page, HTTP API and WebRTC media (docs/serve.md)."""
    from avatarlab.serve import ServeOptions, serve

    options = ServeOptions(
        avatars=tuple(avatar),
        host=host,
        port=port,
        token=token,
        max_sessions=max_sessions,
        session_timeout_s=session_timeout_s,
        max_text_chars=max_text_chars,
        max_audio_bytes=max_audio_bytes,
        max_audio_s=max_audio_s,
        max_avatar_bytes=max_avatar_bytes,
        max_avatar_s=max_avatar_s,
        max_avatars=max_avatars,
        say_burst=say_burst,
        say_per_s=say_per_s,
        max_side=max_side,
        voice=voice,
        extra_hosts=tuple(allow_host),
    )
    serve(options, log_level=log_level)


@app.command("eval")
def eval_cmd(
    pred: Path = typer.Option(..., "--pred", help="Generated video, or a folder of them."),
    ref: Path | None = typer.Option(
        None, "--ref", help="Real video, or a folder matched by file name."
    ),
    audio: Path | None = typer.Option(
        None, "--audio", help="Driving audio (default: each video's own track)."
    ),
    metrics: str | None = typer.Option(
        None, "--metrics", help="Comma-separated metrics (default: all that can run)."
    ),
    weights: list[str] = typer.Option(
        [], "--weights", help="Checkpoint name=path (repeatable), e.g. syncnet_v2=FILE."
    ),
    option: list[str] = typer.Option(
        [], "--option", help="Metric option metric.key=value, e.g. psnr.y_channel=true."
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", help="Worker processes (default: cores; 1: in-process)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device for neural metrics."),
    max_plots: int = typer.Option(4, "--max-plots", help="Clips drawn in the report."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for tables, JSON, report.html."),
) -> None:
    """Score generated videos against real ones: tables, JSON and an offline HTML report."""
    from avatarlab.evaluation import evaluate, parse_metric_options, parse_weights
    from avatarlab.metrics.report import summary_table

    res = evaluate(
        pred,
        ref,
        audio,
        metrics=metrics,
        out_dir=out,
        jobs=jobs,
        weights=parse_weights(weights),
        device=device,
        metric_options=parse_metric_options(option),
        max_plots=max_plots,
    )
    Console(width=160).print(summary_table(res))
    for kind, files in (
        ("prediction", res.plan.unmatched_pred),
        ("reference", res.plan.unmatched_ref),
    ):
        for path in files:
            console.print(f"[yellow]unmatched {kind} (no file of the same name):[/] {path}")
    for clip in res.failed:
        console.print(f"[red]failed:[/] {clip.name}: {clip.error}", highlight=False)
    for name, metric, message in res.metric_errors():
        console.print(f"[red]{metric} failed on {name}:[/] {message}", highlight=False)
    console.print(
        f"{len(res.clips) - len(res.failed)} clips -> {res.files['report.html']}", soft_wrap=True
    )
    if not res.metrics or (res.clips and len(res.failed) == len(res.clips)):
        raise typer.Exit(1)


def main() -> None:
    """Entry point: run the Typer app, turning avatarlab errors into one clear line."""
    silence_native_stderr()
    try:
        app()
    except AvatarLabError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit as exit_:  # Typer turns Ctrl-C into exit code 130 itself
        if exit_.code == 130:
            console.print("[yellow]interrupted[/]")
        raise
