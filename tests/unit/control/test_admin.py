"""The admin server: handler table, bearer token, HTTP/1.1 details, on real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from pointsman.control.admin import MAX_BODY, Admin, HttpError, Request, Response
from pointsman.control.admin_routes import install_health, install_routes
from pointsman.discovery.driver import RegistryDriver
from pointsman.discovery.registry import Registry
from pointsman.wire.gorouter import decode_registration

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def call(admin: Admin, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = admin.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    head = [f"{method} {path} HTTP/1.1", "Host: admin", f"Content-Length: {len(body)}",
            "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    head_block, _, payload = rest.partition(b"\r\n\r\n")
    fields = dict(line.decode().split(": ", 1) for line in head_block.split(b"\r\n") if line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, payload


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    server = Admin(TOKEN)
    install_health(server, lambda: True)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


async def test_health_is_public(admin: Admin) -> None:
    status, headers, body = await call(admin, "GET", "/health")
    assert (status, body) == (200, b"ok\n")
    assert headers["cache-control"] == "private, max-age=0"


async def test_added_handlers_need_the_token(admin: Admin) -> None:
    async def hello(request: Request) -> Response:
        return Response.json({"query": request.query, "body": request.body.decode()})

    admin.add("POST", "/hello", hello)
    status, headers, _ = await call(admin, "POST", "/hello")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, _, _ = await call(admin, "POST", "/hello", headers={"Authorization": "Bearer no"})
    assert status == 401
    status, _, body = await call(admin, "POST", "/hello?a=1", b"hi", AUTH)
    assert status == 200 and json.loads(body) == {"query": {"a": ["1"]}, "body": "hi"}
    assert "POST /hello" in admin.paths()


async def test_without_a_token_everything_but_health_is_refused() -> None:
    server = Admin(None)
    install_health(server, lambda: False)

    async def secret(request: Request) -> Response:
        return Response.text("no")

    server.add("GET", "/secret", secret)
    await server.start("127.0.0.1", 0)
    try:
        assert (await call(server, "GET", "/secret", headers={"Authorization": "Bearer "}))[0] \
            == 401
        assert (await call(server, "GET", "/health"))[0] == 503
    finally:
        await server.close()


async def test_unknown_path_404_wrong_method_405(admin: Admin) -> None:
    assert (await call(admin, "GET", "/nope", headers=AUTH))[0] == 404
    assert (await call(admin, "POST", "/health", headers=AUTH))[0] == 405


async def test_head_is_get_without_the_body(admin: Admin) -> None:
    status, headers, body = await call(admin, "HEAD", "/health")
    assert (status, headers["content-length"], body) == (200, "3", b"")


async def test_prefix_routes_and_handler_errors(admin: Admin) -> None:
    async def files(request: Request) -> Response:
        if request.path.endswith("/missing"):
            raise HttpError(404, "no such file")
        if request.path.endswith("/boom"):
            raise RuntimeError("internal detail")
        return Response.text(request.path)

    admin.add("GET", "/dashboard", files, prefix=True, public=True)
    assert (await call(admin, "GET", "/dashboard/app.js"))[2] == b"/dashboard/app.js"
    status, _, body = await call(admin, "GET", "/dashboard/missing")
    assert status == 404 and json.loads(body) == {"error": "no such file"}
    status, _, body = await call(admin, "GET", "/dashboard/boom")
    assert status == 500 and b"internal detail" not in body


async def test_body_over_the_limit_is_413(admin: Admin) -> None:
    async def sink(request: Request) -> Response:
        return Response.text("took it")

    admin.add("POST", "/sink", sink)
    status, _, _ = await call(admin, "POST", "/sink", b"x" * (MAX_BODY + 1), AUTH)
    assert status == 413


async def test_keep_alive_pipelined_requests_answer_in_order(admin: Admin) -> None:
    host, port = admin.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    data = b""
    while data.count(b"ok\n") < 3:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk
        data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3
    writer.close()


async def test_streamed_response_is_chunked(admin: Admin) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two"):
            yield part

    async def stream(request: Request) -> Response:
        return Response(stream=chunks())

    admin.add("GET", "/stream", stream, public=True)
    status, headers, body = await call(admin, "GET", "/stream")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n"


async def test_routes_post_get_delete(admin: Admin) -> None:
    loop = asyncio.get_running_loop()
    registry = Registry()
    driver = RegistryDriver(registry, loop, prune_interval=30)
    driver.start()
    install_routes(admin, driver)
    body = json.dumps({"uris": ["App.com/api"], "host": "127.0.0.1", "port": 9000,
                       "private_instance_id": "i1"}).encode()
    assert (await call(admin, "POST", "/routes", body))[0] == 401
    status, _, reply = await call(admin, "POST", "/routes", body, AUTH)
    assert status == 200 and json.loads(reply)["changed"] == 1
    pool = registry.table.lookup("app.com", "/api/x")  # published before the reply
    assert pool is not None and pool.endpoints[0].address == "127.0.0.1:9000"
    status, _, listing = await call(admin, "GET", "/routes", headers=AUTH)
    routes = json.loads(listing)
    assert routes["app.com/api"][0]["address"] == "127.0.0.1:9000"
    assert routes["app.com/api"][0]["private_instance_id"] == "i1"
    assert (await call(admin, "POST", "/routes", b"{}", AUTH))[0] == 400
    assert (await call(admin, "POST", "/routes", b"[", AUTH))[0] == 400
    assert (await call(admin, "DELETE", "/routes", body, AUTH))[0] == 200
    assert registry.table.lookup("app.com", "/api") is None
    assert (await call(admin, "DELETE", "/routes", body, AUTH))[0] == 404
    driver.stop()


async def test_static_routes_cannot_be_deleted_by_the_api(admin: Admin) -> None:
    loop = asyncio.get_running_loop()
    registry = Registry()
    driver = RegistryDriver(registry, loop, prune_interval=30)
    install_routes(admin, driver)
    body = json.dumps({"uris": ["a.com"], "host": "127.0.0.1", "port": 1}).encode()
    registry.register(decode_registration(body), 0.0, "static")
    assert (await call(admin, "DELETE", "/routes", body, AUTH))[0] == 409
    assert (await call(admin, "POST", "/routes", body, AUTH))[0] == 409
    driver.stop()


async def test_status_user_may_read_with_basic_auth_but_never_change() -> None:
    import base64

    server = Admin(TOKEN, reader=("router-status", "pw"))
    registry = Registry()
    driver = RegistryDriver(registry, asyncio.get_running_loop(), prune_interval=30)
    install_routes(server, driver)
    await server.start("127.0.0.1", 0)

    def basic(user: str, password: str) -> dict[str, str]:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    body = json.dumps({"uris": ["a.com"], "host": "127.0.0.1", "port": 9000}).encode()
    try:
        assert (await call(server, "POST", "/routes", body, AUTH))[0] == 200
        status, _, listing = await call(server, "GET", "/routes",
                                        headers=basic("router-status", "pw"))
        assert status == 200 and "a.com" in json.loads(listing)
        assert (await call(server, "GET", "/routes", headers=basic("router-status", "no")))[0] \
            == 401
        assert (await call(server, "DELETE", "/routes", body,
                           basic("router-status", "pw")))[0] == 401
        assert registry.table.lookup("a.com", "/") is not None
    finally:
        await server.close()
        driver.stop()
