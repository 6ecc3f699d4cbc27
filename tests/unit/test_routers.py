"""routers: the built-in route functions answered directly, as the serving side calls them."""

from __future__ import annotations

import inspect
import ssl
import struct

import pytest

from pointsman import routers
from pointsman.routing.content import CLOSE, NOOP, BadDecision, Conn, Remote, Route
from pointsman.wire import git as git_wire
from pointsman.wire import postgres as pg_wire
from pointsman.wire import tls_hello


def conn() -> Conn:
    return Conn(client=("127.0.0.1", 50000), local=("127.0.0.1", 9000), listener="test")


def hello(server_name: str | None) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def startup(**params: str) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!iI", len(body) + 8, 196608) + body


def to(remote: str) -> Route:
    host, _, port = remote.rpartition(":")
    return Route(remote=Remote(host, int(port)))


SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSS_REQUEST = struct.pack("!ii", 8, 80877104)
HTTP = b"GET / HTTP/1.1\r\nHost: www.example:8080\r\n\r\n"


# -- sni ---------------------------------------------------------------------------


def test_sni_exact_wildcard_and_default() -> None:
    route = routers.sni(
        {"a.example": "127.0.0.1:8443", "*.b.example": "@pool", "*.x.b.example": "10.0.0.1:1"},
        default="127.0.0.1:9999",
    )
    c = conn()
    assert route(hello("a.example"), c) == to("127.0.0.1:8443")
    assert route(hello("A.Example."), c) == to("127.0.0.1:8443")
    assert route(hello("www.b.example"), c) == Route(remote=Remote(upstream="pool"))
    assert route(hello("deep.www.b.example"), c) == Route(remote=Remote(upstream="pool"))
    assert route(hello("y.x.b.example"), c) == to("10.0.0.1:1")  # most specific wildcard
    assert route(hello("b.example"), c) == to("127.0.0.1:9999")  # wildcard needs a label
    assert route(hello(None), c) == to("127.0.0.1:9999")


def test_sni_waits_closes_and_refuses() -> None:
    route = routers.sni({"a.example": "127.0.0.1:8443"})
    data = hello("a.example")
    c = conn()
    assert route(b"", c) is NOOP
    assert route(data[:100], c) is NOOP
    assert route(HTTP, c) is CLOSE
    refusal = route(hello("other.example"), c)
    assert refusal == Route(reply=tls_hello.alert(tls_hello.ALERT_UNRECOGNIZED_NAME), close=True)


def test_sni_callable_table_gets_a_normalised_name() -> None:
    seen: list[str] = []

    def lookup(name: str) -> str | None:
        seen.append(name)
        return "127.0.0.1:1" if name == "a.example" else None

    route = routers.sni(lookup)
    assert route(hello("A.EXAMPLE"), conn()) == to("127.0.0.1:1")
    assert seen == ["a.example"]


def test_tables_are_checked_when_built() -> None:
    with pytest.raises(BadDecision):
        routers.sni({"a.example": "no-port"})
    with pytest.raises(ValueError):
        routers.sni({"a.*.example": "127.0.0.1:1"})
    with pytest.raises(ValueError):
        routers.postgres({}, by="host")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        routers.first()


# -- postgres ----------------------------------------------------------------------


def test_postgres_declines_ssl_then_routes_by_database() -> None:
    route = routers.postgres({"orders": "127.0.0.1:5433", "users": "127.0.0.1:5434"})
    c = conn()
    assert route(SSL_REQUEST[:5], c) is NOOP
    assert route(SSL_REQUEST, c) == Route(reply=b"N", data=b"")
    assert route(GSS_REQUEST, c) == Route(reply=b"N", data=b"")
    message = startup(user="alice", database="orders", application_name="psql")
    assert route(message[:20], c) is NOOP
    assert route(message, c) == to("127.0.0.1:5433")
    assert route(startup(user="users"), c) == to("127.0.0.1:5434")  # database defaults to user


def test_postgres_unknown_database_gets_an_error_response() -> None:
    route = routers.postgres({"orders": "127.0.0.1:5433"})
    answer = route(startup(user="alice", database="nope"), conn())
    assert isinstance(answer, Route) and answer.close and answer.remote is None
    assert answer.reply == pg_wire.error_response('database "nope" does not exist', code="3D000")
    assert route(HTTP, conn()) is CLOSE


def test_postgres_by_user_callable_default_and_cancel() -> None:
    route = routers.postgres(
        lambda user: "127.0.0.1:6000" if user.startswith("team_") else None,
        by="user",
        default=None,
    )
    c = conn()
    assert route(startup(user="team_a", database="x"), c) == to("127.0.0.1:6000")
    refusal = route(startup(user="bob"), c)
    assert isinstance(refusal, Route) and refusal.reply is not None
    assert b"C28000\0" in refusal.reply
    cancel = struct.pack("!iiii", 16, 80877102, 1, 2)
    assert route(cancel, c) is CLOSE
    with_default = routers.postgres({}, default="127.0.0.1:7000", cancel="127.0.0.1:7001")
    assert with_default(cancel, c) == to("127.0.0.1:7001")
    assert with_default(startup(user="u"), c) == to("127.0.0.1:7000")


# -- git ---------------------------------------------------------------------------


def request(path: str) -> bytes:
    return git_wire.pkt_line(f"git-upload-pack {path}\0host=example.com\0\0version=2\0".encode())


def test_git_routes_by_user_and_refuses_others() -> None:
    route = routers.git({"alice": "127.0.0.1:9418", "bob": "127.0.0.1:9419"})
    c = conn()
    assert route(request("/alice/proj.git")[:10], c) is NOOP
    assert route(request("/alice/proj.git"), c) == to("127.0.0.1:9418")
    assert route(request("~bob/x"), c) == to("127.0.0.1:9419")
    refusal = route(request("/carol/x.git"), c)
    assert refusal == Route(
        reply=git_wire.err_pkt("repository not found: /carol/x.git"), close=True
    )
    assert isinstance(route(request("/alice"), c), Route)  # no repo: refused too
    assert route(request("/alice"), c).remote is None  # type: ignore[union-attr]
    assert route(HTTP, c) is CLOSE


def test_git_callable_sees_user_and_repo() -> None:
    def lookup(user: str, repo: str) -> str | None:
        return "127.0.0.1:1" if (user, repo) == ("alice", "public.git") else None

    route = routers.git(lookup, default="127.0.0.1:2")
    assert route(request("/alice/public.git"), conn()) == to("127.0.0.1:1")
    assert route(request("/alice/private.git"), conn()) == to("127.0.0.1:2")


# -- http_host ---------------------------------------------------------------------


def test_http_host_routes_by_host_without_port() -> None:
    route = routers.http_host({"www.example": "127.0.0.1:8080", "*.apps.example": "@apps"})
    c = conn()
    assert route(HTTP[:20], c) is NOOP
    assert route(HTTP, c) == to("127.0.0.1:8080")
    assert route(b"GET / HTTP/1.1\r\nHost: x.apps.example\r\n\r\n", c) == Route(
        remote=Remote(upstream="apps")
    )
    assert route(b"GET / HTTP/1.1\r\nHost: other\r\n\r\n", c) == Route(
        reply=routers.HTTP_NOT_FOUND, close=True
    )
    assert route(hello("www.example"), c) is CLOSE
    quiet = routers.http_host({}, not_found=None)
    assert quiet(HTTP, c) is CLOSE
    assert routers.http_host({}, default="127.0.0.1:1")(HTTP, c) == to("127.0.0.1:1")


# -- first -------------------------------------------------------------------------


def test_first_tls_else_http() -> None:
    route = routers.first(
        routers.sni({"a.example": "127.0.0.1:8443"}),
        routers.http_host({"www.example": "127.0.0.1:8080"}),
    )
    assert route(b"", conn()) is NOOP
    assert route(hello("a.example"), conn()) == to("127.0.0.1:8443")
    assert route(HTTP, conn()) == to("127.0.0.1:8080")
    assert route(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", conn()) is CLOSE


def test_first_honours_order_while_an_earlier_router_waits() -> None:
    calls: list[str] = []

    def waits(data: bytes, c: Conn) -> object:
        calls.append("waits")
        return None if len(data) < 3 else CLOSE

    def decides(data: bytes, c: Conn) -> object:
        calls.append("decides")
        return "127.0.0.1:1"

    route = routers.first(waits, decides)
    c = conn()
    assert route(b"ab", c) is NOOP
    assert calls == ["waits"]
    assert route(b"abc", c) == to("127.0.0.1:1")
    assert route(b"abcd", c) == to("127.0.0.1:1")
    assert calls == ["waits", "waits", "decides", "decides"]  # a closed router is not asked


def test_first_asks_again_after_the_buffer_is_rewritten() -> None:
    route = routers.first(
        routers.postgres({"db": "127.0.0.1:5432"}),
        routers.sni({"a.example": "127.0.0.1:8443"}),
    )
    c = conn()
    assert route(b"\x16", c) is NOOP  # postgres gave up, TLS may still come
    assert route(SSL_REQUEST, c) is CLOSE  # both have closed on this buffer...
    c = conn()
    assert route(SSL_REQUEST, c) == Route(reply=b"N", data=b"")
    assert route(startup(user="u", database="db"), c) == to("127.0.0.1:5432")


async def test_first_awaits_a_coroutine_router_and_goes_on() -> None:
    async def lookup(data: bytes, c: Conn) -> object:
        if not data.startswith(b"ASK "):
            return CLOSE
        return "127.0.0.1:7" if b"\n" in data else None

    route = routers.first(lookup, routers.http_host({"www.example": "127.0.0.1:8080"}))
    c = conn()
    pending = route(b"ASK me\n", c)
    assert inspect.isawaitable(pending)
    assert await pending == to("127.0.0.1:7")
    c = conn()
    pending = route(HTTP, c)
    assert inspect.isawaitable(pending)
    assert await pending == to("127.0.0.1:8080")  # the async one closed, HTTP decided
    assert route(HTTP, c) == to("127.0.0.1:8080")  # and it is not asked again
    wait = route(b"ASK", conn())
    assert await wait is NOOP  # type: ignore[misc]
