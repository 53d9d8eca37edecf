"""``models`` and ``datasets``: what checkpoints and corpora avatarlab knows about."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console

from avatarlab.cli._app import AS_JSON, app, console, print_json
from avatarlab.cli._options import build, flags_of, with_options
from avatarlab.tasks.models import FetchOptions

models_app = typer.Typer(
    help="Checkpoints avatarlab can use: list them, identify or check a file, fetch them.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(as_json: bool = AS_JSON) -> None:
    """Show every registered checkpoint, its official source and whether it is cached."""
    from rich.table import Table

    from avatarlab import weights
    from avatarlab.tasks.models import list_checkpoints

    rows = [
        {
            "name": ck.name,
            "file": ck.filename,
            "size": ck.size,
            "sha256": ck.sha256,
            "license": ck.license,
            "source": ck.source,
            "cached": weights.find_cached(ck.name) is not None,
        }
        for ck in list_checkpoints()
    ]
    if as_json:
        print_json({"cache": str(weights.cache_dir()), "checkpoints": rows})
        return
    table = Table(title=f"checkpoints (cache: {weights.cache_dir()})")
    for column in ("name", "file", "size", "sha256", "license", "source", "cached"):
        table.add_column(column, overflow="fold")
    for r in rows:
        size = "?" if r["size"] is None else f"{r['size']:,}"
        sha = "?" if r["sha256"] is None else str(r["sha256"])[:12]
        cached = "yes" if r["cached"] else "no"
        table.add_row(
            str(r["name"]), str(r["file"]), size, sha, str(r["license"] or "-"),
            str(r["source"]), cached,
        )  # fmt: skip
    Console(width=200).print(table)


@models_app.command("verify")
def models_verify(
    path: str = typer.Argument(..., help="Checkpoint file to identify or check."),
    name: str | None = typer.Option(None, "--name", help="Registered name it should be."),
    trusted: bool = typer.Option(
        False, "--trusted", help="Allow a file that pickles Python objects (runs its code)."
    ),
) -> None:
    """Identify which registered checkpoint PATH is (checksum, size or layout), or check it."""
    from avatarlab.tasks.models import verify_checkpoint

    report = verify_checkpoint(path, name, trusted=trusted)
    print(f"{report.path}: {report.size:,} bytes, sha256 {report.sha256}")
    if report.matches:
        print(f"matches: {', '.join(report.matches)} (by {report.method})")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("OK" if report.ok else "MISMATCH")
    if not report.ok:
        raise typer.Exit(1)


@models_app.command("fetch")
@with_options((None, lambda: flags_of(FetchOptions)))
def models_fetch(
    names: list[str] = typer.Argument(..., help="Registered checkpoint names (models list)."),
    *,
    values: dict[str, Any],
) -> None:
    """Download checkpoints from their official sources (resumable, checksum-checked)."""
    from avatarlab.tasks.models import fetch

    for path in fetch(names, build(FetchOptions, values)):
        console.print(f"{path}", highlight=False)


datasets_app = typer.Typer(
    help="The field's corpora: what they are, how to get them, how they lie on disk.",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list(
    kind: str | None = typer.Option(None, "--kind", help="talking-face, speech or avatar."),
    as_json: bool = AS_JSON,
) -> None:
    """Show every dataset card: year, language, setting, size and the reader to use."""
    from rich.table import Table

    from avatarlab.datasets.cards import list_cards

    cards = list_cards(kind)
    if as_json:
        print_json([asdict(c) for c in cards])
        return
    table = Table(title="datasets (details: avatarlab datasets show NAME)")
    for column in ("name", "year", "kind", "language", "env", "subjects", "duration", "reader"):
        table.add_column(column, overflow="fold")
    for c in cards:
        table.add_row(
            c.name,
            str(c.year),
            c.kind,
            c.language or "-",
            c.environment,
            c.subjects or "-",
            c.duration or "-",
            c.reader or "-",
        )
    Console(width=200).print(table)


@datasets_app.command("show")
def datasets_show(
    name: str = typer.Argument(..., help="Dataset name, e.g. VoxCeleb2."),
    as_json: bool = AS_JSON,
) -> None:
    """Show one dataset card in full, including the on-disk layout its reader expects."""
    from rich.table import Table

    from avatarlab.datasets.cards import get_card

    card = get_card(name)
    if as_json:
        print_json(asdict(card))
        return
    table = Table(title=card.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in asdict(card).items():
        if key != "name":
            table.add_row(key, str(value) if value != "" else "-")
    Console(width=160).print(table)
