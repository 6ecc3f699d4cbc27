"""The contract a scenario module fulfils; the runner does everything else.

A scenario names its peers, starts its backend, and knows how to drive one
bounded load run at an address. Starting the peers side by side, interleaving
rounds, CPU accounting, ratios and reports are the runner's and reporting's
job, so a new scenario is one small module in ``bench.scenarios``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from bench.model import LoadResult, Target, Units
from bench.peerconf import Addr
from bench.peers import Peer
from bench.procs import ProcessSet

__all__ = ["Plan", "Scenario"]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long to load each peer, how many interleaved rounds, how long to warm up.

    A run during which other work took more than ``max_other_load_pct`` of
    the machine is taken again, at most ``retries`` times.
    """

    seconds: float
    rounds: int
    warmup_s: float
    retries: int = 1
    max_other_load_pct: float = 20.0


class Scenario(ABC):
    """One comparison: a backend, some peers in front of it, a load generator."""

    name: str
    title: str
    units: Units
    subject: str = "pointsman"
    reference: str = "haproxy"
    baseline: str = "direct"
    targets: tuple[Target, ...] = ()
    notes: tuple[str, ...] = ()
    full: Plan = Plan(seconds=5.0, rounds=3, warmup_s=1.0)
    quick: Plan = Plan(seconds=2.0, rounds=1, warmup_s=0.0, retries=0)

    @abstractmethod
    def peers(self) -> list[Peer]:
        """The peers to compare, the subject and the reference among them."""

    @abstractmethod
    def start_backend(self, procs: ProcessSet) -> Addr:
        """Start what the peers forward to and return its address once it listens."""

    @abstractmethod
    def load(self, addr: Addr, seconds: float) -> LoadResult:
        """One load run of about ``seconds`` against ``addr``."""

    def settings(self) -> dict[str, Any]:
        """Scenario knobs worth recording next to the results (connections, tools)."""
        return {}
