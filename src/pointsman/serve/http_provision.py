"""HTTP routes whose upstream is ``kind = "provision"``: a fresh backend per request.

For a WebSocket upgrade that is one backend per WebSocket connection
(soh-router's model): it is leased when the request arrives, kept through the
tunnel, and stopped when the tunnel ends (``Exchange._finish`` releases it).
Such a request is never retried on another backend and its upstream
connection is never kept alive for another request.

When no backend comes within the pool's queue timeout, a plain request gets
503; a WebSocket upgrade gets the handshake completed and a close frame 1013
"try again later", because a browser's WebSocket sees a refused handshake only
as close code 1006.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pointsman.routing.table import Endpoint
from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.provision import PoolExhausted
from pointsman.wire.websocket_refusal import refusal, websocket_key

if TYPE_CHECKING:
    from pointsman.serve.http_exchange import Exchange

__all__ = ["lease_then_connect", "refuse_websocket"]


async def lease_then_connect(exchange: Exchange, provision: ProvisionPool) -> None:
    """Lease a backend for ``exchange``, then open its upstream connection to it."""
    try:
        lease = await provision.acquire()
    except PoolExhausted as exc:
        exchange.lease_task = None
        head = exchange.head
        key = websocket_key(head.headers) if head.upgrade else None
        if key is not None:
            refuse_websocket(exchange, key, exc)
        else:
            exchange.fail(503, "pool_exhausted", "No backend is free; try again later.")
        return
    exchange.lease_task = None
    client = exchange.client
    if client.current is not exchange or client.transport is None \
            or client.transport.is_closing():
        lease.release()
        return
    exchange.lease = lease
    lease.on_revoke = lambda reason: client.abort(f"provision_{reason}")
    endpoint = exchange.endpoint = Endpoint(lease.host, lease.port,
                                            instance_id=lease.backend_id)
    client.server.pool.connect(lease.host, lease.port, endpoint.address, exchange.connected)


def refuse_websocket(exchange: Exchange, key: bytes, exc: PoolExhausted) -> None:
    """Complete the handshake only to close with ``exc.close_code`` (1013)."""
    client = exchange.client
    transport = client.transport
    if transport is None or transport.is_closing():
        return
    exchange.status = 503  # logged and counted as refused, though the wire says 101 + 1013
    exchange.response_started = True
    exchange.request_id = exchange.request_id or client.server.request_id()
    transport.write(refusal(key, exc.close_code, exc.close_reason,
                            b"X-Vcap-Request-Id: " + exchange.request_id + b"\r\n"))
    exchange.finish()
    client.exchange_done(exchange, True)
