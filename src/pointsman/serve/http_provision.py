"""HTTP routes whose upstream is ``kind = "provision"``: a backend per client connection.

The first request on a route of such an upstream leases a backend for the
client's connection; every later request of that kept-alive connection to the
same upstream goes to the same backend, and the backend is stopped when the
client connection ends (the client closes, the keep-alive timeout closes it,
or a WebSocket tunnel through it ends). A connection that reaches several
provision upstreams holds one lease on each. Such requests are never retried
on another backend. Upstream connections to the backend are kept alive in the
listener's pool like any other: it is keyed by address, and a leased backend's
address belongs to its lease alone, so they are reused only by that client
connection's requests.

When no backend comes within the pool's queue timeout, a plain request gets
503; a WebSocket upgrade gets the handshake completed and a close frame 1013
"try again later", because a browser's WebSocket sees a refused handshake only
as close code 1006.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pointsman.routing.table import Endpoint
from pointsman.serve.provision import Lease, ProvisionPool
from pointsman.upstream.provision import PoolExhausted
from pointsman.wire.websocket_refusal import refusal, websocket_key

if TYPE_CHECKING:
    from pointsman.serve.http1 import ClientConnection
    from pointsman.serve.http_exchange import Exchange

__all__ = ["connect_fresh", "lease_then_connect", "refuse_websocket", "release_leases",
           "use_provision"]


def use_provision(exchange: Exchange, provision: ProvisionPool) -> None:
    """Send ``exchange`` to its connection's backend, leasing one first if it has none."""
    leases = exchange.client.leases
    lease = leases.get(provision.name) if leases is not None else None
    if lease is not None and not lease.released:
        _connect(exchange, lease)
        return
    exchange.lease_task = exchange.client.server.loop.create_task(
        lease_then_connect(exchange, provision))


async def lease_then_connect(exchange: Exchange, provision: ProvisionPool) -> None:
    """Lease a backend for ``exchange``'s connection, then open an upstream connection to it."""
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
    if client not in client.server.connections or client.transport is None \
            or client.transport.is_closing():
        lease.release()  # the connection is over: nobody would release it later
        return
    if client.leases is None:
        client.leases = {}
    client.leases[provision.name] = lease
    lease.on_revoke = lambda reason: client.abort(f"provision_{reason}")
    lease.activity = lambda: lease.uses
    if client.current is not exchange:
        return  # the exchange was abandoned; the connection keeps the lease until it ends
    _connect(exchange, lease)


def _connect(exchange: Exchange, lease: Lease) -> None:
    """A kept-alive upstream connection to the lease's backend if one is idle, else a new one."""
    lease.uses += 1
    exchange.lease = lease
    endpoint = exchange.endpoint = Endpoint(lease.host, lease.port,
                                            instance_id=lease.backend_id)
    exchange.fields = b""  # a leased backend is no registered instance: no X-CF-* fields
    conn = exchange.client.server.pool.acquire(endpoint.address)
    if conn is not None:
        exchange.attach(conn)
    else:
        connect_fresh(exchange, lease)


def connect_fresh(exchange: Exchange, lease: Lease) -> None:
    """A new upstream connection to the lease's backend (a kept-alive one had closed)."""
    address = Endpoint(lease.host, lease.port).address
    exchange.client.server.pool.connect(lease.host, lease.port, address, exchange.connected)


def release_leases(client: ClientConnection) -> None:
    """The client connection ended: so do its backends."""
    leases, client.leases = client.leases, None
    if leases is not None:
        for lease in leases.values():
            lease.release()


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
