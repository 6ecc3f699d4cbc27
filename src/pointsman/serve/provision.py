"""The asyncio driver around the pool policy: starts, probes, grants and stops.

``PoolMachine`` (``upstream/provision.py``) decides; this module does. Every
input (a connection asks, a start finishes, a timer fires) is fed to the machine
with ``loop.time()``, and the actions it returns are carried out here: a task
per start or stop (tracked in a set, so shutdown can find them), a future per
waiting connection, one timer for the machine's next deadline.

What the serving code sees::

    lease = await pool.acquire(timeout)   # Lease(host, port, backend_id) or PoolExhausted
    ...connect to lease.host:lease.port and relay...
    lease.release()                       # the connection ended: stop and remove it

A lease may also be revoked (``max_lifetime``, ``max_idle``, shutdown): the
pool calls ``lease.on_revoke(reason)``, which the serving code sets to end its
connection; the connection's own ``release`` then stops the backend. For
``max_idle`` the serving code sets ``lease.activity`` to a function returning a
byte count that grows while data moves; the pool reads it only when an idle
deadline is due, so activity costs nothing per chunk.

Clean-up: ``open`` removes every backend labelled with this instance and
upstream before warming (leftovers of a crash), and ``close`` stops what it
started, then sweeps the labels again. Under a leader, each worker's pools
also label their backends with the worker (``pointsman.worker=<pid>``), so
the leader can remove exactly a crashed worker's backends
(``sweep_leftovers(config, worker=pid)``) while its siblings' keep serving.

Gateway service instances (probe ``kind = "announce"``) are ready when a
gateway that uses the pool saw them announce: the gateway calls
``announced(instance_id)`` and the start waiting for that id completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from pointsman.config import (
    Config,
    GatewayListener,
    ProcessProviderConfig,
    ProvisionUpstream,
    resolve_path,
)
from pointsman.upstream.providers import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    UPSTREAM_LABEL,
    WORKER_LABEL,
    Handle,
    Provider,
    ProviderError,
    make_provider,
)
from pointsman.upstream.providers.base import service_instance_id
from pointsman.upstream.provision import (
    Action,
    Grant,
    Phase,
    PoolExhausted,
    PoolMachine,
    PoolPolicy,
    Reject,
    Revoke,
    Start,
    Stop,
)

__all__ = ["Lease", "ProvisionPool", "build_pools", "default_instance", "sweep_leftovers"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
CLOSE_TIMEOUT = 15.0
CLOSE_POLL_INTERVAL = 0.1
MAX_NAME_PART = 24


class Events(Protocol):
    """The event log as the pool uses it (``control.logs.JsonLog`` fits)."""

    def event(self, level: str, name: str, **fields: Any) -> None: ...


class _NoEvents:
    def event(self, level: str, name: str, **fields: Any) -> None:
        return None


def default_instance(config_source: str) -> str:
    """A name for this pointsman that survives restarts: host name + config file path."""
    path = os.path.abspath(config_source) if config_source else "<none>"
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    return f"{socket.gethostname()}-{digest}"


def nats_url_for(config: Config, upstream: str) -> str:
    """The bus ``{nats_url}`` names for an upstream: that of the gateway using it."""
    for listener in config.listeners:
        if isinstance(listener, GatewayListener) and any(
                service.upstream == upstream for service in listener.services):
            return listener.nats_url
    if config.nats is not None and config.nats.servers:
        return ",".join(config.nats.servers)
    return DEFAULT_NATS_URL


def _fill_nats_url(template: str, url: str) -> str:
    return template.replace("{nats_url}", url.replace("{", "{{").replace("}", "}}"))


def build_pools(config: Config, events: Events | None = None,
                worker: str | None = None) -> dict[str, ProvisionPool]:
    """A pool (not yet opened) for every ``kind = "provision"`` upstream in ``config``.

    A process provider's relative ``cwd`` is read from the config file's folder;
    ``{nats_url}`` in a provider's command and env is filled here (the other
    fields per backend, by the provider). ``worker`` labels every backend with
    the worker process that owns it.
    """
    pools: dict[str, ProvisionPool] = {}
    for name, upstream in config.upstreams.items():
        if not isinstance(upstream, ProvisionUpstream):
            continue
        provider = upstream.provider
        if isinstance(provider, ProcessProviderConfig) and provider.cwd is not None:
            cwd = str(resolve_path(config, provider.cwd))
            provider = msgspec.structs.replace(provider, cwd=cwd)
        url = nats_url_for(config, name)
        command = provider.command
        provider = msgspec.structs.replace(
            provider, env={key: _fill_nats_url(value, url) for key, value in provider.env.items()},
            command=None if command is None else [_fill_nats_url(part, url) for part in command])
        upstream = msgspec.structs.replace(upstream, provider=provider)
        instance = upstream.instance or default_instance(config.source)
        pools[name] = ProvisionPool(name, upstream, instance=instance, events=events,
                                    worker=worker)
    return pools


async def sweep_leftovers(config: Config, events: Events | None = None,
                          worker: str | None = None) -> int:
    """Remove every backend labelled with this config's instances, warming nothing.

    The leader of a worker group calls this before it forks and after its last
    worker is gone: workers share one instance label, so a worker sweeping on
    its own would remove its siblings' live backends. With ``worker`` only that
    worker's backends go (the leader, when it reaps a crashed worker).
    """
    removed = 0
    for pool in build_pools(config, events, worker).values():
        try:
            removed += await pool.sweep()
        except ProviderError as exc:
            if events is not None:
                events.event("warning", "provision.sweep_failed", upstream=pool.name,
                             error=str(exc))
        finally:
            await pool.provider.close()
    return removed


def _name_part(text: str) -> str:
    """Something a container name accepts: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-_.")
    return cleaned[:MAX_NAME_PART] or "x"


class Lease:
    """One backend, leased to one connection; ``release`` exactly once when it ends."""

    __slots__ = ("_pool", "_released", "activity", "backend_id", "host", "on_revoke", "port",
                 "ref", "uses", "waited")

    @property
    def instance_id(self) -> str:
        """The gateway service instance id this backend was given (``{instance_id}``)."""
        return service_instance_id(self.backend_id)

    def __init__(self, pool: ProvisionPool, backend_id: str, handle: Handle,
                 waited: float) -> None:
        self._pool = pool
        self.backend_id = backend_id
        self.host = handle.host
        self.port = handle.port
        self.ref = handle.ref
        self.waited = waited
        self.on_revoke: Callable[[str], None] | None = None
        self.activity: Callable[[], int] | None = None
        self.uses = 0  # requests sent to it (HTTP keeps one lease per client connection)
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """The connection ended: the backend is stopped and removed (never reused)."""
        if not self._released:
            self._released = True
            self._pool._release(self)

    def touch(self) -> None:
        """Data moved on this connection (an alternative to ``activity``)."""
        self._pool._touch(self)

    def __repr__(self) -> str:
        return f"Lease({self.host!r}, {self.port}, {self.backend_id!r})"


class ProvisionPool:
    """A warm pool of per-connection backends for one ``kind = "provision"`` upstream."""

    def __init__(self, name: str, config: ProvisionUpstream, *, instance: str,
                 provider: Provider | None = None, events: Events | None = None,
                 worker: str | None = None) -> None:
        self.name = name
        self.config = config
        self.instance = instance
        self.provider = provider if provider is not None else make_provider(config.provider)
        self.events: Events = events if events is not None else _NoEvents()
        policy = PoolPolicy(
            warm=config.warm, max_live=config.max_live, max_starting=config.max_starting,
            max_queue=config.max_queue, queue_timeout=config.queue_timeout,
            max_lifetime=config.max_lifetime, max_idle=config.max_idle,
            backoff_initial=config.backoff_initial, backoff_max=config.backoff_max)
        prefix = f"pm-{_name_part(name)}-{secrets.token_hex(3)}"
        self.machine = PoolMachine(policy, prefix)
        self.labels = {MANAGED_LABEL: "1", INSTANCE_LABEL: instance, UPSTREAM_LABEL: name}
        if worker is not None:
            self.labels[WORKER_LABEL] = worker
        self.leftovers_removed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handles: dict[str, Handle] = {}
        self._leases: dict[str, Lease] = {}
        self._waiters: dict[int, asyncio.Future[Lease]] = {}
        self._next_waiter = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._starts: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._last_activity: dict[str, int] = {}
        self._announcements: dict[str, asyncio.Future[None]] = {}  # instance id -> seen

    # ------------------------------------------------------------ lifecycle
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def open(self, sweep: bool = True) -> None:
        """Remove this instance's leftovers of this upstream, then start warming.

        ``sweep=False`` is for a reload that replaces a running pool of the same
        name: the old pool's backends still serve connections and are not leftovers.
        """
        if sweep:
            try:
                self.leftovers_removed = await self.sweep()
            except ProviderError as exc:  # the engine may come back; starts will retry
                self.events.event("warning", "provision.sweep_failed", upstream=self.name,
                                  error=str(exc))
        self._apply(self.machine.tick(self.loop.time()))

    async def sweep(self) -> int:
        """Stop and remove every backend carrying this pool's labels that it does not own."""
        leftovers = await self.provider.list_leftovers(self.labels)
        owned = {handle.ref for handle in self._handles.values()}
        stale = [handle for handle in leftovers if handle.ref not in owned]
        results = await asyncio.gather(*(self.provider.stop(h) for h in stale),
                                       return_exceptions=True)
        for handle, result in zip(stale, results, strict=True):
            if isinstance(result, BaseException):
                self.events.event("warning", "provision.sweep_failed", upstream=self.name,
                                  ref=handle.ref, error=str(result))
        if stale:
            self.events.event("info", "provision.leftovers_removed", upstream=self.name,
                              instance=self.instance, count=len(stale))
        return len(stale)

    async def close(self, timeout: float = CLOSE_TIMEOUT, sweep: bool = True) -> None:
        """Refuse new connections, end leased ones, stop everything, sweep, release.

        ``sweep=False`` when a pool of the same name and instance replaces this one.
        """
        loop = self.loop
        self._apply(self.machine.close(loop.time()))
        # Starts in flight are left to finish (the closed machine stops them as soon
        # as they are ready): cancelling a create request does not stop the engine
        # from completing it, which would leave a container behind. Only past half
        # the timeout are starts cancelled and unreleased leases cut.
        deadline = loop.time() + timeout
        cut_at = deadline - timeout / 2
        while self._tasks or self._leases:
            now = loop.time()
            if now >= cut_at:
                for lease in list(self._leases.values()):
                    lease.release()
                for task in list(self._starts.values()):
                    task.cancel()
            if now >= deadline:
                break
            wait = min(deadline - now, CLOSE_POLL_INTERVAL)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=wait)
            else:
                await asyncio.sleep(wait)
        if self._timer is not None:
            self._timer.cancel()
        try:
            if sweep:
                await self.sweep()
        except ProviderError as exc:
            self.events.event("warning", "provision.sweep_failed", upstream=self.name,
                              error=str(exc))
        finally:
            await self.provider.close()

    # ------------------------------------------------------------- leasing
    async def acquire(self, timeout: float | None = None) -> Lease:
        """A backend for this connection alone, or ``PoolExhausted`` after ``timeout``."""
        loop = self.loop
        waiter = self._next_waiter = self._next_waiter + 1
        future: asyncio.Future[Lease] = loop.create_future()
        self._waiters[waiter] = future
        self._apply(self.machine.acquire(waiter, loop.time(), timeout))
        try:
            return await future
        except asyncio.CancelledError:
            # granted in the same turn the caller gave up: the backend was never used
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give_back(future.result())
            raise
        finally:
            if self._waiters.pop(waiter, None) is not None:  # cancelled while queued
                self._apply(self.machine.cancel(waiter, loop.time()))

    def _give_back(self, lease: Lease) -> None:
        lease._released = True
        self._leases.pop(lease.backend_id, None)
        self._apply(self.machine.give_back(lease.backend_id, self.loop.time()))

    def _release(self, lease: Lease) -> None:
        self._leases.pop(lease.backend_id, None)
        self._apply(self.machine.release(lease.backend_id, self.loop.time()))

    def _touch(self, lease: Lease) -> None:
        self.machine.touch(lease.backend_id, self.loop.time())

    # ------------------------------------------------------------- actions
    def _apply(self, actions: list[Action]) -> None:
        # A refill planned in the same breath as a grant waits ``refill_delay``: a
        # start costs a fork or an engine's CPU, and the connection that was just
        # granted should get its first bytes through before that work begins.
        delay = self.config.refill_delay if any(isinstance(a, Grant) for a in actions) else 0.0
        for action in actions:
            if isinstance(action, Grant):
                self._grant(action)
            elif isinstance(action, Start):
                self._spawn(self._run_start(action.backend_id, delay), action.backend_id)
            elif isinstance(action, Stop):
                handle = self._handles.pop(action.backend_id, None)
                self._spawn(self._run_stop(action.backend_id, handle, action.reason))
            elif isinstance(action, Reject):
                future = self._waiters.pop(action.waiter, None)
                if future is not None and not future.done():
                    future.set_exception(PoolExhausted(self.name, action.reason, action.waited))
            elif isinstance(action, Revoke):
                self._revoke(action)
        self._schedule()
        self._changed.set()
        self._changed = asyncio.Event()

    def _grant(self, action: Grant) -> None:
        future = self._waiters.pop(action.waiter, None)
        handle = self._handles[action.backend_id]
        if future is None or future.done():  # the waiter left just now: keep it warm
            self._apply(self.machine.give_back(action.backend_id, self.loop.time()))
            return
        lease = Lease(self, action.backend_id, handle, action.waited)
        self._leases[action.backend_id] = lease
        future.set_result(lease)

    def _revoke(self, action: Revoke) -> None:
        lease = self._leases.get(action.backend_id)
        if lease is None:
            return
        self.events.event("info", "provision.revoked", upstream=self.name,
                          backend=action.backend_id, reason=action.reason)
        if lease.on_revoke is not None:
            try:
                lease.on_revoke(action.reason)
                return
            except Exception as exc:
                self.events.event("error", "provision.revoke_failed", upstream=self.name,
                                  backend=action.backend_id, error=repr(exc))
        lease.release()

    def _spawn(self, coro: Any, start_id: str | None = None) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if start_id is not None:
            self._starts[start_id] = task
            task.add_done_callback(lambda _: self._starts.pop(start_id, None))

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self.machine.next_wakeup()
        if wake is not None:
            self._timer = self.loop.call_at(wake, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self.machine.policy.max_idle:
            for backend_id, lease in self._leases.items():
                if lease.activity is not None:
                    self._observe_activity(backend_id, lease.activity, now)
        self._apply(self.machine.tick(now))

    def _observe_activity(self, backend_id: str, activity: Callable[[], int],
                          now: float) -> None:
        value = activity()
        if self._last_activity.get(backend_id) != value:
            self._last_activity[backend_id] = value
            self.machine.touch(backend_id, now)

    def announced(self, instance_id: str) -> None:
        """A gateway saw this service instance announce itself: if it is ours, it is ready."""
        seen = self._announcements.get(instance_id)
        if seen is not None and not seen.done():
            seen.set_result(None)

    # --------------------------------------------------------------- tasks
    async def _run_start(self, backend_id: str, delay: float = 0.0) -> None:
        loop = self.loop
        if delay > 0:
            await asyncio.sleep(delay)
        began = loop.time()
        handle: Handle | None = None
        check = self.config.probe
        seen: asyncio.Future[None] | None = None
        if check.kind == "announce":  # waited for before the start: it may announce at once
            seen = loop.create_future()
            self._announcements[service_instance_id(backend_id)] = seen
        try:
            async with asyncio.timeout(self.config.start_timeout):
                handle = await self.provider.start(backend_id, self.labels)
                self._handles[backend_id] = handle
                while not await self.provider.probe(handle, check):
                    await asyncio.sleep(check.interval)
                while seen is not None and not seen.done() and not self.machine.closed:
                    # the provider's probe still runs: a backend that exits fails fast; a
                    # closed pool stops it at once (its gateway no longer listens)
                    await asyncio.wait((seen,), timeout=check.interval)
                    if not seen.done() and not await self.provider.probe(handle, check):
                        raise ProviderError("not_ready", "the backend stopped answering")
        except asyncio.CancelledError:
            if handle is not None:
                self._handles.pop(backend_id, None)
                with contextlib.suppress(ProviderError, OSError):
                    await asyncio.shield(self.provider.stop(handle))
            raise
        except ProviderError as exc:
            reason, detail = exc.reason, exc.detail
        except TimeoutError:
            reason = "probe_timeout" if handle is not None else "start_timeout"
            detail = f"not ready after {self.config.start_timeout}s"
        except Exception as exc:  # a provider bug must not stop the pool from refilling
            reason, detail = "error", repr(exc)
        else:
            self.events.event("debug", "provision.ready", upstream=self.name,
                              backend=backend_id, ref=handle.ref,
                              seconds=round(loop.time() - began, 4))
            self._apply(self.machine.started(backend_id, handle.host, handle.port, loop.time()))
            return
        finally:
            if seen is not None:
                self._announcements.pop(service_instance_id(backend_id), None)
        self.events.event("warning", "provision.start_failed", upstream=self.name,
                          backend=backend_id, reason=reason, detail=detail)
        self._apply(self.machine.start_failed(backend_id, reason, loop.time()))

    async def _run_stop(self, backend_id: str, handle: Handle | None, reason: str) -> None:
        if handle is not None:
            try:
                await self.provider.stop(handle)
            except (ProviderError, OSError) as exc:
                self.events.event("warning", "provision.stop_failed", upstream=self.name,
                                  backend=backend_id, error=str(exc))
        self._last_activity.pop(backend_id, None)
        self._apply(self.machine.stopped(backend_id, reason, self.loop.time()))

    # ---------------------------------------------------------------- views
    async def wait_until(self, predicate: Callable[[ProvisionPool], bool],
                         timeout: float) -> None:
        """Wait until ``predicate(pool)`` holds after some change (tests, benchmarks)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                await self._changed.wait()

    def count(self, phase: Phase) -> int:
        return self.machine.count(phase)

    def describe(self) -> dict[str, Any]:
        """The pool's state for the admin API."""
        state = self.machine.describe(self.loop.time())
        state.update(name=self.name, provider=self.provider.kind, instance=self.instance)
        refs = {backend_id: handle.ref for backend_id, handle in self._handles.items()}
        backends = state["backends"]
        assert isinstance(backends, list)
        for backend in backends:
            backend["ref"] = refs.get(backend["id"], "")
        return state
