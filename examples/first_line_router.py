"""The first line of the stream names the backend; the whole stream is then relayed.

    pointsman tcp -c examples/first_line_router.py -h 127.0.0.1 -p 7000
    printf '127.0.0.1:8000\nGET / HTTP/1.0\r\n\r\n' | nc 127.0.0.1 7000
"""

from __future__ import annotations

from pointsman.routing.content import CLOSE, NOOP, Conn, Decision

MAX_FIRST_LINE = 256


def route(data: bytes, conn: Conn) -> Decision | str:
    if b"\n" not in data:
        return NOOP if len(data) < MAX_FIRST_LINE else CLOSE
    return data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
