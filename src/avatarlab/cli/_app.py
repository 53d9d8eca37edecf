"""The root Typer app, its global flags (``--version``, ``-v``, ``-q``) and output helpers."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import typer
from rich.console import Console

from avatarlab._version import __version__

app = typer.Typer(
    name="avatarlab",
    help="Talking avatars: analyse faces, make portraits speak, stream, prepare data, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
console = Console(stderr=True)

VERBOSITY = {"level": 0}
"""-1 with ``-q`` (no progress bars, no notes), 1 with ``-v`` (debug log lines), else 0."""


def _version(value: bool) -> None:
    if value:
        print(f"avatarlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also show debug notes."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Hide progress bars and notes."),
) -> None:
    """Talking avatars: analyse faces, make portraits speak, stream, prepare data, evaluate."""
    VERBOSITY["level"] = -1 if quiet else (1 if verbose else 0)
    if quiet:  # the environment reaches worker processes too; restored when the command ends
        before = os.environ.get("AVATARLAB_PROGRESS")
        os.environ["AVATARLAB_PROGRESS"] = "0"

        def restore() -> None:
            VERBOSITY["level"] = 0
            if before is None:
                os.environ.pop("AVATARLAB_PROGRESS", None)
            else:
                os.environ["AVATARLAB_PROGRESS"] = before

        ctx.call_on_close(restore)
    if verbose:
        from rich.logging import RichHandler

        logger = logging.getLogger("avatarlab")
        logger.setLevel(logging.DEBUG)
        if not any(isinstance(h, RichHandler) for h in logger.handlers):
            logger.addHandler(RichHandler(console=console, show_path=False))


def note(message: str) -> None:
    """A secondary line (what was chosen and why), hidden by ``-q``."""
    if VERBOSITY["level"] >= 0:
        console.print(f"  [dim]{message}[/]", highlight=False)


#: The ``--json`` switch of commands whose result can be printed as JSON on stdout.
AS_JSON = typer.Option(False, "--json", help="Print the result as JSON on stdout.")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (results go to stdout, messages to stderr)."""
    print(json.dumps(data, indent=2, default=str))
