"""What every listener is handed by the process that runs it.

``serve`` must not import ``control``; the control layer builds a
``ServeContext`` and passes it down, so listeners log, find upstreams and
register their connections without knowing who runs them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pointsman.routing.table import TableHolder
from pointsman.serve.poller import Poller
from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.pool import Pool

__all__ = ["EventSink", "RecordSink", "Running", "ServeContext"]


class RecordSink(Protocol):
    """The access log as listeners see it: check ``enabled`` before building a record."""

    enabled: bool

    def write(self, record: dict[str, Any]) -> None: ...


class EventSink(Protocol):
    def wants(self, level: str) -> bool: ...

    def event(self, level: str, name: str, **fields: Any) -> None: ...


class Running(Protocol):
    """A started listener."""

    name: str

    @property
    def addresses(self) -> list[tuple[str, int]]: ...

    @property
    def active(self) -> int: ...

    def stop_accepting(self) -> None: ...

    async def drain(self, timeout: float) -> None:
        """Wait for open connections to end, up to ``timeout``; then cut the rest."""
        ...


@dataclass(slots=True)
class ServeContext:
    loop: asyncio.AbstractEventLoop
    poller: Poller
    access: RecordSink
    events: EventSink
    config_dir: Path = field(default_factory=Path)
    pools: dict[str, Pool] = field(default_factory=dict)
    provision: dict[str, ProvisionPool] = field(default_factory=dict)
    routes: TableHolder = field(default_factory=TableHolder)
    reuse_port: bool = True
    extras: dict[str, Any] = field(default_factory=dict)
