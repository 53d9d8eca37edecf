"""The package's shape, read from its source: layers point one way, no import cycles,
no module reaches into another package's private names (``../shared/DESIGN.md``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "avatarlab"

#: Layer of each top-level module or package: an import may only point to a lower layer,
#: or stay inside its own package. ``tasks`` sits on the building blocks, ``serve`` and
#: ``cli`` on top; the package root (``avatarlab/__init__.py``) is the public API.
LAYERS: dict[str, int] = {
    "_version": 0,
    "_lazy": 0,
    "constants": 0,
    "errors": 0,
    "registry": 1,
    "_util": 1,
    "_outdir": 2,
    "_pool": 1,
    "_torch": 1,
    "assets": 1,
    "weights": 2,
    "media": 3,
    "face": 4,
    "speech": 4,
    "body": 5,
    "engines": 6,
    "metrics": 6,
    "datasets": 7,  # its quality filter uses a metric kernel (CPBD)
    "train": 8,
    "tasks": 9,
    "serve": 10,
    "cli": 11,
    "__main__": 12,
    "__init__": 12,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(path: Path) -> Iterator[tuple[str, str]]:
    """``(module, name)`` for every run-time import of an avatarlab module in ``path``
    (function-level imports included; ``name`` is "" for ``import x.y``)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avatarlab"):
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("avatarlab"):
                    yield alias.name, ""


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(module: str, name: str) -> str:
    """The module an import loads: ``from a.b import c`` is module ``a.b.c`` when it exists."""
    candidate = f"{module}.{name}" if name else module
    return candidate if candidate in MODULES else module


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_top(m) for m in MODULES}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for module, path in MODULES.items():
        here = _top(module)
        for target, name in _imports(path):
            there = _top(_resolve(target, name))
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} imports {target} ({there} is not below {here})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = set()
        for target, name in _imports(path):
            resolved = _resolve(target, name)
            parts = resolved.split(".")
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            targets.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        graph[module] = {
            t for t in targets if t in MODULES and t != module and not module.startswith(t + ".")
        }
    cycles = _strongly_connected(graph)
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private_owner(module: str, name: str) -> str | None:
    """The package that owns the first ``_private`` part of ``module.name``, if any."""
    parts = [*module.split("."), *([name] if name else [])]
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_module_imports_another_packages_private_names() -> None:
    wrong = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target, name in _imports(path):
            owner = _private_owner(target, name)
            if owner is not None and not (package == owner or package.startswith(owner + ".")):
                wrong.append(f"{module}: from {target} import {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("module", "name", "owner"),
    [
        ("avatarlab.media._open", "is_image_path", "avatarlab.media"),
        ("avatarlab.datasets.torch", "_segment_mel", "avatarlab.datasets.torch"),
        ("avatarlab._util", "atomic_output", "avatarlab"),
        ("avatarlab.face", "models", None),
    ],
)
def test_private_owner(module: str, name: str, owner: str | None) -> None:
    assert _private_owner(module, name) == owner
