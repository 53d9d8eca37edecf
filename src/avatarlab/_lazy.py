"""Lazy package exports: names imported from their module on first access (PEP 562).

Packages keep their import light (the CLI builds its flags without torch or
MediaPipe) and still export the heavy classes::

    __getattr__ = lazy_exports(__name__, {"WarpEngine": ".engine", "Driver": "avatarlab.engines.base"})

A module path starting with ``.`` is relative to the package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``names[name]`` on first use.

    The value is cached in the package's namespace, so later accesses are plain lookups.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
