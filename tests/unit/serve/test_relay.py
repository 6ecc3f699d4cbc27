"""The relay on real socket pairs, for the splice path and the portable copy path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import pytest

from pointsman.serve.poller import Poller
from pointsman.serve.relay import SPLICE_AVAILABLE, PipePool, Relay

PATHS = [pytest.param(None, id="copy")]
if SPLICE_AVAILABLE:
    PATHS.append(pytest.param(PipePool, id="splice"))


def _pairs() -> tuple[socket.socket, socket.socket, socket.socket, socket.socket]:
    """(client, proxy's client end, proxy's backend end, backend)."""
    client, proxy_client = socket.socketpair()
    proxy_backend, backend = socket.socketpair()
    for sock in (client, proxy_client, proxy_backend, backend):
        sock.setblocking(False)
    return client, proxy_client, proxy_backend, backend


async def _read_all(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    chunks = []
    while chunk := await loop.sock_recv(sock, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("pipes", PATHS)
async def test_both_ways_with_backlog_and_half_close(pipes: type[PipePool] | None) -> None:
    loop = asyncio.get_running_loop()
    client, proxy_client, proxy_backend, backend = _pairs()
    done: asyncio.Future[str] = loop.create_future()
    relay = Relay(loop, Poller(loop), proxy_client, proxy_backend, pipes=pipes() if pipes else None,
                  to_backend=b"replayed:", on_done=done.set_result)
    relay.start()
    payload = os.urandom(3 << 20)
    send = loop.create_task(loop.sock_sendall(client, payload))
    received = loop.create_task(_read_all(loop, backend))
    await send
    client.shutdown(socket.SHUT_WR)
    assert await received == b"replayed:" + payload
    await loop.sock_sendall(backend, b"answer after the client's end")
    backend.shutdown(socket.SHUT_WR)
    assert await _read_all(loop, client) == b"answer after the client's end"
    assert await asyncio.wait_for(done, 5) == "done"
    assert relay.bytes_up == len(payload) + 9
    assert relay.bytes_down == 29
    client.close()
    backend.close()


@pytest.mark.parametrize("pipes", PATHS)
async def test_slow_reader_pauses_the_writer(pipes: type[PipePool] | None) -> None:
    loop = asyncio.get_running_loop()
    client, proxy_client, proxy_backend, backend = _pairs()
    relay = Relay(loop, Poller(loop), proxy_client, proxy_backend, pipes=pipes() if pipes else None,
                  on_done=lambda reason: None)
    relay.start()
    sent = 0
    chunk = b"x" * 65536
    # Nobody reads at the backend: the client can only fill the socket buffers and
    # the relay's one pipe or buffer; then sending must block.
    with pytest.raises(BlockingIOError):
        for _ in range(2000):
            sent += client.send(chunk)
            await asyncio.sleep(0)
    assert sent < 64 << 20
    relay.abort("test")
    client.close()
    backend.close()


@pytest.mark.parametrize("pipes", PATHS)
async def test_idle_timeout_and_peer_reset(pipes: type[PipePool] | None) -> None:
    loop = asyncio.get_running_loop()
    client, proxy_client, proxy_backend, backend = _pairs()
    done: asyncio.Future[str] = loop.create_future()
    Relay(loop, Poller(loop), proxy_client, proxy_backend, pipes=pipes() if pipes else None,
          idle_timeout=0.1, on_done=done.set_result).start()
    assert await asyncio.wait_for(done, 5) == "idle_timeout"
    assert await _read_all(loop, client) == b""
    client.close()
    backend.close()


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname())
        far, _ = listener.accept()
    return near, far


@pytest.mark.parametrize("pipes", PATHS)
async def test_backend_reset_while_paused_ends_the_relay(pipes: type[PipePool] | None) -> None:
    """A reset arriving while the relay waits on a slow client must still be seen.

    (Under libuv a socket error silently ends polling of its descriptor; the
    relay must not depend on that polling.)
    """
    loop = asyncio.get_running_loop()
    client, proxy_client = _tcp_pair()
    proxy_backend, backend = _tcp_pair()
    for sock in (client, proxy_client, proxy_backend):
        sock.setblocking(False)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    done: asyncio.Future[str] = loop.create_future()
    Relay(loop, Poller(loop), proxy_client, proxy_backend, pipes=pipes() if pipes else None,
          to_backend=b"unread", on_done=done.set_result).start()
    backend.settimeout(0.3)
    with contextlib.suppress(OSError):
        for _ in range(64):
            backend.send(b"\0" * (1 << 20))
    backend.close()  # it never read "unread": the kernel answers with a reset
    while await asyncio.wait_for(loop.sock_recv(client, 1 << 18), 5):
        pass
    assert await asyncio.wait_for(done, 5) == "backend_error"
    client.close()


@pytest.mark.skipif(not SPLICE_AVAILABLE, reason="splice(2) is Linux-only")
async def test_an_idle_relay_holds_no_pipe() -> None:
    loop = asyncio.get_running_loop()
    client, proxy_client, proxy_backend, backend = _pairs()
    pipes = PipePool()
    relay = Relay(loop, Poller(loop), proxy_client, proxy_backend, pipes=pipes,
                  on_done=lambda reason: None)
    relay.start()
    await loop.sock_sendall(client, b"x" * 100_000)
    received = 0
    while received < 100_000:
        received += len(await loop.sock_recv(backend, 1 << 16))
    await asyncio.sleep(0.01)
    assert relay.up.pipe is None and relay.down.pipe is None
    relay.abort("test")
    client.close()
    backend.close()
