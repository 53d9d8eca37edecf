"""Command-line flags generated from options dataclasses: each flag has one home, its field.

A field ``crop_size: int = 256`` with the doc line ``crop_size: face processing
resolution`` in its class's ``Attributes:`` section becomes ``--crop-size INTEGER``
with that help and "default: 256"; ``Literal`` fields list their choices (and
complete them in the shell), ``bool`` fields become ``--flag/--no-flag``, fixed-size
tuples take that many values and ``tuple[X, ...]`` fields repeat. Every generated
flag defaults to "not given", so only what the user typed (or set in ``--config``)
reaches the dataclass, whose own defaults and ``__post_init__`` checks apply: the
CLI holds no defaults and no validation of its own.

Why a small Typer helper rather than tyro or cyclopts: the CLI already depends on
Typer and Rich (help panels, completion), and ``speak``/``dub``/``serve`` need the
union of every registered engine's options, where a flag the chosen engine lacks is
an error naming that engine's options. Neither library offers that union check
without wrapping its parser; about 200 lines here keep one parser and one style.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer

from avatarlab.errors import OptionError

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


@dataclass(frozen=True)
class Flag:
    """One generated option: the field it sets, its Typer type, help and flag names.

    ``owners`` lists the engines that have the field (empty: not an engine option).
    """

    field: str
    annotation: Any
    default: Any
    doc: str
    decls: tuple[str, ...]
    owners: tuple[str, ...] = ()

    @property
    def is_tuple(self) -> bool:
        return typing.get_origin(self.annotation) in (list, tuple)


def _clean(text: str) -> str:
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return " ".join(text.replace("``", "").split())


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> doc line, from the ``Attributes:`` sections of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        section: int | None = None  # indentation of "Attributes:" while inside it
        entry: int | None = None  # indentation of its entries
        name = ""
        for line in (klass.__dict__.get("__doc__") or "").expandtabs().splitlines():
            stripped = line.strip()
            depth = len(line) - len(line.lstrip())
            if stripped == "Attributes:":
                section, entry, name = depth, None, ""
                continue
            if section is None or not stripped:
                continue
            if depth <= section:
                section = None
                continue
            entry = depth if entry is None else entry
            match = re.match(r"(\w+)(?: \([^)]*\))?: (.*)", stripped)
            if depth == entry and match:
                name = match.group(1)
                docs[name] = match.group(2)
            elif name:
                docs[name] += " " + stripped
    return {k: _clean(v) for k, v in docs.items()}


def _typer_type(hint: Any) -> Any:
    """The Typer annotation for a field type (``X | None`` -> ``X``; tuples, Literals kept)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(kept) != 1:
            raise TypeError(f"cannot make a flag of {hint}")
        return _typer_type(kept[0])
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return list[args[0]]  # type: ignore[valid-type]
        return hint
    if origin is Literal or hint in (bool, int, float, str, Path):
        return hint
    raise TypeError(f"cannot make a flag of {hint}")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def flags_of(
    cls: type,
    *,
    skip: Sequence[str] = (),
    names: Mapping[str, Sequence[str]] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    owner: str | None = None,
    prefix: str = "",
) -> list[Flag]:
    """The flags of dataclass ``cls``'s fields.

    Args:
        skip: fields that get no flag (set by the command itself, or nested options).
        names: extra flag names per field (``{"avatars": ["--avatar"]}``), kept from
            earlier releases; for a ``bool`` field, its switch pair instead of
            ``--x/--no-x`` (``{"relative": ["--relative/--absolute"]}``).
        choices: allowed values of ``str`` fields known only at run time (engine names).
        owner: engine whose options these are (recorded in :attr:`Flag.owners`).
        prefix: put before each field name, for the options of a nested options class
            (``prefix="enhance_"``: ``fidelity`` -> ``--enhance-fidelity``, value
            ``enhance_fidelity``; :func:`build` with the same prefix reads them back).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = _typer_type(hints[f.name])
        if choices and f.name in choices:
            hint = Literal[tuple(choices[f.name])]  # type: ignore[valid-type]
        name = prefix + f.name
        kebab = "--" + name.replace("_", "-")
        extra = tuple((names or {}).get(f.name, ()))
        if hint is bool:  # a switch pair; ``names`` may spell it otherwise ("--a/--b")
            decls: tuple[str, ...] = extra or (f"{kebab}/--no-{kebab[2:]}",)
        else:
            decls = (kebab, *extra)
        doc = docs.get(f.name, "")
        owners = (owner,) if owner else ()
        out.append(Flag(name, hint, _default(f), doc, decls, owners))
    return out


def union(*groups: Sequence[Flag]) -> list[Flag]:
    """Flags of several classes by field name: the first keeps its type and help, owners merge."""
    merged: dict[str, Flag] = {}
    for group in groups:
        for flag in group:
            known = merged.get(flag.field)
            if known is None:
                merged[flag.field] = flag
            else:
                owners = tuple(dict.fromkeys(known.owners + flag.owners))
                merged[flag.field] = dataclasses.replace(known, owners=owners)
    return list(merged.values())


def _help(flag: Flag, all_owners: Sequence[str]) -> str:
    parts = [flag.doc.rstrip(".")] if flag.doc else []
    notes = []
    if flag.owners and set(all_owners) - set(flag.owners):
        notes.append("engine " + ", ".join(flag.owners))
    if flag.default is not None and flag.default != ():
        shown = (
            " ".join(map(str, flag.default)) if isinstance(flag.default, tuple) else flag.default
        )
        notes.append(f"default: {shown}")
    if notes:
        parts.append(f"({'; '.join(notes)})")
    return " ".join(parts).replace("[", r"\[")


def _parameter(flag: Flag, all_owners: Sequence[str], panel: str | None) -> inspect.Parameter:
    option = typer.Option(
        None, *flag.decls, help=_help(flag, all_owners), show_default=False, rich_help_panel=panel
    )
    return inspect.Parameter(
        flag.field,
        inspect.Parameter.KEYWORD_ONLY,
        default=option,
        annotation=flag.annotation | None,
    )


def load_config(path: Path, allowed: Sequence[str]) -> dict[str, Any]:
    """Option values from a TOML file whose keys are field names (``crop_size = 512``).

    Raises:
        OptionError: unreadable or invalid TOML, or a key that is no option here.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise OptionError(f"cannot read config {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise OptionError(f"config {path} is not valid TOML: {err}") from None
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise OptionError(
            f"config {path}: unknown option {', '.join(unknown)}; "
            f"options here are {', '.join(allowed)}"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


Group = tuple[str | None, Callable[[], Sequence[Flag]]]
"""A help panel title and a function giving its flags (called when the CLI is built, so
engines registered after import, by entry point or by a test, get their flags too)."""


class _Command:
    """A Typer callback whose signature is the command's own parameters plus the flags."""

    def __init__(
        self, fn: Callable[..., Any], groups: Sequence[Group], engines: Callable[[], Sequence[str]]
    ) -> None:
        functools.update_wrapper(
            self, fn, assigned=("__module__", "__name__", "__qualname__", "__doc__")
        )
        self._fn = fn
        self._groups = groups
        self._engines = engines
        self._own = [p for n, p in inspect.signature(fn).parameters.items() if n != "values"]

    def _flags(self) -> list[tuple[str | None, Flag]]:
        return [(panel, flag) for panel, flags in self._groups for flag in flags()]

    @property
    def __signature__(self) -> inspect.Signature:
        engines = self._engines()
        generated = [_parameter(flag, engines, panel) for panel, flag in self._flags()]
        config = inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                "--config",
                help="TOML file of option values, keys as the flags with underscores "
                "(crop_size = 512); flags given here override it.",
                show_default=False,
            ),
            annotation=Path | None,
        )
        return inspect.Signature([*self._own, *generated, config], return_annotation=None)

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs: Any) -> Any:
        mine = {p.name: kwargs.pop(p.name) for p in self._own}
        path = kwargs.pop("config")
        allowed = [flag.field for _, flag in self._flags()]
        values = load_config(path, allowed) if path is not None else {}
        for name, value in kwargs.items():
            if value is None or (isinstance(value, list) and not value):
                continue
            values[name] = tuple(value) if isinstance(value, list) else value
        return self._fn(**mine, values=values)


def with_options(
    *groups: Group, engines: Callable[[], Sequence[str]] = lambda: ()
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a command: add a flag per field of each group and ``--config FILE.toml``.

    ``engines`` gives every engine name (a flag's help names its engines when not all
    have it). The command gets its own parameters as usual plus ``values``: field ->
    value for every flag given on the command line or in the config file (flags win);
    unset fields are absent, so the dataclass defaults apply.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        return _Command(fn, groups, engines)

    return decorate


def pick(values: Mapping[str, Any], cls: type, prefix: str = "") -> dict[str, Any]:
    """The entries of ``values`` that are fields of dataclass ``cls`` (named ``prefix`` +
    field in ``values``), keyed by field name."""
    names = {f.name for f in dataclasses.fields(cls)}
    n = len(prefix)
    return {k[n:]: v for k, v in values.items() if k.startswith(prefix) and k[n:] in names}


def build(cls: type[Any], values: Mapping[str, Any], prefix: str = "") -> Any:
    """``cls(**pick(values, cls, prefix))``: the options the user gave, the class's defaults else."""
    return cls(**pick(values, cls, prefix))


def engine_flags(drives: str) -> list[Flag]:
    """One flag per option field of every registered engine that ``drives`` drives
    ("speech" or "motion"; same-named fields merge, the help names their engines)."""
    from avatarlab.engines import engine_options, list_engines

    return union(*(flags_of(engine_options(n), owner=n) for n in list_engines(drives)))  # type: ignore[arg-type]


def engine_values(values: Mapping[str, Any], task: type) -> dict[str, Any]:
    """The given values that are not fields of the task's options: the engine's."""
    own = pick(values, task)
    return {k: v for k, v in values.items() if k not in own}
