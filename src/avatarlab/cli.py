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


def main() -> None:
    """Entry point: run the Typer app, turning avatarlab errors into one clear line."""
    try:
        app()
    except AvatarLabError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
