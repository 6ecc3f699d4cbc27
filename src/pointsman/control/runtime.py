"""One serving process: start the listeners a config names, reload, stop.

Each listener kind registers a starter in ``STARTERS``: an async function
``start(listener_config, ctx) -> Running`` that binds, starts accepting and
returns the running listener. Adding a protocol means writing its ``serve``
module and adding one line to that table; nothing else here changes.

Signals follow nginx: HUP reloads, QUIT stops gracefully (stop accepting, let
connections finish up to ``drain_timeout``), TERM and INT stop at once.
A reload validates the new file first; a broken one is logged and the
running listeners are left exactly as they were.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pointsman import __version__
from pointsman.config import (
    Config,
    ConfigError,
    GatewayListener,
    HttpListener,
    TcpListener,
    Upstream,
    load,
    parse_listen,
)
from pointsman.control import provision_metrics
from pointsman.control.admin import Admin
from pointsman.control.admin_routes import install_health, install_metrics, install_routes
from pointsman.control.counters import CountingSink
from pointsman.control.logs import JsonLog
from pointsman.control.provision_admin import install_provision
from pointsman.control.route_plane import RoutePlane
from pointsman.routing.loader import RouteLoadError
from pointsman.serve import gateway_server, http1, tcp
from pointsman.serve.context import Running, ServeContext
from pointsman.serve.poller import Poller
from pointsman.serve.provision import ProvisionPool
from pointsman.serve.provision import build_pools as build_provision_pools
from pointsman.upstream.pool import Pool

__all__ = ["SHARED_SOCKETS", "STARTERS", "Runtime", "run"]

Starter = Callable[[Any, ServeContext], Awaitable[Running]]

STARTERS: dict[type, Starter] = {
    TcpListener: tcp.start,
    HttpListener: http1.start,
    GatewayListener: gateway_server.start,
}

# Listener kinds that bind through ``ServeContext.listening_sockets``, with the
# socket type they listen on: a leader binds these once for all its workers.
# Kinds not listed bind in each worker with SO_REUSEPORT.
SHARED_SOCKETS: dict[type, int] = {
    TcpListener: socket.SOCK_STREAM,
    HttpListener: socket.SOCK_STREAM,
    GatewayListener: socket.SOCK_STREAM,
}

ACCESS_FLUSH_INTERVAL = 0.25
DEFAULT_DRAIN_TIMEOUT = 30.0


def build_pools(config: Config) -> dict[str, Pool]:
    return {
        name: Pool.from_addresses(name, (parse_listen(e) for e in upstream.endpoints),
                                  upstream.balance, upstream.max_fails, upstream.fail_timeout)
        for name, upstream in config.upstreams.items()
        if isinstance(upstream, Upstream)
    }


class Runtime:
    """The listeners of one config, and the loop-level chores around them."""

    def __init__(self, config: Config, config_path: str | None = None,
                 drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
                 inherited: dict[str, list[socket.socket]] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.drain_timeout = drain_timeout
        self.inherited = dict(inherited or {})
        self.events = JsonLog(config.logging.events, config.logging.level)
        self.access = JsonLog(config.logging.access, buffered=True,
                              fields=config.logging.access_fields)
        self.listeners: list[Running] = []
        self.counts = CountingSink(self.access)
        self.context: ServeContext | None = None
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._flusher: asyncio.TimerHandle | None = None
        # Under a leader the leader's events are the ones people read; a worker's own
        # ``worker_stopping``/``worker_stopped`` are detail.
        self.role = ""
        self.role_level = "info"
        self.routes = RoutePlane(config, self.events)
        # A request could not reach a TLS endpoint (route key, address): this process's
        # registry drops it; a worker tells its leader instead, who owns NATS routes.
        self.endpoint_failed: Callable[[str, str], object] = self.routes.endpoint_failed
        self.admin: Admin | None = None
        self.stopping = False
        # A worker leaves the admin API, and sweeping provisioned leftovers, to its leader.
        self.serve_admin = True
        self.sweeps = True
        self.provision_worker: str | None = None  # a worker labels its backends with this
        self.poller: Poller | None = None
        self.provision: dict[str, ProvisionPool] = {}

    def _context(self, config: Config) -> ServeContext:
        inherited, self.inherited = self.inherited, {}  # sockets a leader bound: used once
        loop = asyncio.get_running_loop()
        if self.poller is None:
            self.poller = Poller(loop)
        return ServeContext(loop=loop, poller=self.poller, access=self.counts,
                            events=self.events, pools=build_pools(config),
                            provision=dict(self.provision),
                            routes=self.routes.holder,
                            endpoint_failed=self.endpoint_failed,
                            config_dir=Path(config.source).parent if config.source else Path(),
                            inherited=inherited)

    async def _start_admin(self, config: Config) -> Admin | None:
        """The admin API, when ``[admin]`` is configured; endpoint groups are added here."""
        if config.admin is None:
            return None
        admin = Admin.from_config(config.admin, self.events)
        install_health(admin, lambda: not self.stopping)
        install_metrics(admin)
        async def describe() -> dict[str, Any]:
            return self.describe_provision()

        install_provision(admin, describe)
        if self.routes.driver is not None:
            install_routes(admin, self.routes.driver)
        await admin.start(*parse_listen(config.admin.listen))
        return admin

    async def _start_all(self, config: Config) -> list[Running]:
        ctx = self._context(config)
        self.context = ctx
        started: list[Running] = []
        try:
            for listener in config.listeners:
                starter = STARTERS[type(listener)]
                started.append(await starter(listener, ctx))
        except BaseException:
            for running in started:
                running.stop_accepting()
            raise
        return started

    async def _open_provision(self, config: Config,
                              first: bool) -> list[ProvisionPool]:
        """Open the config's provision pools; keep running ones whose config is unchanged.

        Returns the pools the new config no longer uses, to close once the old
        listeners have drained.
        """
        wanted = build_provision_pools(config, self.events, self.provision_worker)
        current, retired = dict(self.provision), []
        opened: list[ProvisionPool] = []
        try:
            for name, pool in wanted.items():
                old = current.get(name)
                if old is not None and old.config == pool.config \
                        and old.instance == pool.instance:
                    continue
                await pool.open(sweep=first and self.sweeps)
                opened.append(pool)
                if old is not None:
                    retired.append(old)
                current[name] = pool
        except BaseException:
            for pool in opened:
                await pool.close(sweep=False)
            raise
        retired.extend(pool for name, pool in current.items() if name not in wanted)
        self.provision = {name: pool for name, pool in current.items() if name in wanted}
        return retired

    async def start(self, announce: bool = True) -> None:
        """Start every listener; ``announce`` the ``ready`` event (a worker's leader does)."""
        provision_metrics.register_default(lambda: list(self.provision.values()))
        await self._open_provision(self.config, first=True)
        await self.routes.start()
        if self.serve_admin:
            self.admin = await self._start_admin(self.config)
        self.listeners = await self._start_all(self.config)
        self._schedule_flush()
        admin = [f"{host}:{port}" for host, port in self.admin.addresses] if self.admin else []
        if announce:
            self.events.event("info", "ready", pid=os.getpid(), version=__version__,
                              listeners=self.describe(), admin=admin)

    def describe(self) -> dict[str, list[str]]:
        return {running.name: [f"{host}:{port}" for host, port in running.addresses]
                for running in self.listeners}

    def _schedule_flush(self) -> None:
        self.access.flush()
        loop = asyncio.get_running_loop()
        self._flusher = loop.call_later(ACCESS_FLUSH_INTERVAL, self._schedule_flush)

    def install_signal_handlers(self, worker: bool = False) -> None:
        """nginx's signals; a ``worker`` leaves HUP to its leader, which starts new workers."""
        loop = asyncio.get_running_loop()
        actions: dict[signal.Signals, Callable[[], Awaitable[Any]]] = {
            signal.SIGQUIT: lambda: self.stop(graceful=True),
            signal.SIGTERM: lambda: self.stop(graceful=False),
            signal.SIGINT: lambda: self.stop(graceful=False),
            signal.SIGUSR1: self.reopen_logs,
        }
        if worker:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        else:
            actions[signal.SIGHUP] = self.reload
        for signum, action in actions.items():
            loop.add_signal_handler(signum, self._spawn, action)

    async def reopen_logs(self) -> None:
        """USR1, as nginx: logrotate moved the files; open them again by name."""
        self.access.reopen()
        self.events.reopen()

    def _spawn(self, action: Callable[[], Awaitable[Any]]) -> None:
        task = asyncio.ensure_future(action())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def reload(self) -> bool:
        """Re-read the file; start new listeners before old ones stop accepting.

        With SO_REUSEPORT the new sockets bind beside the old ones, so no
        connection is refused in between; old connections drain in the
        background.
        """
        if self.config_path is None:
            self.events.event("warning", "reload_ignored", reason="no config file")
            return False
        previous = dict(self.provision)
        try:
            config = load(self.config_path)
            retired = await self._open_provision(config, first=False)
            new = await self._start_all(config)
        except (ConfigError, RouteLoadError, OSError) as exc:
            for name, pool in self.provision.items():  # undo: the old pools stay in charge
                if previous.get(name) is not pool:
                    await pool.close(sweep=False)
            self.provision = previous
            self.events.event("error", "reload_refused", errors=str(exc).splitlines())
            return False
        old, self.listeners, self.config = self.listeners, new, config
        self.routes.reload(config)
        self.access.reopen()
        self.events.reopen()
        for running in old:
            running.stop_accepting()
        self.events.event("info", "reloaded", listeners=self.describe())
        await asyncio.gather(*(running.drain(self.drain_timeout) for running in old))
        await asyncio.gather(*(pool.close(sweep=False) for pool in retired))
        return True

    def describe_provision(self) -> dict[str, Any]:
        """Every provision pool's state, for the admin API."""
        return {name: pool.describe() for name, pool in self.provision.items()}

    async def close_provision(self) -> None:
        """Stop every provisioned backend and sweep the labels (at stop, or a failed start)."""
        pools, self.provision = list(self.provision.values()), {}
        await asyncio.gather(*(pool.close(sweep=self.sweeps) for pool in pools))

    async def stop(self, graceful: bool) -> None:
        if self.stopping:
            if not graceful:  # TERM during a graceful drain: cut what is left now
                await asyncio.gather(*(running.drain(0.0) for running in self.listeners))
            return
        self.stopping = True
        self.events.event(self.role_level, f"{self.role}stopping", graceful=graceful,
                          active=sum(running.active for running in self.listeners))
        for running in self.listeners:
            running.stop_accepting()
        timeout = self.drain_timeout if graceful else 0.0
        await asyncio.gather(*(running.drain(timeout) for running in self.listeners))
        await self.close_provision()
        if self.admin is not None:
            await self.admin.close()
        await self.routes.stop()
        if self._flusher is not None:
            self._flusher.cancel()
        self.access.close()
        self.events.event(self.role_level, f"{self.role}stopped")
        self.stopped.set()


async def _serve(config: Config, config_path: str | None) -> None:
    runtime = Runtime(config, config_path)
    # Handlers go in before "ready" is announced: a supervisor may signal at once,
    # and a TERM in between would kill the process without cleaning up.
    runtime.install_signal_handlers()
    try:
        await runtime.start()
    except (RouteLoadError, OSError) as exc:
        runtime.events.event("error", "start_failed", error=str(exc))
        await runtime.close_provision()
        raise SystemExit(1) from exc
    await runtime.stopped.wait()


def run(config: Config, config_path: str | None = None) -> int:
    """Serve ``config`` until a stop signal; the process's exit code."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(config, config_path))
    else:
        uvloop.run(_serve(config, config_path))
    return 0
