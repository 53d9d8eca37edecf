"""``serve`` and ``eval``: the live server, and scoring generated videos."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from avatarlab.cli._app import app, console
from avatarlab.cli._options import Flag, build, engine_values, flags_of, pick, with_options
from avatarlab.cli.speak import speech_engine_flags, speech_engines
from avatarlab.engines import list_engines
from avatarlab.serve.options import ServeOptions
from avatarlab.tasks.evaluate import EvalOptions
from avatarlab.tasks.postprocess import BackgroundOptions


def _serve_flags() -> list[Flag]:
    flags = flags_of(
        ServeOptions,
        skip=("engine_options",),
        names={"avatars": ["--avatar"], "extra_hosts": ["--allow-host"]},
        choices={"engine": list_engines("speech")},
    )
    background = {f.name for f in fields(BackgroundOptions)}  # listed last, as in speak
    return sorted(flags, key=lambda flag: flag.field in background)


@app.command("serve")
@with_options(("Server", _serve_flags), ("Engine", speech_engine_flags), engines=speech_engines)
def serve_cmd(
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    *,
    values: dict[str, Any],
) -> None:
    """Serve the live talking avatar: web page, HTTP API and WebRTC media (docs/serve.md)."""
    from avatarlab.serve import serve

    own = pick(values, ServeOptions)
    options = ServeOptions(**own, engine_options=engine_values(values, ServeOptions))
    serve(options, log_level=log_level)


@app.command("eval")
@with_options((None, lambda: flags_of(EvalOptions, names={"jobs": ["-j"]})))
def eval_cmd(
    pred: Path = typer.Option(..., "--pred", help="Generated video, or a folder of them."),
    ref: Path | None = typer.Option(
        None, "--ref", help="Real video, or a folder matched by file name."
    ),
    audio: Path | None = typer.Option(
        None, "--audio", help="Driving audio (default: each video's own track)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Folder for tables, JSON, report.html."),
    *,
    values: dict[str, Any],
) -> None:
    """Score generated videos against real ones: tables, JSON and an offline HTML report."""
    from avatarlab.metrics.report import summary_table
    from avatarlab.tasks.evaluate import evaluate, nothing_scored

    res = evaluate(pred, ref, audio, out_dir=out, options=build(EvalOptions, values))
    Console(width=160).print(summary_table(res))
    for kind, files in (
        ("prediction", res.plan.unmatched_pred),
        ("reference", res.plan.unmatched_ref),
    ):
        for path in files:
            console.print(f"[yellow]unmatched {kind} (no file of the same name):[/] {path}")
    for clip in res.clips:
        for line in clip.notes:  # frames past the other video's end, resampling, ...
            console.print(f"[yellow]note:[/] {clip.name}: {line}", highlight=False, soft_wrap=True)
    for clip in res.failed:
        console.print(f"[red]failed:[/] {clip.name}: {clip.error}", highlight=False)
    for name, metric, message in res.metric_errors():
        console.print(f"[red]{metric} failed on {name}:[/] {message}", highlight=False)
    console.print(
        f"{len(res.clips) - len(res.failed)} clips -> {res.files['report.html']}", soft_wrap=True
    )
    why = nothing_scored(res)
    if why is not None:
        console.print(f"[red]{why}[/]", highlight=False, soft_wrap=True)
    if why is not None or not res.metrics or (res.clips and len(res.failed) == len(res.clips)):
        raise typer.Exit(1)
