"""The avatars a server offers: the ones it was started with plus uploads, prepared once each."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from avatarlab.errors import AvatarLabError, OptionError
from avatarlab.media import is_image_path
from avatarlab.serve.stream import Backend
from avatarlab.serve.uploads import public_message


@dataclass
class AvatarEntry:
    """One avatar: where its source file is and, once analysed, the prepared avatar.

    ``id`` is what clients pass to ``POST /sessions``; uploads get a random one, the
    server's own avatars a slug of their file name.
    """

    id: str
    name: str
    path: Path
    kind: str  # "image" or "video"
    uploaded: bool
    prepared: Any = None
    motion: Any = None  # prepared for camera driving (the backend's motion engine), lazily
    sessions: int = 0
    preview: bytes | None = field(default=None, repr=False)  # JPEG still, made on first ask
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "uploaded": self.uploaded,
            "ready": self.prepared is not None,
        }


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "avatar"


class AvatarCatalog:
    """Named avatars; prepares each lazily (one at a time) and keeps at most
    ``max_uploads`` uploaded ones, dropping the oldest without a live session."""

    def __init__(
        self,
        backend: Backend,
        paths: Sequence[Path],
        max_uploads: int,
        executor: Executor,
        max_video_s: float = float("inf"),
        max_side: int = 512,
    ) -> None:
        self.backend = backend
        self.max_side = max_side
        self.max_uploads = max_uploads
        self.executor = executor
        self.max_video_s = max_video_s
        self._entries: dict[str, AvatarEntry] = {}
        self._prepare_lock = asyncio.Lock()  # analysis is heavy: one at a time
        for path in paths:
            base = _slug(path.stem)
            key, i = base, 2
            while key in self._entries:
                key, i = f"{base}-{i}", i + 1
            self._entries[key] = AvatarEntry(key, path.name, path, _kind(path), uploaded=False)

    def list(self) -> list[AvatarEntry]:
        return list(self._entries.values())

    def get(self, avatar_id: str) -> AvatarEntry | None:
        return self._entries.get(avatar_id)

    @property
    def default(self) -> AvatarEntry | None:
        return next(iter(self._entries.values()), None)

    def preview(self, entry: AvatarEntry) -> bytes:
        """A JPEG of ``entry``'s first frame, no larger than the stream (made once).

        Raises:
            HTTPException: 422 when the source cannot be read.
        """
        if entry.preview is None:
            import cv2

            from avatarlab.media import iter_frames, read_image

            try:
                if entry.kind == "image":
                    frame = read_image(entry.path)
                else:
                    frame = next(iter(iter_frames(entry.path, end=0.2)))[0]
            except (AvatarLabError, StopIteration) as exc:
                message = public_message(str(exc) or "no frame", entry.path, entry.name)
                raise HTTPException(422, f"cannot read avatar {entry.id!r}: {message}") from None
            h, w = frame.shape[:2]
            scale = min(1.0, self.max_side / max(h, w))
            if scale < 1.0:
                size = (max(2, round(w * scale)), max(2, round(h * scale)))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
            )
            entry.preview = data.tobytes()
        return entry.preview

    async def prepare(self, entry: AvatarEntry) -> Any:
        """The prepared avatar of ``entry``, analysing its source the first time."""
        async with entry.lock:
            if entry.prepared is None:
                async with self._prepare_lock:
                    loop = asyncio.get_running_loop()
                    entry.prepared = await loop.run_in_executor(
                        self.executor, self.backend.prepare, entry.path
                    )
            return entry.prepared

    async def prepare_motion(self, entry: AvatarEntry) -> Any:
        """``entry`` prepared for camera driving, analysing it the first time it is asked."""
        async with entry.lock:
            if entry.motion is None:
                async with self._prepare_lock:
                    loop = asyncio.get_running_loop()
                    entry.motion = await loop.run_in_executor(
                        self.executor, self.backend.prepare_motion, entry.path
                    )
            return entry.motion

    async def add_upload(self, path: Path, name: str, kind: str) -> AvatarEntry:
        """Register and prepare an uploaded file (removed again if preparing fails).

        A file that cannot be used is a 422 naming the upload ``name`` (the client's file
        name), never its path on the server.
        """
        entry = AvatarEntry(f"upload-{uuid.uuid4().hex[:10]}", name, path, kind, uploaded=True)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self.executor, check_upload, path, self.max_video_s
            )
            await self.prepare(entry)
        except AvatarLabError as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(
                422, f"cannot use {name}: {public_message(str(exc), path, name)}"
            ) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._entries[entry.id] = entry
        self._evict()
        return entry

    def _evict(self) -> None:
        uploads = [e for e in self._entries.values() if e.uploaded]
        for entry in uploads[: max(len(uploads) - self.max_uploads, 0)]:
            if entry.sessions == 0:
                del self._entries[entry.id]
                entry.path.unlink(missing_ok=True)


def check_upload(path: Path, max_seconds: float) -> None:
    """Check an upload from its header before the engine decodes it.

    Raises :class:`MediaError` when it is unreadable or a picture (image or video frame)
    exceeds ``avatarlab.media.MAX_IMAGE_PIXELS``, :class:`OptionError` for a video longer
    than ``max_seconds``.
    """
    from avatarlab.media import probe

    info = probe(path)
    if info.is_image:
        return
    if not info.has_video:
        raise OptionError("the upload has no video stream: send a portrait or a video of a face")
    if info.duration > max_seconds:
        raise OptionError(
            f"the video is {info.duration:.0f} s long; avatars may be at most {max_seconds:.0f} s "
            "(a few seconds of a face are enough)"
        )


def _kind(path: Path) -> str:
    return "image" if is_image_path(path) else "video"


def clean_name(filename: str | None, fallback: str) -> str:
    """A display name from a client's file name: its last component, printable, short."""
    if not filename:
        return fallback
    base = re.split(r"[\\/]", filename)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or fallback
