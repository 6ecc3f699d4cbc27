"""The built-in questions workers answer for the dashboard (``GET /workers/NAME``).

``gateway``: for each WebSocket gateway listener, its open sockets and the
service instances that announced routes to it. ``provision``: the worker's
provision pools (the leader sums them for ``GET /provision``). Duck-typed on the running
listener (a ``gateway`` attribute with ``sockets`` and ``index``), so this
module needs nothing from the gateway's internals beyond what it shows.
"""

from __future__ import annotations

from typing import Any

from pointsman.control.runtime import Runtime
from pointsman.control.worker_ops import WORKER_CALLS

__all__ = ["gateway", "provision"]


def gateway(runtime: Runtime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for running in runtime.listeners:
        gateway = getattr(running, "gateway", None)
        if gateway is None:
            continue
        index = getattr(gateway, "index", None)
        records = index.records() if index is not None else []
        out[running.name] = {
            "sockets": len(getattr(gateway, "sockets", {})),
            "services": sorted({
                f"{record.service} {record.instance} ({', '.join(record.routes)})"
                for record in records}),
        }
    return out


def provision(runtime: Runtime) -> dict[str, Any]:
    """This worker's provision pools, as ``GET /provision`` shows them."""
    return runtime.describe_provision()


WORKER_CALLS["gateway"] = gateway
WORKER_CALLS["provision"] = provision
