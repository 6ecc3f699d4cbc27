"""Built-in route functions for content-aware TCP routing, and a way to combine them.

Each factory returns a ``route(data, conn)`` function that answers per the
contract in ``pointsman.routing.content``: a ``Route`` to a backend, ``NOOP``
while the buffered bytes may still match, ``CLOSE`` once they cannot, or a
``Route(reply=..., close=True)`` that refuses in the protocol's own words (a
TLS alert, a PostgreSQL ErrorResponse, a git ``ERR`` line, an HTTP 404).

* ``sni(table)``: TLS, by the ClientHello's server name (TLS is not terminated).
* ``postgres(table, by="database")``: PostgreSQL, declining SSL/GSSAPI
  encryption so the client sends its startup message in clear.
* ``git(lookup)``: git://, by the first path segment (the user) and the repo.
* ``http_host(table)``: HTTP/1.x, by the Host header (or absolute-form target).
* ``first(*routers)``: the first router, in order, that has not given up.

Tables map names to anything a route function may answer (``"host:port"``,
``"@upstream"``, ``(host, port)``, a ``Route``), or are callables of the name
returning one or ``None``. Host-name tables match exact names first, then
wildcards, most specific first: ``"*.b.example"`` matches ``x.b.example`` and
``y.x.b.example`` but not ``b.example``. Usage, in the file given to
``pointsman tcp -c router.py``::

    from pointsman import routers
    route = routers.first(
        routers.sni({"db.example": "10.0.0.5:5432", "*.apps.example": "@apps"}),
        routers.http_host({"www.example": "127.0.0.1:8080"}, default="127.0.0.1:8081"),
    )

They are pure functions of the buffer (``first`` keeps only a note in
``conn.state``), so they are unit-tested without sockets.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pointsman.routing.content import CLOSE, NOOP, Conn, Decision, Route, normalise
from pointsman.wire import git as git_wire
from pointsman.wire import http_peek, tls_hello
from pointsman.wire import postgres as pg_wire
from pointsman.wire.peek import NEED_DATA

__all__ = [
    "HTTP_NOT_FOUND",
    "Router",
    "first",
    "git",
    "http_host",
    "postgres",
    "sni",
]

Router = Callable[[bytes, Conn], Decision]
Table = Mapping[str, Any] | Callable[[str], Any]

#: What ``http_host`` answers for a host it does not know (and no default).
HTTP_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 18\r\n"
    b"connection: close\r\n\r\nno route for host\n"
)


def _decision(value: Any) -> Decision:
    """A table value as a decision; ``BadDecision`` for anything else."""
    decision = normalise(value)
    if decision is NOOP:
        raise ValueError(f"{value!r} is not a destination")
    return decision


def _fixed(value: Any) -> Decision | None:
    return None if value is None else _decision(value)


class _Names:
    """Host names to decisions: exact names, then ``*.suffix`` wildcards."""

    __slots__ = ("exact", "wild")

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.exact: dict[str, Decision] = {}
        self.wild: dict[str, Decision] = {}
        for key, value in table.items():
            name = key.lower().rstrip(".")
            if name.startswith("*."):
                self.wild[name[2:]] = _decision(value)
            elif "*" in name or not name:
                raise ValueError(f"bad host pattern {key!r}: use 'name' or '*.suffix'")
            else:
                self.exact[name] = _decision(value)

    def get(self, name: str) -> Decision | None:
        name = name.lower().rstrip(".")
        found = self.exact.get(name)
        if found is not None or not self.wild:
            return found
        dot = name.find(".")
        while dot >= 0:
            name = name[dot + 1 :]
            found = self.wild.get(name)
            if found is not None:
                return found
            dot = name.find(".")
        return None


def _lookup(table: Table, names: bool) -> Callable[[str], Decision | None]:
    if callable(table):
        call = table

        def dynamic(key: str) -> Decision | None:
            value = call(key)
            return None if value is None else _decision(value)

        return dynamic
    if names:
        return _Names(table).get
    fixed = {key: _decision(value) for key, value in table.items()}
    return fixed.get


# -- TLS ---------------------------------------------------------------------------


def sni(table: Table, default: Any = None) -> Router:
    """Route TLS by server name; refuse unknown names with an ``unrecognized_name`` alert.

    A ClientHello without SNI goes to ``default``. The backend terminates TLS.
    """
    lookup = _lookup(table, names=True)
    fallback = _fixed(default)
    refuse = Route(reply=tls_hello.alert(tls_hello.ALERT_UNRECOGNIZED_NAME), close=True)

    def route(data: bytes, conn: Conn) -> Decision:
        try:
            hello = tls_hello.parse(data)
        except tls_hello.TlsHelloError:
            return CLOSE
        if hello is NEED_DATA:
            return NOOP
        name = hello.server_name
        found = lookup(name.lower().rstrip(".")) if name else None
        if found is None:
            found = fallback
        return refuse if found is None else found

    return route


# -- PostgreSQL --------------------------------------------------------------------


def postgres(
    table: Table,
    *,
    by: Literal["database", "user"] = "database",
    default: Any = None,
    cancel: Any = None,
) -> Router:
    """Route PostgreSQL by database (or user) name.

    SSLRequest and GSSENCRequest are declined (``b"N"``) and dropped from the
    buffer, so libpq (``sslmode=prefer``, the default) continues in clear with
    its StartupMessage. A name that is neither in ``table`` nor has a
    ``default`` gets the ErrorResponse a server sends (SQLSTATE 3D000 for a
    database, 28000 for a role). A CancelRequest names no database, so it
    goes to ``cancel`` (or ``default``), else the connection closes.
    """
    if by not in ("database", "user"):
        raise ValueError(f"by must be 'database' or 'user', not {by!r}")
    lookup = _lookup(table, names=False)
    fallback = _fixed(default)
    cancel_to = fallback if cancel is None else _fixed(cancel)

    def route(data: bytes, conn: Conn) -> Decision:
        try:
            event = pg_wire.parse(data)
        except pg_wire.PostgresError:
            return CLOSE
        if event is NEED_DATA:
            return NOOP
        if isinstance(event, pg_wire.SSLRequest | pg_wire.GSSENCRequest):
            return Route(reply=pg_wire.DECLINE_SSL, data=data[event.length :])
        if isinstance(event, pg_wire.CancelRequest):
            return CLOSE if cancel_to is None else cancel_to
        name = event.database if by == "database" else event.user
        found = lookup(name)
        if found is None:
            found = fallback
        if found is not None:
            return found
        if by == "database":
            message = pg_wire.error_response(f'database "{name}" does not exist', code="3D000")
        else:
            message = pg_wire.error_response(f'role "{name}" does not exist', code="28000")
        return Route(reply=message, close=True)

    return route


# -- git ---------------------------------------------------------------------------


def git(lookup: Mapping[str, Any] | Callable[[str, str], Any], default: Any = None) -> Router:
    """Route git:// by the path's first segment: ``/<user>/<repo>``.

    ``lookup`` maps a user to a backend, or is a callable ``(user, repo)``
    returning one or ``None``. Requests for an unknown user (or a path without
    a user) are refused with an ``ERR`` pkt-line, which git prints as
    ``fatal: remote error: ...``.
    """
    fallback = _fixed(default)
    if callable(lookup):
        call = lookup

        def find(user: str, repo: str) -> Decision | None:
            value = call(user, repo)
            return None if value is None else _decision(value)

    else:
        users = {user: _decision(value) for user, value in lookup.items()}

        def find(user: str, repo: str) -> Decision | None:
            return users.get(user)

    def route(data: bytes, conn: Conn) -> Decision:
        try:
            request = git_wire.parse(data)
        except git_wire.GitError:
            return CLOSE
        if request is NEED_DATA:
            return NOOP
        user, repo = request.user, request.repo
        found = find(user, repo) if user and repo else None
        if found is None:
            found = fallback
        if found is None:
            refusal = git_wire.err_pkt(f"repository not found: {request.path}")
            return Route(reply=refusal, close=True)
        return found

    return route


# -- HTTP --------------------------------------------------------------------------


def http_host(
    table: Table, default: Any = None, not_found: bytes | None = HTTP_NOT_FOUND
) -> Router:
    """Route HTTP/1.x by host name, without terminating HTTP.

    The host comes from an absolute-form target or else the Host header,
    without its port. An unknown host goes to ``default``, else gets
    ``not_found`` (a plain 404) and the connection closes; ``not_found=None``
    closes without a word.
    """
    lookup = _lookup(table, names=True)
    fallback = _fixed(default)
    refuse: Decision = CLOSE if not_found is None else Route(reply=not_found, close=True)

    def route(data: bytes, conn: Conn) -> Decision:
        try:
            head = http_peek.parse(data)
        except http_peek.HttpPeekError:
            return CLOSE
        if head is NEED_DATA:
            return NOOP
        name = head.hostname
        found = lookup(name) if name else None
        if found is None:
            found = fallback
        return refuse if found is None else found

    return route


# -- combining ---------------------------------------------------------------------


def first(
    *routers: Callable[[bytes, Conn], Any],
) -> Callable[[bytes, Conn], Decision | Awaitable[Decision]]:
    """Ask ``routers`` in order; the first that has not closed decides.

    While an earlier router still waits (``NOOP``), the answer is ``NOOP``
    even if a later one could decide: order is priority. When every router
    has closed, the answer is ``CLOSE``. A router that closed is not asked
    again on this connection (the built-in parsers never take back a
    refusal), until one rewrites the buffer (a ``Route`` without a remote).
    A router may be a coroutine function; ``first`` then answers with an
    awaitable from the point it met one, which the serving side awaits.
    """
    if not routers:
        raise ValueError("first() needs at least one router")
    key = f"pointsman.routers.first:{id(routers)}"

    def settle(answer: Any, index: int, closed: set[int]) -> Decision | None:
        decision = normalise(answer)
        if decision is CLOSE:
            closed.add(index)
            return None
        if isinstance(decision, Route) and decision.remote is None and not decision.close:
            closed.clear()  # the buffer is rewritten: every router may match again
        return decision

    async def finish(
        pending: Awaitable[Any], index: int, data: bytes, conn: Conn, closed: set[int]
    ) -> Decision:
        decision = settle(await pending, index, closed)
        while decision is None:
            index += 1
            if index == len(routers):
                return CLOSE
            if index in closed:
                continue
            answer = routers[index](data, conn)
            if inspect.isawaitable(answer):
                answer = await answer
            decision = settle(answer, index, closed)
        return decision

    def route(data: bytes, conn: Conn) -> Decision | Awaitable[Decision]:
        closed: set[int] = conn.state.setdefault(key, set())
        for index, router in enumerate(routers):
            if index in closed:
                continue
            answer = router(data, conn)
            if inspect.isawaitable(answer):
                return finish(answer, index, data, conn, closed)
            decision = settle(answer, index, closed)
            if decision is not None:
                return decision
        return CLOSE

    return route
