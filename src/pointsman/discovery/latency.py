"""gorouter's ``route_registration_latency``: how old a registration is when it arrives.

A client may stamp ``endpoint_updated_at_ns`` (wall-clock nanoseconds) on a
``router.register``; gorouter uses it for this one metric and for nothing
else, in particular not to order updates. The histogram is plain integers,
updated per stamped message and turned into a metric family at scrape time.
"""

from __future__ import annotations

import bisect

__all__ = ["LATENCY_BUCKETS", "RegistrationLatency"]

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds in seconds; a last bucket (``+Inf``) takes the rest."""


class RegistrationLatency:
    """A fixed-bucket histogram of seconds between a stamp and its arrival."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def observe_stamp(self, updated_at_ns: int, now_ns: int) -> float:
        """Record the age of a message stamped ``updated_at_ns``; the seconds recorded.

        A stamp from the future (clocks disagree) counts as 0.
        """
        seconds = max(0, now_ns - updated_at_ns) / 1e9
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds
        return seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(upper bound, count)`` pairs, ``+Inf`` last, as Prometheus wants."""
        out = []
        running = 0
        for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out
