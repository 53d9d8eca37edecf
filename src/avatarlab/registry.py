"""One registry helper for every pluggable kind: engines, metrics, checkpoints, executors, readers.

Each layer owns its registry and registers its own entries, so no lower module
names an upper one (not even as a string)::

    ENGINES: Registry[type[Engine]] = Registry("engine", entry_points="avatarlab.engines")

    @ENGINES.register("warp")
    class WarpEngine: ...

    ENGINES.get("warp")          # the class; unknown names raise OptionError
    ENGINES.names()              # sorted names, entry points included

Entries may also be registered lazily as ``"module:attribute"`` strings
(:meth:`Registry.lazy`), imported on first use, so listing names stays cheap.
Other packages add entries through the ``entry_points`` group of their
``pyproject.toml``::

    [project.entry-points."avatarlab.engines"]
    myengine = "mypkg.engine:MyEngine"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar, overload

from avatarlab.errors import OptionError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, registered by decorator, call, lazy path or entry point.

    Args:
        kind: what an entry is, for messages ("engine", "metric", ...).
        entry_points: ``importlib.metadata`` group whose entries are added on first lookup.
        error: exception class raised for unknown names (an ``AvatarLabError``).
    """

    def __init__(
        self,
        kind: str,
        *,
        entry_points: str | None = None,
        error: type[Exception] = OptionError,
    ) -> None:
        self.kind = kind
        self.group = entry_points
        self.error = error
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._loaded_entry_points = False

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Add ``entry`` under ``name``; without ``entry``, return a decorator.

        Registering the same object twice is a no-op; another object under a taken
        name is a programming error (``ValueError``).
        """

        def add(obj: T) -> T:
            known = self._entries.get(name)
            if known is not None and known is not obj and known != obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            self._lazy.pop(name, None)
            return obj

        return add if entry is None else add(entry)

    def lazy(self, name: str, target: str) -> None:
        """Register ``"module:attribute"`` under ``name``, imported when first looked up."""
        if name not in self._entries:
            self._lazy[name] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register toy entries clean up with this)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points or self.group is None:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.group):
            if ep.name not in self._entries:
                self._lazy.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        """Every registered name, sorted (lazy and entry-point entries included)."""
        self._load_entry_points()
        return sorted({*self._entries, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> T:
        """The entry called ``name``, importing it if it was registered lazily.

        Raises:
            ``self.error``: unknown name, with the known ones listed; or an entry whose
            module fails to import (a broken plug-in), naming it and the error.
        """
        if name in self._entries:
            return self._entries[name]
        self._load_entry_points()
        target = self._lazy.get(name)
        if target is None:
            known = ", ".join(self.names()) or "none"
            raise self.error(f"unknown {self.kind} {name!r}: use one of {known}")
        module_name, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as err:  # a broken plug-in: one line naming it, not a traceback
            raise self.error(
                f"{self.kind} {name!r} cannot be loaded from {target!r}: "
                f"{type(err).__name__}: {err}"
            ) from err
        # Importing the module may have registered the entry itself (a decorator).
        if name in self._entries:
            return self._entries[name]
        return self.register(name, obj)  # type: ignore[arg-type]

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` for every name, importing lazy entries."""
        return [(name, self.get(name)) for name in self.names()]
