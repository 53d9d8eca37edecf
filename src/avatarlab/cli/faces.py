"""``info``, ``faces`` and ``crop``: the face tasks on files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import AS_JSON, app, console, print_json
from avatarlab.cli._options import build, flags_of, with_options
from avatarlab.tasks.faces import CropOptions


@app.command()
def info(
    media: Path = typer.Argument(..., help="Video, audio or image file."),
    as_json: bool = AS_JSON,
) -> None:
    """Show the streams, duration, frame rate and number of faces of MEDIA."""
    from rich.console import Console
    from rich.table import Table

    from avatarlab.tasks.faces import summarize_media

    summary = summarize_media(media)
    if as_json:
        print_json(summary.to_dict())
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
    from avatarlab.tasks.faces import analyze_faces

    result = analyze_faces(media, out, annotate=annotate)
    console.print(
        f"{result.frames_with_face}/{result.n_frames} frames with a face -> {out}"
        + (f", preview {annotate}" if annotate else "")
    )
    if result.missing:
        console.print(f"[yellow]no face in frames {result.missing}[/]")


@app.command()
@with_options((None, lambda: flags_of(CropOptions, names={"image_format": ["--format"]})))
def crop(
    inputs: list[Path] = typer.Argument(..., help="Images, videos or folders of them."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for the crops and report.json."),
    *,
    values: dict[str, Any],
) -> None:
    """Batch face crops from images or video frames (the autocrop job)."""
    from avatarlab.tasks.faces import crop_faces

    report = crop_faces(inputs, out, build(CropOptions, values))
    console.print(f"{len(report.written)} crops -> {out}")
    for path, frames in report.no_face.items():
        console.print(f"[yellow]no face:[/] {path} ({frames})", highlight=False)
    for path, err in report.failed.items():
        console.print(f"[red]failed:[/] {path}: {err}", highlight=False)
    if report.failed or not report.written:
        if not report.written:
            console.print("[red]no crop was written[/]")
        raise typer.Exit(1)
