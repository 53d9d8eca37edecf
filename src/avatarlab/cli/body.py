"""``pose`` and ``pose align``: body keypoints in OpenPose/DWPose layouts, and pose alignment.

``avatarlab pose INPUT... -o OUT`` runs the extraction (the group's default
command, spelt ``pose extract`` too); ``avatarlab pose align --reference R
--driving D -o OUT`` rescales a driving sequence to a reference's proportions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from avatarlab.cli._app import AS_JSON, app, console, note, print_json
from avatarlab.cli._options import build, flags_of, with_options
from avatarlab.tasks.pose import PoseAlignOptions, PoseOptions

_DEFAULT = "extract"


class _DefaultGroup(TyperGroup):
    """A group whose first argument, when it is not a subcommand, goes to ``extract``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)


pose_app = typer.Typer(
    cls=_DefaultGroup,
    help="Body, hand and face keypoints (OpenPose BODY_25/COCO-18, DWPose), skeleton renders, "
    "person masks; `pose align` fits a driving dance to a reference photo (docs/pose.md).",
    no_args_is_help=True,
)
app.add_typer(pose_app, name="pose")


@pose_app.command(_DEFAULT)
@with_options((None, lambda: flags_of(PoseOptions)))
def pose_extract(
    inputs: list[Path] = typer.Argument(..., help="Images, videos or folders of them."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (JSON, renders, masks)."),
    as_json: bool = AS_JSON,
    *,
    values: dict[str, Any],
) -> None:
    """Find body keypoints (and hands, face) in INPUTS; write OpenPose/DWPose files and renders."""
    from avatarlab.tasks.pose import pose

    result = pose(inputs, out, build(PoseOptions, values))
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(f"{len(result.outputs)} files -> {result.out}", highlight=False)
        for line in result.describe():
            note(line)
    if result.failed:  # the others were written; the exit status says not all were
        raise typer.Exit(1)


@pose_app.command("align")
@with_options((None, lambda: flags_of(PoseAlignOptions)))
def pose_align_cmd(
    reference: Path = typer.Option(
        ..., "--reference", help="Photo whose body proportions to keep."
    ),
    driving: Path = typer.Option(..., "--driving", help="Video (or image) whose motion to keep."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    *,
    values: dict[str, Any],
) -> None:
    """Rescale a driving pose sequence to a reference image's body proportions (MusePose)."""
    from avatarlab.tasks.pose import pose_align

    result = pose_align(reference, driving, out, build(PoseAlignOptions, values))
    console.print(f"{result.frames} aligned frames -> {result.out}", highlight=False)
    for line in result.describe():
        note(line)
