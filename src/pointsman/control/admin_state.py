"""What operators changed through the admin API, kept across reloads and restarts.

Route registrations made with ``POST /routes`` and endpoints drained with
``POST /drain`` (of an ``[upstreams]`` pool or of a route key) live here, in
the leader, as plain data: every new worker (after a reload or a crash)
starts with them, and they are written to a JSON file after each change, so a
restart brings them back too.

The file is ``[process] state_file`` when set; otherwise one per config file
under ``$XDG_STATE_HOME/pointsman`` (``/var/lib/pointsman`` for root), named
after the config's path so two instances never share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import msgspec

from pointsman.wire.gorouter import RegistryMessage, encode_registration

__all__ = ["AdminState", "default_state_file", "route_entries"]


def default_state_file(config_path: str | None) -> Path | None:
    if not config_path:
        return None
    digest = hashlib.sha256(str(Path(config_path).resolve()).encode()).hexdigest()[:16]
    if os.geteuid() == 0:
        base = Path("/var/lib/pointsman")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        base = base / "pointsman"
    return base / f"{Path(config_path).stem}-{digest}.json"


class AdminState:
    """Admin-API routes keyed by ``(uri, endpoint)``, drained upstream and route endpoints."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.routes: dict[tuple[str, str], str] = {}
        self.drained: set[tuple[str, str]] = set()
        self.drained_routes: set[tuple[str, str]] = set()  # (route key, endpoint)
        self.error = ""

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            self.routes = {(item["uri"], item["endpoint"]): item["body"]
                           for item in data.get("routes", [])}
            self.drained = {(item["upstream"], item["endpoint"])
                            for item in data.get("drained", [])}
            self.drained_routes = {(item["route"], item["endpoint"])
                                   for item in data.get("drained_routes", [])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.error = f"{self.path}: {exc}"

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "routes": [{"uri": uri, "endpoint": endpoint, "body": body}
                       for (uri, endpoint), body in sorted(self.routes.items())],
            "drained": [{"upstream": upstream, "endpoint": endpoint}
                        for upstream, endpoint in sorted(self.drained)],
            "drained_routes": [{"route": route, "endpoint": endpoint}
                               for route, endpoint in sorted(self.drained_routes)],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(data, indent=1))
            temporary.replace(self.path)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            with contextlib.suppress(OSError):
                temporary.unlink()

    def registered(self, message: RegistryMessage) -> None:
        for key, body in route_entries(message):
            self.routes[key] = body
        self.save()

    def unregistered(self, message: RegistryMessage) -> None:
        for key, _body in route_entries(message):
            self.routes.pop(key, None)
        self.save()

    def drain(self, upstream: str, endpoint: str, on: bool) -> None:
        if on:
            self.drained.add((upstream, endpoint))
        else:
            self.drained.discard((upstream, endpoint))
        self.save()

    def drain_route(self, route: str, endpoint: str, on: bool) -> None:
        if on:
            self.drained_routes.add((route, endpoint))
        else:
            self.drained_routes.discard((route, endpoint))
        self.save()

    def bodies(self) -> list[str]:
        return list(self.routes.values())

    def describe(self) -> dict[str, Any]:
        return {"file": str(self.path) if self.path else None, "routes": len(self.routes),
                "drained": sorted(f"{u}/{e}" for u, e in self.drained),
                "drained_routes": sorted(f"{r} {e}" for r, e in self.drained_routes),
                "error": self.error}


def route_entries(message: RegistryMessage) -> list[tuple[tuple[str, str], str]]:
    """``message`` as one ``((uri, endpoint), body)`` per uri: how routes are kept."""
    endpoint = _endpoint(message)
    return [((uri, endpoint),
             encode_registration(msgspec.structs.replace(message, uris=(uri,))).decode())
            for uri in message.uris]


def _endpoint(message: RegistryMessage) -> str:
    host = message.host
    return f"[{host}]:{message.endpoint_port}" if ":" in host else \
        f"{host}:{message.endpoint_port}"
