"""The manifest of a prepared corpus (Parquet) and its train/val/test file lists.

One manifest row per segment a clip was split into, kept or dropped, plus one
row per clip that failed or was dropped as a whole (``segment = -1``). Rows hold
only facts that a re-run reproduces exactly: ids, times, counts and quality
figures (rounded to :data:`DECIMALS` places), never host names or wall-clock
times, which go to the run log. Rows are sorted by
``(speaker_id, utterance_id, segment)``, so two runs on different executors
write identical files.

Splits group by speaker, never by clip: a speaker's bucket comes from the
SHA-256 of its id, so it is the same on every machine and in every run, and
adding clips never moves a speaker between splits.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from avatarlab._util import atomic_output
from avatarlab.datasets.options import check_fractions
from avatarlab.errors import MediaError

MANIFEST_NAME = "manifest.parquet"
FILELIST_DIR = "filelists"
SPLITS = ("train", "val", "test")
#: Decimal places kept for float figures in the manifest.
DECIMALS = 4

MANIFEST_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("speaker_id", pa.string()),
        ("utterance_id", pa.string()),
        ("segment", pa.int32()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("transcript", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("n_frames", pa.int32()),
        ("source_fps", pa.float64()),
        ("face_px", pa.float64()),
        ("sharpness", pa.float64()),
        ("max_yaw", pa.float64()),
        ("max_pitch", pa.float64()),
        ("output", pa.string()),
    ]
)
"""Columns of ``manifest.parquet``.

``segment``: index within the clip (-1: a clip-level row); ``status``: ``kept``,
``dropped`` or ``failed``; ``reason``: why a row was dropped or failed (empty
when kept); ``source`` / ``transcript``: paths relative to the source root;
``start_s`` / ``end_s``: span in source seconds; ``duration_s`` / ``n_frames``:
output length at the prepared rate (0 when not kept); ``face_px``: median face
box height in source pixels; ``sharpness``: median CPBD of the face crops (null when
not measured);
``max_yaw`` / ``max_pitch``: largest absolute head angles in degrees; ``output``:
the segment's folder relative to the output root (empty when not kept).
"""


def split_of(speaker_id: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a speaker, from a hash of its id.

    The first 8 bytes of SHA-256(speaker_id) give a number ``u`` in [0, 1):
    ``u < test_fraction`` -> test, ``< test_fraction + val_fraction`` -> val, else train.
    """
    check_fractions(val_fraction, test_fraction)
    digest = hashlib.sha256(speaker_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def round_figure(value: float | None) -> float | None:
    """Round a float figure to :data:`DECIMALS` places; ``None`` and NaN become ``None`` (null).

    Missing figures are nulls, not NaN, so tables compare equal with ``Table.equals``.
    """
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), DECIMALS)


def sort_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows in manifest order: by speaker, utterance, then segment."""
    return sorted(
        (dict(r) for r in rows),
        key=lambda r: (r["speaker_id"], r["utterance_id"], r["segment"], r["dataset"]),
    )


def manifest_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A ``pyarrow.Table`` with :data:`MANIFEST_SCHEMA` from row dicts, sorted."""
    ordered = sort_rows(rows)
    columns = {name: [r[name] for r in ordered] for name in MANIFEST_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=MANIFEST_SCHEMA)


def write_manifest(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> pa.Table:
    """Write the rows as Parquet (atomically) and return the table written."""
    table = manifest_table(rows)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)
    return table


def read_manifest(path: str | os.PathLike[str]) -> pa.Table:
    """Read a manifest; ``path`` is the Parquet file or the prepared output folder."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise MediaError(f"{p} not found: run `avatarlab prepare` first, or pass its output folder")
    return pq.read_table(p, schema=MANIFEST_SCHEMA)


def write_filelists(table: pa.Table, out_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Write ``filelists/{train,val,test}.txt`` (kept segment folders, one per line).

    Lines are output folders relative to ``out_dir`` (Wav2Lip's filelist
    convention: join them with the data root). Returns the line count per split.
    """
    rows = table.to_pylist()
    counts: dict[str, int] = {}
    folder = Path(out_dir) / FILELIST_DIR
    for split in SPLITS:
        lines = sorted(r["output"] for r in rows if r["status"] == "kept" and r["split"] == split)
        with atomic_output(folder / f"{split}.txt") as tmp:
            tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        counts[split] = len(lines)
    return counts
