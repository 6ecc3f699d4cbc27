"""Files from a directory, for routes whose target is a ``root`` instead of endpoints.

What a web server owes a browser for static files, kept small: the path is
resolved inside the root and never outside it (``..``, symlinks pointing out,
NUL bytes are refused), a directory serves its ``index.html``, ``GET`` and
``HEAD`` only (405 otherwise), ``ETag`` and ``Last-Modified`` with 304 answers
to ``If-None-Match`` / ``If-Modified-Since``, one ``Range`` (206, or 416), and
a content type from the file name.

``StaticFiles.respond`` does the file-system work and returns the response
head and where its body comes from; the HTTP listener writes it.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

__all__ = ["StaticFiles", "StaticResponse"]

INDEX = "index.html"
_METHODS = (b"GET", b"HEAD")


@dataclass(frozen=True, slots=True)
class StaticResponse:
    """A response: status, headers, and the byte range of ``path`` to send (if any)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    path: str | None = None
    offset: int = 0
    length: int = 0
    body: bytes = b""


class StaticFiles:
    """One document root."""

    __slots__ = ("root",)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def respond(self, method: bytes, target: bytes, headers: dict[bytes, bytes],
                prefix: str = "") -> StaticResponse:
        """Answer ``method target``; ``headers`` has lower-case names.

        ``prefix`` is the route's path prefix, stripped before the file lookup,
        so ``/docs/a.html`` on a route for ``/docs`` is ``<root>/a.html``.
        """
        if method not in _METHODS:
            return _plain(405, b"method not allowed\n", ((b"allow", b"GET, HEAD"),))
        found = self._resolve(target, prefix)
        if found is None:
            return _plain(404, b"not found\n")
        path, info = found
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'.encode()
        modified = email.utils.formatdate(info.st_mtime, usegmt=True).encode()
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
            kind += "; charset=utf-8"
        common = ((b"content-type", kind.encode()), (b"etag", etag),
                  (b"last-modified", modified), (b"accept-ranges", b"bytes"))
        if _not_modified(headers, etag, info.st_mtime):
            return StaticResponse(304, common[1:3])
        size = info.st_size
        wanted = headers.get(b"range")
        if wanted is not None and headers.get(b"if-range", etag) == etag:
            span = _range(wanted, size)
            if span is None:
                return _plain(416, b"range not satisfiable\n",
                              ((b"content-range", f"bytes */{size}".encode()),))
            start, end = span
            if (start, end) != (0, size - 1):
                return StaticResponse(
                    206, (*common, (b"content-range", f"bytes {start}-{end}/{size}".encode()),
                          (b"content-length", str(end - start + 1).encode())),
                    path, start, 0 if method == b"HEAD" else end - start + 1)
        return StaticResponse(200, (*common, (b"content-length", str(size).encode())),
                              path, 0, 0 if method == b"HEAD" else size)

    def _resolve(self, target: bytes, prefix: str) -> tuple[str, os.stat_result] | None:
        raw = target.split(b"?", 1)[0].split(b"#", 1)[0]
        try:
            text = unquote(raw.decode("ascii"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None
        if "\0" in text or not text.startswith("/"):
            return None
        if prefix and text.startswith(prefix):
            text = text[len(prefix):] or "/"
        parts = [part for part in text.split("/") if part not in ("", ".")]
        if ".." in parts:
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
            info = real.stat()
            if stat.S_ISDIR(info.st_mode):
                real = (real / INDEX).resolve(strict=True)
                info = real.stat()
        except (OSError, RuntimeError):
            return None
        if real != self.root and self.root not in real.parents:
            return None  # a symlink that leads out of the root
        if not stat.S_ISREG(info.st_mode):
            return None
        return str(real), info


def _plain(status: int, body: bytes,
           extra: tuple[tuple[bytes, bytes], ...] = ()) -> StaticResponse:
    return StaticResponse(status, ((b"content-type", b"text/plain; charset=utf-8"),
                                   (b"content-length", str(len(body)).encode()), *extra),
                          body=body)


def _not_modified(headers: dict[bytes, bytes], etag: bytes, mtime: float) -> bool:
    match = headers.get(b"if-none-match")
    if match is not None:
        return match.strip() == b"*" or etag in [tag.strip() for tag in match.split(b",")]
    since = headers.get(b"if-modified-since")
    if since is None:
        return False
    try:
        parsed = email.utils.parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError):
        return False
    return int(mtime) <= parsed.timestamp()


def _range(value: bytes, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as inclusive offsets; several ranges get the whole file."""
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return (0, size - 1) if size else None
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        return None
    try:
        if not first:
            count = int(last)
            if count <= 0 or size == 0:
                return None
            return max(0, size - count), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)
