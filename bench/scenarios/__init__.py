"""The scenarios, one module each; each module exposes ``SCENARIO``.

Adding a scenario is adding a module here and a line to ``SCENARIOS``.
"""

from __future__ import annotations

from bench.scenario import Scenario
from bench.scenarios import (
    gateway,
    http,
    provision,
    registry,
    tcp_bulk,
    tcp_short,
    workers,
)

__all__ = ["DEFAULT", "SCENARIOS"]

SCENARIOS: dict[str, Scenario] = {
    module.SCENARIO.name: module.SCENARIO
    for module in (tcp_bulk, tcp_short, http, registry, workers)
}
SCENARIOS.update({s.name: s for s in (gateway.GATEWAY_JSON, gateway.GATEWAY_MSGPACK,
                                      http.UNIQUE)})
# per-connection backends: one module, a scenario per provider and kind of run
SCENARIOS.update({scenario.name: scenario for scenario in provision.SCENARIOS})

# What a bare `python -m bench` runs: the scenarios whose subject exists.
DEFAULT = ("tcp_bulk", "tcp_short")
