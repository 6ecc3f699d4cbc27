"""Read the request that opens a git:// connection, and refuse one the git way.

A git client connecting to a git daemon (port 9418) sends one pkt-line first::

    0033git-upload-pack /user/repo.git\\0host=example.com\\0
    ...git-upload-pack /user/repo\\0host=example.com:9418\\0\\0version=2\\0

that is, four hex digits of length (counting themselves), the service, a
space, the path, a NUL, an optional ``host=`` parameter with its NUL, and
after one more NUL any extra parameters (protocol v2 sends ``version=2``).
That line names the repository, and so the backend holding it.

``err_pkt`` builds the ``ERR`` pkt-line a daemon sends to refuse; the client
prints it as ``fatal: remote error: <message>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pointsman.wire.errors import RemoteProtocolError
from pointsman.wire.peek import NEED_DATA, NeedData

__all__ = [
    "MAX_PKT_LINE",
    "NEED_DATA",
    "SERVICES",
    "GitError",
    "GitRequest",
    "err_pkt",
    "parse",
    "pkt_line",
]

#: The largest pkt-line git writes or accepts (LARGE_PACKET_MAX).
MAX_PKT_LINE: Final = 65520
SERVICES: Final = ("git-upload-pack", "git-receive-pack", "git-upload-archive")

_HEX = frozenset(b"0123456789abcdefABCDEF")
_PREFIX = b"git-"


class GitError(RemoteProtocolError, ValueError):
    """The bytes are not a git:// request line."""


@dataclass(frozen=True, slots=True)
class GitRequest:
    """The opening request of a git:// connection.

    ``path`` is as sent (``/user/repo.git`` or ``~user/repo``); ``host`` and
    ``port`` come from the ``host=`` parameter (``None`` when absent);
    ``extra`` holds the parameters after the double NUL, e.g. ``("version=2",)``.
    ``length`` is the whole pkt-line's size in bytes.
    """

    service: str
    path: str
    host: str | None
    port: int | None
    extra: tuple[str, ...]
    length: int

    @property
    def user(self) -> str | None:
        """The first path segment (``user`` in ``/user/repo``), without a ``~``."""
        parts = self.path.lstrip("/").split("/", 1)
        user = parts[0].lstrip("~")
        return user if len(parts) == 2 and user else None

    @property
    def repo(self) -> str | None:
        """The rest of the path after the user (``repo.git`` in ``/user/repo.git``)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None

    @property
    def version(self) -> int:
        """The protocol version the client asks for (0 unless ``version=N``)."""
        for item in self.extra:
            if item.startswith("version=") and item[8:].isdigit():
                return int(item[8:])
        return 0


def parse(buf: bytes | bytearray | memoryview) -> GitRequest | NeedData:
    """Read the first pkt-line in ``buf``; ``NEED_DATA`` while it is incomplete."""
    have = len(buf)
    for i in range(min(have, 4)):
        if buf[i] not in _HEX:
            raise GitError("not a pkt-line length")
    if have < 4:
        return NEED_DATA
    length = int(bytes(buf[:4]), 16)
    if length < 4 + len(_PREFIX) + 1:
        raise GitError(f"pkt-line of {length} bytes cannot hold a request")
    if length > MAX_PKT_LINE:
        raise GitError(f"pkt-line of {length} bytes exceeds {MAX_PKT_LINE}")
    head = bytes(buf[4 : 4 + len(_PREFIX)])
    if not _PREFIX.startswith(head):
        raise GitError("not a git service request")
    if have < length:
        return NEED_DATA
    line = bytes(buf[4:length])
    if line.endswith(b"\n"):
        line = line[:-1]
    return _request(line, length)


def _request(line: bytes, length: int) -> GitRequest:
    command, space, rest = line.partition(b" ")
    if not space:
        raise GitError("request without a path")
    try:
        service = command.decode("ascii")
        text = rest.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GitError("request is not UTF-8") from exc
    if service not in SERVICES:
        raise GitError(f"unknown service {service!r}")
    path, sep, params = text.partition("\0")
    if not path:
        raise GitError("empty repository path")
    host: str | None = None
    port: int | None = None
    extra: tuple[str, ...] = ()
    if sep and params:
        first, sep, after = params.partition("\0")
        if not sep:
            raise GitError("host parameter without its NUL")
        if first:
            if not first.startswith("host="):
                raise GitError(f"unexpected parameter {first[:32]!r}")
            host, port = _host(first[5:])
            if after:
                if not after.startswith("\0"):
                    raise GitError("extra parameters must follow a NUL")
                after = after[1:]
        if after:
            if not after.endswith("\0"):
                raise GitError("extra parameters must end with a NUL")
            extra = tuple(after[:-1].split("\0"))
            if "" in extra:
                raise GitError("empty extra parameter")
    return GitRequest(service, path, host, port, extra, length)


def _host(value: str) -> tuple[str, int | None]:
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise GitError("unterminated [ in host")
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise GitError("junk after ] in host")
            port = _port(rest[1:])
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        port = _port(port_text)
    if not host:
        raise GitError("empty host")
    return host, port


def _port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise GitError(f"bad port {text[:8]!r}")
    return int(text)


def pkt_line(payload: bytes) -> bytes:
    """Frame ``payload`` as one pkt-line."""
    size = len(payload) + 4
    if size > MAX_PKT_LINE:
        raise GitError(f"pkt-line of {size} bytes exceeds {MAX_PKT_LINE}")
    return b"%04x" % size + payload


def err_pkt(message: str) -> bytes:
    """The ``ERR`` pkt-line a daemon sends to refuse a request."""
    return pkt_line(b"ERR " + message.replace("\n", " ").encode() + b"\n")
