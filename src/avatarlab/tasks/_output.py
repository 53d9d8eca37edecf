"""The output-file check every task runs before any work."""

from __future__ import annotations

import os
from pathlib import Path

from avatarlab._util import make_output_folder
from avatarlab.errors import OptionError


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Raise ``OptionError`` at once when ``path`` cannot be written as a file.

    Catches a folder given as the file, a folder below an existing file, and an
    unwritable place, so a task fails before its analysis instead of after it.
    """
    target = Path(path)
    if target.is_dir():
        raise OptionError(f"{target} is a folder: give a file name inside it")
    try:
        make_output_folder(target.parent, create=False)
    except OptionError:
        raise OptionError(
            f"cannot write {target}: its folder cannot be created or is not writable"
        ) from None
    return target
