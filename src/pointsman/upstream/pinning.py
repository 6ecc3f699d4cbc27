"""Socket pinning with least-connections choice, for the message gateway.

A client socket is pinned to one instance *per service*, so one socket can
talk to several services and each keeps its per-socket state. "Connections"
are the sockets this gateway has pinned to an instance; gateways do not share
counts. Ties go to the instance registered first, so choices are
reproducible. Pure bookkeeping: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PinIndex"]


class PinIndex:
    """Instances by service, sockets by instance, and each socket's pins."""

    __slots__ = ("_order", "_pins", "_service_of", "_sockets_of", "_ticket")

    def __init__(self) -> None:
        self._service_of: dict[str, str] = {}
        self._order: dict[str, int] = {}
        self._sockets_of: dict[str, set[str]] = {}
        self._pins: dict[str, dict[str, str]] = {}
        self._ticket = 0

    # -- instances ------------------------------------------------------------

    def add_instance(self, service: str, instance: str) -> bool:
        """Register an instance; ``False`` if it was already known."""
        if instance in self._service_of:
            return False
        self._service_of[instance] = service
        self._order[instance] = self._ticket
        self._ticket += 1
        self._sockets_of[instance] = set()
        return True

    def remove_instance(self, instance: str) -> set[str]:
        """Forget an instance; return the sockets that were pinned to it (now unpinned)."""
        service = self._service_of.pop(instance, None)
        if service is None:
            return set()
        del self._order[instance]
        sockets = self._sockets_of.pop(instance)
        for socket in sockets:
            pins = self._pins.get(socket)
            if pins is not None and pins.get(service) == instance:
                del pins[service]
                if not pins:
                    del self._pins[socket]
        return sockets

    def service_of(self, instance: str) -> str | None:
        return self._service_of.get(instance)

    def instances(self, service: str | None = None) -> list[str]:
        """Known instances (of one service), in registration order."""
        found = [i for i, s in self._service_of.items() if service is None or s == service]
        return sorted(found, key=self._order.__getitem__)

    def connections(self, instance: str) -> int:
        return len(self._sockets_of.get(instance, ()))

    # -- sockets --------------------------------------------------------------

    def pinned(self, socket: str, service: str) -> str | None:
        pins = self._pins.get(socket)
        return None if pins is None else pins.get(service)

    def pins_of(self, socket: str) -> dict[str, str]:
        """``{service: instance}`` for one socket (a copy)."""
        return dict(self._pins.get(socket, {}))

    def pin(self, socket: str, service: str, candidates: Iterable[str]) -> str | None:
        """The socket's instance for ``service``: its pin, else the least-connected candidate.

        Candidates that are unknown or belong to another service are ignored;
        ``None`` when none is left.
        """
        current = self.pinned(socket, service)
        if current is not None:
            return current
        best: str | None = None
        best_key = (0, 0)
        for instance in candidates:
            if self._service_of.get(instance) != service:
                continue
            key = (len(self._sockets_of[instance]), self._order[instance])
            if best is None or key < best_key:
                best, best_key = instance, key
        if best is None:
            return None
        self._pins.setdefault(socket, {})[service] = best
        self._sockets_of[best].add(socket)
        return best

    def unpin(self, socket: str, service: str) -> str | None:
        """Drop one pin; return the instance it pointed to."""
        pins = self._pins.get(socket)
        if pins is None:
            return None
        instance = pins.pop(service, None)
        if not pins:
            del self._pins[socket]
        if instance is not None:
            self._sockets_of[instance].discard(socket)
        return instance

    def release(self, socket: str) -> dict[str, str]:
        """Drop every pin of a closed socket; return ``{service: instance}`` it had."""
        pins = self._pins.pop(socket, {})
        for instance in pins.values():
            self._sockets_of[instance].discard(socket)
        return pins
