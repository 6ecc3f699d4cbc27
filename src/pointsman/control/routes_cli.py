"""``pointsman routes``: the admin API's routes and upstreams as a table for people.

It reads ``GET /routes``, ``GET /upstreams`` and ``GET /provision`` from the
leader (address and token from ``-c FILE``'s ``[admin]``, or
``--admin``/``--token``, or ``POINTSMAN_ADMIN_TOKEN``) and prints one line per
endpoint and one per provisioned backend, so containers and processes can be
watched as they come and go.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["AdminUnreachable", "fetch", "render_tables"]

TIMEOUT = 5.0


class AdminUnreachable(Exception):
    """The admin API did not answer, or refused us; the message says which."""


def fetch(base: str, path: str, token: str | None) -> Any:
    request = urllib.request.Request(base.rstrip("/") + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        raise AdminUnreachable(f"{base}{path}: HTTP {exc.code} {detail}") from None
    except (OSError, ValueError) as exc:
        raise AdminUnreachable(f"{base}{path}: {exc}") from None


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> list[str]:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        cells = [value.rjust(widths[i]) if i in numeric else value.ljust(widths[i])
                 for i, value in enumerate(values)]
        return "  ".join(cells).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *map(line, rows)]


def render_tables(routes: dict[str, list[dict[str, Any]]],
                  upstreams: dict[str, list[dict[str, Any]]],
                  provision: dict[str, dict[str, Any]] | None = None) -> str:
    out: list[str] = []
    route_rows = []
    for uri in sorted(routes):
        for endpoint in routes[uri]:
            expires = endpoint.get("expires_in")
            route_rows.append([uri, str(endpoint.get("address", "")),
                               str(endpoint.get("source", "")),
                               str(endpoint.get("app") or "-"),
                               "-" if expires is None else f"{expires:.0f}s",
                               "draining" if endpoint.get("draining") else "serving"])
    out.append(f"ROUTES ({len(routes)})")
    out += _table(["ROUTE", "ENDPOINT", "SOURCE", "APP", "EXPIRES", "STATE"], route_rows, {4}) \
        if route_rows else ["  (none)"]
    upstream_rows = []
    for name in sorted(upstreams):
        for endpoint in upstreams[name]:
            health = "draining" if endpoint.get("draining") else \
                "healthy" if endpoint.get("healthy") else "down"
            upstream_rows.append([name, str(endpoint.get("address", "")), health,
                                  str(endpoint.get("active", 0)), str(endpoint.get("total", 0)),
                                  str(endpoint.get("fails", 0))])
    out.append("")
    out.append(f"UPSTREAMS ({len(upstreams)})")
    out += _table(["UPSTREAM", "ENDPOINT", "HEALTH", "OPEN", "TOTAL", "FAILS"], upstream_rows,
                  {3, 4, 5}) if upstream_rows else ["  (none)"]
    if provision:
        out.append("")
        out += _provision_table(provision)
    return "\n".join(out) + "\n"


def _provision_table(provision: dict[str, dict[str, Any]]) -> list[str]:
    """One line per provisioned backend, after a count per pool and phase."""
    rows = []
    summary = []
    for name in sorted(provision):
        pool = provision[name]
        counts = pool.get("counts") or {}
        summary.append(f"  {name} ({pool.get('provider', '?')}): " + ", ".join(
            f"{counts.get(phase, 0)} {phase}" for phase in ("starting", "ready", "busy",
                                                            "stopping"))
            + f", {pool.get('waiting', 0)} waiting")
        for backend in pool.get("backends") or []:
            address = f"{backend.get('host')}:{backend.get('port')}" if backend.get("port") \
                else "-"
            leased = backend.get("leased_for")
            rows.append([name, str(backend.get("id", "")), str(backend.get("phase", "")),
                         address, str(backend.get("ref", ""))[:12] or "-",
                         f"{backend.get('age', 0):.1f}s",
                         "-" if leased is None else f"{leased:.1f}s"])
    out = [f"PROVISIONED ({sum(len(p.get('backends') or []) for p in provision.values())})",
           *summary]
    out += _table(["UPSTREAM", "BACKEND", "PHASE", "ADDRESS", "REF", "AGE", "LEASED"], rows,
                  {5, 6}) if rows else ["  (none)"]
    return out
