"""Request bodies with limits: size caps, content sniffing, strict UTF-8, a private upload folder.

Nothing here trusts the client: bodies are read up to a byte limit (413 beyond it),
file types are decided by their first bytes as well as the declared type (415 when
either is wrong), text must be valid UTF-8 (400), and uploads are written under
random names into a folder only this process can read; a client-supplied file name
is never used as a path, and messages name an upload by the client's file name, never
by its path on the server.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FORM_PARTS = 8
"""Parts a multipart body may carry (a text field, a file and a few small extras)."""

# First bytes of the containers we accept, by kind -> (extension, test on the head).
_MAGIC: dict[str, list[tuple[str, Any]]] = {
    "audio": [
        (".wav", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE"),
        (".mp3", lambda h: h[:3] == b"ID3" or (h[0] == 0xFF and h[1] & 0xE0 == 0xE0)),
        (".ogg", lambda h: h[:4] == b"OggS"),
        (".flac", lambda h: h[:4] == b"fLaC"),
        (".m4a", lambda h: h[4:8] == b"ftyp"),
        (".webm", lambda h: h[:4] == b"\x1a\x45\xdf\xa3"),
    ],
    "image": [
        (".jpg", lambda h: h[:3] == b"\xff\xd8\xff"),
        (".png", lambda h: h[:8] == b"\x89PNG\r\n\x1a\n"),
        (".webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ],
    "video": [
        (".mp4", lambda h: h[4:8] == b"ftyp"),
        (".webm", lambda h: h[:4] == b"\x1a\x45\xdf\xa3"),
    ],
}
# Declared media types allowed for each kind (the sniffed bytes must agree as well).
_DECLARED = {
    "audio": ("audio/", "video/webm", "video/mp4", "video/ogg", "application/octet-stream"),
    "image": ("image/", "application/octet-stream"),
    "video": ("video/", "application/octet-stream"),
}


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lower case ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole request body, refusing (413) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, "Content-Length is not a number") from None
        if size > limit:
            raise HTTPException(413, too_large_message(size, limit))
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, too_large_message(total, limit, at_least=True))
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_message(size: int, limit: int, at_least: bool = False) -> str:
    """A 413 message that states both sizes in megabytes."""
    more = "more than " if at_least else ""
    return (
        f"request body is {more}{size / 1e6:.1f} MB; this server accepts at most "
        f"{limit / 1e6:.1f} MB here"
    )


def decode_utf8(data: bytes, what: str) -> str:
    """Decode strictly as UTF-8; invalid bytes are a client error (400), never guessed."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            400, f"{what} is not valid UTF-8 (bad byte at offset {exc.start}): send UTF-8 text"
        ) from None


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, or a 400 that says what is wrong."""
    text = decode_utf8(data, "request body")
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise HTTPException(
            400, f"request body is not valid JSON: {exc.msg} at {exc.pos}"
        ) from None
    if not isinstance(value, dict):
        raise HTTPException(422, "request body must be a JSON object")
    return value


def parse_urlencoded(data: bytes) -> dict[str, str]:
    """Fields of an ``application/x-www-form-urlencoded`` body (400 unless UTF-8 inside)."""
    try:
        pairs = parse_qsl(decode_utf8(data, "form"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise HTTPException(400, "form field is not valid UTF-8 once percent-decoded") from None
    return dict(pairs)


@dataclass
class Part:
    """One part of a multipart body: its field name, declared type and bytes."""

    name: str
    content_type: str
    filename: str | None
    data: bytearray = field(default_factory=bytearray)


def parse_multipart(content_type_header: str, body: bytes) -> list[Part]:
    """Split a ``multipart/form-data`` body (already size-limited) into its parts."""
    _, params = parse_options_header(content_type_header)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart body without a boundary in Content-Type")
    parts: list[Part] = []
    headers: dict[str, str] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[header_field.decode("latin-1").lower()] = header_value.decode("latin-1")
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) >= MAX_FORM_PARTS:
            raise HTTPException(422, f"multipart body has more than {MAX_FORM_PARTS} parts")
        _, disp = parse_options_header(headers.get("content-disposition", ""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        parts.append(
            Part(name, ctype, None if filename is None else filename.decode("utf-8", "replace"))
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except HTTPException:
        raise
    except Exception as exc:  # python-multipart raises several error types
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    return parts


def sniff(data: bytes, kinds: tuple[str, ...], declared: str) -> tuple[str, str]:
    """``(kind, extension)`` of an upload from its first bytes, or 415.

    ``declared`` (the client's media type) must be one allowed for the sniffed kind,
    so a renamed executable or a text file never reaches the decoders.
    """
    head = bytes(data[:16])
    allowed = ", ".join(ext for kind in kinds for ext, _ in _MAGIC[kind])
    if len(head) >= 12:
        for kind in kinds:
            for ext, test in _MAGIC[kind]:
                if test(head) and (not declared or declared.startswith(_DECLARED[kind])):
                    return kind, ext
    shown = declared or "no type"
    raise HTTPException(
        415, f"unsupported upload ({shown}): send one of {allowed} ({' or '.join(kinds)})"
    )


def public_message(text: str, path: Path, name: str) -> str:
    """``text`` (an error about the upload stored at ``path``) naming it ``name`` instead.

    Replaces the full path first, then its bare file name (Pillow and FFmpeg quote either).
    """
    return text.replace(str(path), name).replace(path.name, name)


class PrivateDir:
    """A temporary folder readable only by this process's user, removed on :meth:`cleanup`."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="avatarlab-serve-"))  # mode 0700

    def write(self, data: bytes, suffix: str) -> Path:
        """Store ``data`` under a fresh random name with ``suffix`` (from :func:`sniff`)."""
        target = self.path / f"{uuid.uuid4().hex}{suffix}"
        target.write_bytes(data)
        return target

    def scrub(self, text: str) -> str:
        """``text`` with any path inside this folder replaced by "the upload" (a last guard:
        routes name uploads by their client file name with :func:`public_message`)."""
        return re.sub(re.escape(str(self.path)) + r"(/[^\s'\":;,)]*)?", "the upload", text)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
