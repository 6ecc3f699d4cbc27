"""A gateway service instance made to be provisioned, one per client socket.

    python provisioned_service.py NATS_URL INSTANCE_ID [SERVICE]

pointsman fills ``{nats_url}`` and ``{instance_id}`` in the command; the
instance announces itself under that id, which is how the gateway knows it is
ready and pins the socket that leased it. ``/whoami`` answers with the
instance id, the process id, how many messages this socket sent here and how
many sockets this instance serves (always one when provisioned).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pointsman.service import Context, NatsTransport, Router, Service

router = Router()


@router.use_open
async def opened(ctx: Context) -> None:
    ctx.state["count"] = 0


@router.public_bind("/whoami")
async def whoami(ctx: Context) -> dict[str, Any]:
    ctx.state["count"] = ctx.state.get("count", 0) + 1
    return {"instance": service.instance, "pid": os.getpid(), "count": ctx.state["count"],
            "sockets": service.connections}


if __name__ == "__main__":
    url, instance = sys.argv[1], sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else "term"
    service = Service(name, NatsTransport(url, name=f"{name}-{instance}"), router,
                      instance=instance, interval=0.5)
    service.run()
