"""``GET /provision`` on the admin API: every provision pool's state.

For each ``kind = "provision"`` upstream: its policy, how many backends are
starting, ready, busy and stopping, the queue, the backoff, each backend (id,
engine reference, address, age, how long it has been leased) and the totals
behind the Prometheus metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pointsman.control.admin import Admin, Request, Response

__all__ = ["install_provision"]


def install_provision(admin: Admin, describe: Callable[[], dict[str, Any]]) -> None:
    async def provision(request: Request) -> Response:
        return Response.json(describe())

    admin.add("GET", "/provision", provision)
