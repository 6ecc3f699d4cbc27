"""``GET /provision`` on the admin API: every provision pool's state.

For each ``kind = "provision"`` upstream: its policy, how many backends are
starting, ready, busy and stopping, the queue, the backoff, each backend (id,
engine reference, address, age, how long it has been leased) and the totals
behind the Prometheus metrics. Under a leader, every worker keeps pools of its
own; the leader asks each and sums them (``workers`` says how many answered).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from pointsman.control.admin import Admin, Request, Response

__all__ = ["install_provision", "merge_worker_states"]

_SUMMED = ("counts", "totals", "waiting", "consecutive_failures")


def install_provision(admin: Admin, describe: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    async def provision(request: Request) -> Response:
        return Response.json(await describe())

    admin.add("GET", "/provision", provision)


def merge_worker_states(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One state per upstream: numbers summed, backends listed together."""
    merged: dict[str, Any] = {}
    for reply in replies:
        for name, state in reply.items():
            into = merged.get(name)
            if into is None:
                merged[name] = copy.deepcopy(state) | {"workers": 1}
                continue
            into["workers"] += 1
            into["backends"] = into["backends"] + state["backends"]
            for key in _SUMMED:
                into[key] = _add(into[key], state[key])
    return merged


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, dict) and isinstance(right, dict):
        return {key: _add(left.get(key, 0), right.get(key, 0)) for key in left | right}
    return left + right
