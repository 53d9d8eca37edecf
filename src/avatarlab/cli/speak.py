"""``speak``, ``dub`` and ``demo``: task flags plus the union of every registered engine's options.

A flag that only some engines have says which in its help; setting one the chosen
engine lacks is refused by the tasks layer with one line listing that engine's
options (``--engine wav2lip --head-motion 0.3``). The post-processing flags
(``--enhance``, ``--background``, and the restorer's settings as ``--enhance-*`` from
``EnhanceOptions``) are shared with ``reenact``.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import AS_JSON, app, console, note, print_json
from avatarlab.cli._options import (
    Flag,
    build,
    engine_flags,
    engine_values,
    flags_of,
    pick,
    with_options,
)
from avatarlab.engines import list_engines
from avatarlab.tasks.enhance import EnhanceOptions
from avatarlab.tasks.postprocess import BackgroundOptions, PostOptions
from avatarlab.tasks.speak import DubOptions, GenerateResult, SpeakOptions

ENHANCER_PREFIX = "enhance_"
"""``EnhanceOptions.fidelity`` is ``--enhance-fidelity`` here (``enhance_fidelity`` in TOML)."""


def speech_engines() -> list[str]:
    """The engines that speak (speak, dub, serve)."""
    return list_engines("speech")


def speech_engine_flags() -> list[Flag]:
    """Flags of every speech engine's options."""
    return engine_flags("speech")


def task_flags(cls: type) -> list[Flag]:
    """The task's own flags; ``--engine`` offers the registered engines."""
    return flags_of(cls, choices={"engine": list_engines("speech")})


def post_flags() -> list[Flag]:
    """``PostOptions``' flags, its ``enhancer`` as ``--enhance-*`` flags of ``EnhanceOptions``
    (without ``model``, which ``--enhance`` names, and ``upscale``: the size is kept)."""
    background = [f.name for f in fields(BackgroundOptions)]
    enhance = flags_of(PostOptions, skip=("enhancer", *background))
    enhancer = flags_of(EnhanceOptions, skip=("model", "upscale"), prefix=ENHANCER_PREFIX)
    return enhance + enhancer + flags_of(BackgroundOptions)  # in the order the stages run


def post_values(values: dict[str, Any]) -> tuple[PostOptions, dict[str, Any]]:
    """The ``PostOptions`` of the given values, and the values left for the task and engine."""
    enhancer = pick(values, EnhanceOptions, ENHANCER_PREFIX)
    own = pick(values, PostOptions)
    taken = {*own, *(ENHANCER_PREFIX + k for k in enhancer)}
    post = PostOptions(**own, enhancer=EnhanceOptions(**enhancer))
    return post, {k: v for k, v in values.items() if k not in taken}


def _report(result: GenerateResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{result.frames} frames at {result.fps:g} fps ({result.duration:.2f} s, "
        f"speech: {result.speech_source}) -> {result.path}",
        highlight=False,
    )
    for line in result.notes:
        note(line)


@app.command()
@with_options(
    ("Task", lambda: task_flags(SpeakOptions)),
    ("Post-processing", post_flags),
    ("Engine", speech_engine_flags),
    engines=speech_engines,
)
def speak(
    image: Path = typer.Option(..., "--image", help="Portrait (photo, painting, cartoon)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    audio: Path | None = typer.Option(None, "--audio", help="Speech to lip-sync to."),
    text: str | None = typer.Option(None, "--text", help="Text to say (espeak-ng voice)."),
    transcript: str | None = typer.Option(
        None, "--transcript", help="What --audio says (English): exact phone timing."
    ),
    as_json: bool = AS_JSON,
    *,
    values: dict[str, Any],
) -> None:
    """Make the face in a portrait say an audio file or a text."""
    from avatarlab.errors import OptionError
    from avatarlab.tasks.speak import speak as run

    if (audio is None) == (text is None):
        raise OptionError('give exactly one of --audio SPEECH or --text "..."')
    post, values = post_values(values)
    result = run(
        image,
        audio=audio,
        text=text,
        transcript=transcript,
        out=out,
        options=build(SpeakOptions, values),
        engine_options=engine_values(values, SpeakOptions),
        post=post,
    )
    _report(result, as_json)


@app.command()
@with_options(
    ("Task", lambda: task_flags(DubOptions)),
    ("Post-processing", post_flags),
    ("Engine", speech_engine_flags),
    engines=speech_engines,
)
def dub(
    video: Path = typer.Option(..., "--video", help="Talking video to re-lip-sync."),
    audio: Path = typer.Option(..., "--audio", help="New speech."),
    out: Path = typer.Option(..., "-o", "--out", help="Output MP4."),
    transcript: str | None = typer.Option(
        None, "--transcript", help="What --audio says (English): exact phone timing."
    ),
    as_json: bool = AS_JSON,
    *,
    values: dict[str, Any],
) -> None:
    """Re-lip-sync a talking video to new speech, keeping its head motion and background."""
    from avatarlab.tasks.speak import dub as run

    post, values = post_values(values)
    result = run(
        video,
        audio,
        transcript=transcript,
        out=out,
        options=build(DubOptions, values),
        engine_options=engine_values(values, DubOptions),
        post=post,
    )
    _report(result, as_json)


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "-o", "--out", help="Output folder."),
    text: str | None = typer.Option(None, "--text", help="Sentence to say instead of the default."),
) -> None:
    """The main job on built-in defaults: analyse the bundled portrait and make it speak."""
    from avatarlab.assets import DEFAULT_SENTENCE
    from avatarlab.tasks.demo import run_demo

    result = run_demo(out, text or DEFAULT_SENTENCE)
    console.print(f"portrait analysis: {result.annotated}, {result.faces_json}")
    console.print(f"talking video: {result.video}")
