"""TLS connects to backends, under both event loops: what each failure is called.

Real servers on 127.0.0.1 (asyncio ``start_server`` with certificates from
``trustme``) and the listener's ``ConnectionPool`` connecting to them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from pointsman.config import HttpBackends
from pointsman.serve.backend_tls import (
    HANDSHAKE_FAILED,
    INVALID_ID,
    INVALID_TLS_CERT,
    TLS_FAILURES,
    BackendTls,
    classify,
)
from pointsman.serve.http_upstream import ConnectionPool, UpstreamConnection


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.Server]]:
    started: list[asyncio.Server] = []
    yield started
    for server in started:
        server.close()


async def serve(started: list[asyncio.Server], context: ssl.SSLContext | None) -> int:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
    started.append(server)
    return int(server.sockets[0].getsockname()[1])


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


async def connect(port: int, tls: ssl.SSLContext | None, name: str,
                  timeout: float = 2.0) -> tuple[UpstreamConnection | None, str]:
    loop = asyncio.get_running_loop()
    pool = ConnectionPool(loop, 4, timeout)
    done: asyncio.Future[tuple[UpstreamConnection | None, str]] = loop.create_future()
    pool.connect("127.0.0.1", port, f"127.0.0.1:{port} tls {name}",
                 lambda conn, error: done.set_result((conn, error)), tls, name)
    result = await done
    if result[0] is not None:
        result[0].close()
    pool.close()
    return result


def client_context(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return BackendTls(HttpBackends(ca_file="ca.pem"), tmp_path).context()


async def test_trusted_certificate_with_the_name_connects(
        servers: list[asyncio.Server], tmp_path: Path) -> None:
    ca = trustme.CA()
    port = await serve(servers, server_context(ca, "app.internal"))
    conn, error = await connect(port, client_context(ca, tmp_path), "app.internal")
    assert error == "" and conn is not None


async def test_each_failure_has_its_kind(servers: list[asyncio.Server], tmp_path: Path) -> None:
    ca = trustme.CA()
    context = client_context(ca, tmp_path)
    named = await serve(servers, server_context(ca, "app.internal"))
    stranger = await serve(servers, server_context(trustme.CA(), "app.internal"))
    plain = await serve(servers, None)  # reads the hello as a request that never ends
    assert (await connect(named, context, "other.internal"))[1] == INVALID_ID
    assert (await connect(named, context, "127.0.0.1"))[1] == INVALID_ID
    assert (await connect(stranger, context, "app.internal"))[1] == INVALID_TLS_CERT
    assert (await connect(plain, context, "app.internal", timeout=0.3))[1] == HANDSHAKE_FAILED
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert (await connect(closed, context, "app.internal"))[1] == "connect_failed"


async def test_plain_backend_that_answers_garbage_is_a_handshake_failure(
        servers: list[asyncio.Server], tmp_path: Path) -> None:
    async def reply_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(reply_http, "127.0.0.1", 0)
    servers.append(server)
    port = int(server.sockets[0].getsockname()[1])
    assert (await connect(port, client_context(trustme.CA(), tmp_path), "x"))[1] \
        == HANDSHAKE_FAILED


def test_statuses_and_classification_of_exceptions() -> None:
    assert {kind: status for kind, (status, _) in TLS_FAILURES.items()} == {
        HANDSHAKE_FAILED: 525, INVALID_ID: 503, INVALID_TLS_CERT: 526}
    mismatch = ssl.SSLCertVerificationError("hostname mismatch")
    mismatch.verify_code = 62
    expired = ssl.SSLCertVerificationError("certificate has expired")
    expired.verify_code = 10
    assert classify(mismatch) == INVALID_ID
    assert classify(expired) == INVALID_TLS_CERT
    assert classify(ssl.SSLError("wrong version number")) == HANDSHAKE_FAILED
    assert classify(ConnectionResetError()) == HANDSHAKE_FAILED
    assert classify(ConnectionRefusedError()) == "connect_failed"


def test_client_certificate_is_loaded(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("router.internal")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "router.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    tls = BackendTls(HttpBackends(cert_file="router.pem", key_file=str(tmp_path / "key.pem")),
                     tmp_path)
    assert tls.cert_file == str(tmp_path / "router.pem")
    assert tls.context().verify_mode == ssl.CERT_REQUIRED
    # No file named: nothing is built until a TLS endpoint is met.
    assert BackendTls(HttpBackends(), tmp_path)._context is None
