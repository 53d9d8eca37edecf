"""The ``avatarlab`` command: thin typed wrappers over the public Python API.

Every command parses its arguments, calls the library, and prints a result.
User mistakes (``AvatarLabError``) become one red line and a non-zero exit.
"""

from __future__ import annotations

import sys

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
