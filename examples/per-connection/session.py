"""A gateway service of which every WebSocket gets its own instance (one process each).

pointsman starts it per socket from the ``session`` provision upstream with
``{nats_url}`` and ``{instance_id}`` filled in; the instance announces itself
under that id, the gateway pins the socket that leased it, and the process is
stopped when the socket closes. Whatever it keeps in memory is that socket's
alone: here a history of what was typed.

    python session.py NATS_URL INSTANCE_ID
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pointsman.service import Context, NatsTransport, Router, Service

router = Router()
history: list[str] = []  # this process serves one socket: module state is its state


@router.public_bind("/session/run")
async def run(ctx: Context) -> dict[str, Any]:
    line = str(ctx.data or "")[:200]
    history.append(line)
    return {"output": f"$ {line}", "instance": service.instance, "pid": os.getpid(),
            "lines": len(history)}


@router.public_bind("/session/history")
async def show(ctx: Context) -> list[str]:
    return history


if __name__ == "__main__":
    service = Service("session", NatsTransport(sys.argv[1]), router, instance=sys.argv[2],
                      interval=1.0)
    service.run()
