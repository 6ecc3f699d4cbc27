"""The HTTP route table: host (exact or wildcard) plus path prefix to a pool.

A ``RouteTable`` is an immutable snapshot. Discovery sources build a new one
with ``with_changes`` and assign it to the one mutable cell, ``TableHolder``;
request handling reads ``holder.table`` once per request and never locks.

Layout, chosen so neither lookup nor a change costs time in the table's size:

* hosts are spread over ``SHARDS`` small dicts by ``hash(host)``; a change
  copies only the shards it touches (about ``len/SHARDS`` entries each), and
  every untouched shard and per-host entry is shared with the old snapshot;
* one host maps to a ``_Host``: a dict from path prefix (``""`` for the bare
  host, ``"/api"`` for ``host/api``) to its pool, and the deepest prefix's
  segment count, so a lookup does at most that many dict probes per host
  candidate (exact, then ``*.b.c``, ``*.c``), whatever the number of routes.

Keys follow gorouter's ``RouteKey``: lower-cased, anything from ``?`` dropped,
a trailing ``/`` trimmed. Paths match by whole segments: ``/foo`` matches
``/foo`` and ``/foo/bar`` but not ``/foobar``. Only pools with endpoints match,
so an emptied pool falls through to a shorter prefix or a wildcard; when
nothing with endpoints matches, ``lookup_empty`` (the cold path of a 404)
finds the empty pool, if any, that gorouter would answer 503 for (or 502, for
a route service whose endpoints are all drained, on a listener without route
services).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import msgspec

__all__ = ["Endpoint", "RoutePool", "RouteTable", "TableHolder", "route_key", "split_key"]

SHARDS = 256
"""Shard count: a change to one host copies one shard of about ``len / SHARDS`` hosts."""

_MASK = SHARDS - 1
_SERIALS = itertools.count(1)


def route_key(uri: str) -> str:
    """gorouter's RouteKey: lower-case, drop from ``?``, trim one trailing ``/``."""
    key = uri.lower()
    cut = key.find("?")
    if cut >= 0:
        key = key[:cut]
    return key.rstrip("/")


def split_key(key: str) -> tuple[str, str]:
    """``"host/a/b"`` -> ``("host", "/a/b")``; ``"host"`` -> ``("host", "")``."""
    cut = key.find("/")
    if cut < 0:
        return key, ""
    return key[:cut], key[cut:]


class Endpoint(msgspec.Struct, frozen=True, gc=False):
    """One backend instance, as a registration or the static config names it.

    A frozen ``msgspec.Struct`` rather than a frozen dataclass: one is made
    per registration (and a pool per changed route key) on the ingest path,
    where a frozen dataclass's ``__init__`` cost several times as much, and
    holding no cycles it need not be tracked by the cycle collector.
    """

    host: str
    port: int
    tls: bool = False
    app: str = ""
    instance_id: str = ""
    instance_index: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    server_cert_domain_san: str = ""
    route_service_url: str = ""
    zone: str = ""
    """The registration's ``availability_zone``: a listener may prefer its own zone's."""

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port``): the key live counters are kept under."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


class RoutePool(msgspec.Struct, frozen=True, gc=False):
    """What one route key maps to: its endpoints and how to choose among them.

    A pool with a ``static_root`` is answered from files under that folder
    instead of by endpoints. A pool with a ``route_service_url`` sends its
    requests through that service first (``serve.route_service``); a listener
    without route services refuses them.
    """

    key: str
    endpoints: tuple[Endpoint, ...]
    balance: str = "round_robin"
    static_root: str = ""
    route_service_url: str = ""

    @property
    def serves(self) -> bool:
        """Whether a request routed here can be answered (endpoints or files)."""
        return bool(self.endpoints or self.static_root)


class _Host:
    """Every path prefix registered under one host name. Never changed once built."""

    __slots__ = ("depth", "paths", "root")

    def __init__(self, paths: dict[str, RoutePool]) -> None:
        self.paths = paths
        root = paths.get("")
        self.root = root if root is not None and (root.endpoints or root.static_root) else None
        if len(paths) == 1:  # most hosts: one route key, often the bare host
            self.depth = next(iter(paths)).count("/")
        else:
            self.depth = max((p.count("/") for p in paths), default=0)

    def match(self, path: str) -> RoutePool | None:
        """Longest registered prefix of ``path`` (lower-cased, no query) with endpoints."""
        depth = self.depth
        if depth == 0:
            return self.root
        # Cut the path after ``depth`` segments: deeper parts cannot match.
        end = 0
        for _ in range(depth):
            end = path.find("/", end + 1)
            if end < 0:
                end = len(path)
                break
        probe = path[:end].rstrip("/")
        paths = self.paths
        while probe:
            pool = paths.get(probe)
            if pool is not None and pool.serves:
                return pool
            probe = probe[:probe.rfind("/")]
        return self.root

    def match_any(self, path: str) -> RoutePool | None:
        """Longest registered prefix of ``path``, with endpoints or not."""
        paths = self.paths
        probe = path.rstrip("/")
        while probe:
            pool = paths.get(probe)
            if pool is not None:
                return pool
            probe = probe[:probe.rfind("/")]
        return paths.get("")


_Shards = tuple[dict[str, _Host], ...]


class RouteTable:
    """An immutable snapshot of every route; see the module docstring for its layout."""

    __slots__ = ("_count", "_shards", "_wildcards", "serial", "version")

    def __init__(self, shards: _Shards, count: int, wildcards: int, version: int) -> None:
        self._shards = shards
        self._count = count
        self._wildcards = wildcards
        self.version = version
        self.serial = next(_SERIALS)
        """This snapshot's own number in the process, for what is derived from it and kept
        elsewhere: ``version`` may repeat, and a reference would keep the table alive."""

    @classmethod
    def empty(cls) -> RouteTable:
        return cls(tuple({} for _ in range(SHARDS)), 0, 0, 0)

    @classmethod
    def build(cls, pools: Iterable[RoutePool], version: int = 0) -> RouteTable:
        """A table of ``pools``; a key given twice keeps the last pool."""
        grouped: dict[str, dict[str, RoutePool]] = {}
        for pool in pools:
            host, path = split_key(pool.key)
            grouped.setdefault(host, {})[path] = pool
        shards: list[dict[str, _Host]] = [{} for _ in range(SHARDS)]
        count = wildcards = 0
        for host, paths in grouped.items():
            shards[hash(host) & _MASK][host] = _Host(paths)
            count += len(paths)
            if host.startswith("*."):
                wildcards += 1
        return cls(tuple(shards), count, wildcards, version)

    def with_changes(self, upserts: Iterable[RoutePool],
                     removed_keys: Iterable[str]) -> RouteTable:
        """A new snapshot with ``upserts`` put and ``removed_keys`` gone; version + 1.

        Only the shards and hosts named by the change are copied.
        """
        changes: dict[str, dict[str, RoutePool | None]] = {}
        for key in removed_keys:
            host, path = split_key(key)
            changes.setdefault(host, {})[path] = None
        for pool in upserts:
            host, path = split_key(pool.key)
            changes.setdefault(host, {})[path] = pool
        shards = list(self._shards)
        copied: set[int] = set()
        count, wildcards = self._count, self._wildcards
        for host, edits in changes.items():
            index = hash(host) & _MASK
            if index not in copied:
                shards[index] = dict(shards[index])
                copied.add(index)
            shard = shards[index]
            old = shard.get(host)
            paths: dict[str, RoutePool] = dict(old.paths) if old is not None else {}
            before = len(paths)
            for path, edit in edits.items():
                if edit is None:
                    paths.pop(path, None)
                else:
                    paths[path] = edit
            count += len(paths) - before
            if paths:
                shard[host] = _Host(paths)
            else:
                shard.pop(host, None)
            if host.startswith("*."):
                wildcards += (1 if paths else 0) - (1 if old is not None else 0)
        return RouteTable(tuple(shards), count, wildcards, self.version + 1)

    def lookup(self, host: str, path: str) -> RoutePool | None:
        """The pool for a request's Host (may carry ``:port``) and path (no query).

        Exact host first, then ``*.rest`` for each shorter suffix; within one
        host the longest matching path prefix with endpoints.
        """
        host = _bare_host(host)
        shards = self._shards
        entry = shards[hash(host) & _MASK].get(host)
        if entry is not None:
            if entry.depth == 0:
                if entry.root is not None:
                    return entry.root
            else:
                found = entry.match(path.lower())
                if found is not None:
                    return found
        if not self._wildcards:
            return None
        lowered = ""
        dot = host.find(".")
        while dot >= 0:
            pattern = "*" + host[dot:]
            entry = shards[hash(pattern) & _MASK].get(pattern)
            if entry is not None:
                if entry.depth and not lowered:
                    lowered = path.lower()
                found = entry.match(lowered) if entry.depth else entry.root
                if found is not None:
                    return found
            dot = host.find(".", dot + 1)
        return None

    def lookup_empty(self, host: str, path: str) -> RoutePool | None:
        """The pool without endpoints a request falls on when ``lookup`` found nothing.

        Only a registry that keeps emptied pools (``empty_pool_timeout``) leaves
        such pools in the table, plus the pools of route services; for the
        request they mean 503 (or 502), not 404. Same order as ``lookup``: the
        exact host, then each wildcard.
        """
        host = _bare_host(host)
        path = path.lower()
        shards = self._shards
        candidates = [host]
        dot = host.find(".")
        while dot >= 0 and self._wildcards:
            candidates.append("*" + host[dot:])
            dot = host.find(".", dot + 1)
        for name in candidates:
            entry = shards[hash(name) & _MASK].get(name)
            if entry is not None:
                found = entry.match_any(path)
                if found is not None and not found.serves:
                    return found
        return None

    def get(self, key: str) -> RoutePool | None:
        """The pool registered under exactly ``key`` (route_key form), with or without endpoints."""
        host, path = split_key(key)
        entry = self._shards[hash(host) & _MASK].get(host)
        return entry.paths.get(path) if entry is not None else None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[RoutePool]:
        for shard in self._shards:
            for entry in shard.values():
                yield from entry.paths.values()

    def __repr__(self) -> str:
        return f"<RouteTable version={self.version} routes={self._count}>"


def _bare_host(host: str) -> str:
    """Lower-case, without ``:port`` and without a trailing dot; ``[v6]`` keeps its brackets."""
    if host.startswith("["):
        end = host.find("]")
        host = host[:end + 1] if end > 0 else host
    else:
        cut = host.rfind(":")
        if cut >= 0:
            host = host[:cut]
    if host.endswith("."):
        host = host[:-1]
    return host.lower()


class TableHolder:
    """The one mutable cell: readers take ``.table`` per request, writers assign a snapshot."""

    __slots__ = ("table",)

    def __init__(self, table: RouteTable | None = None) -> None:
        self.table: RouteTable = table if table is not None else RouteTable.empty()
