"""``reenact``: task flags plus the union of every motion engine's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import AS_JSON, app, console, note, print_json
from avatarlab.cli._options import Flag, build, engine_flags, engine_values, flags_of, with_options
from avatarlab.cli.speak import post_flags, post_values
from avatarlab.engines import list_engines
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


@app.command()
@with_options(
    ("Task", _task_flags),
    ("Post-processing", post_flags),
    ("Engine", lambda: engine_flags("motion")),
    engines=motion_engines,
)
def reenact(
    source: Path = typer.Option(..., "--source", help="Portrait, or a video whose motion is kept."),
    driving: Path = typer.Option(
        ..., "--driving", help="Driving video (its face's motion), or an image (one expression)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    as_json: bool = AS_JSON,
    *,
    values: dict[str, Any],
) -> None:
    """Make a portrait or a video follow a driving face (motion relative to its first frame)."""
    from avatarlab.tasks.reenact import reenact as run

    post, values = post_values(values)
    result = run(
        source,
        driving,
        out=out,
        options=build(ReenactOptions, values),
        engine_options=engine_values(values, ReenactOptions),
        post=post,
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
