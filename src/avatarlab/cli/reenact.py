"""``reenact``: task flags plus the union of every motion engine's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import app, console, note, print_json
from avatarlab.cli._options import Flag, build, flags_of, pick, union, with_options
from avatarlab.engines import engine_options, list_engines
from avatarlab.engines.reenact.options import ReenactOptions


def motion_engines() -> list[str]:
    """The engines that follow a driving face."""
    return list_engines("motion")


def _task_flags() -> list[Flag]:
    return flags_of(
        ReenactOptions,
        choices={"engine": motion_engines()},
        names={"relative": ["--relative/--absolute"]},
    )


def _engine_flags() -> list[Flag]:
    return union(*(flags_of(engine_options(n), owner=n) for n in motion_engines()))


@app.command()
@with_options(("Task", _task_flags), ("Engine", _engine_flags), engines=motion_engines)
def reenact(
    source: Path = typer.Option(..., "--source", help="Portrait, or a video whose motion is kept."),
    driving: Path = typer.Option(
        ..., "--driving", help="Driving video (its face's motion), or an image (one expression)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    *,
    values: dict[str, Any],
) -> None:
    """Make a portrait or a video follow a driving face (motion relative to its first frame)."""
    from avatarlab.tasks.reenact import reenact as run

    own = pick(values, ReenactOptions)
    result = run(
        source,
        driving,
        out=out,
        options=build(ReenactOptions, values),
        engine_options={k: v for k, v in values.items() if k not in own},
    )
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.frames} frames at {result.fps:g} fps ({result.duration:.2f} s, "
        f"audio: {result.audio}) -> {result.path}",
        highlight=False,
    )
    for line in result.notes:
        note(line)
