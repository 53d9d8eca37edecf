"""The ``avatarlab`` command: flags generated from the tasks' options dataclasses.

Every command parses its arguments, calls :mod:`avatarlab.tasks`, and prints a
result; flags come from the options fields (:mod:`avatarlab.cli._options`), so
defaults and checks live only in the dataclasses. User mistakes
(``AvatarLabError``) become one red line and the error's exit code; Ctrl-C and
SIGTERM print "interrupted" and exit 130.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from avatarlab._util import silence_native_stderr
from avatarlab.cli._app import app, console
from avatarlab.errors import AvatarLabError

# Commands appear in --help in the order their modules register them.
# isort: off
from avatarlab.cli import faces  # noqa: F401
from avatarlab.cli import speak  # noqa: F401
from avatarlab.cli import reenact  # noqa: F401
from avatarlab.cli import enhance  # noqa: F401
from avatarlab.cli import catalog  # noqa: F401
from avatarlab.cli import data  # noqa: F401
from avatarlab.cli import serve  # noqa: F401
from avatarlab.cli import body  # noqa: F401

# isort: on


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: run the Typer app, turning avatarlab errors into one clear line."""
    silence_native_stderr()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except AvatarLabError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit as exit_:  # Typer turns Ctrl-C into exit code 130 itself
        if exit_.code == 130:
            console.print("[yellow]interrupted[/]")
        raise


__all__ = ["app", "main"]
