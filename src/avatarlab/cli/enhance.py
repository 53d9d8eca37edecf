"""``enhance``: restore the faces of images and videos with GFPGAN or CodeFormer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from avatarlab.cli._app import AS_JSON, app, console, note, print_json
from avatarlab.cli._options import build, flags_of, with_options
from avatarlab.tasks.enhance import EnhanceOptions


@app.command()
@with_options((None, lambda: flags_of(EnhanceOptions)))
def enhance(
    inputs: list[Path] = typer.Argument(..., help="Images or videos (or folders of them)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file (one input) or folder."),
    as_json: bool = AS_JSON,
    *,
    values: dict[str, Any],
) -> None:
    """Restore faces (only the aligned face crop; everything outside the face is unchanged)."""
    from avatarlab.tasks.enhance import enhance as run

    result = run(inputs, out, build(EnhanceOptions, values))
    if as_json:
        print_json(result.to_dict())
        return
    for path, faces in zip(result.outputs, result.faces, strict=True):
        console.print(f"{path} ({faces} faces restored)", highlight=False)
    for path, frames in zip(result.outputs, result.frames_without_face, strict=True):
        if frames:
            note(f"{path}: no face in {len(frames)} frames (left as they were)")
