"""The TOML configuration: typed structs, and errors a person can act on.

The file is parsed with ``tomllib`` and converted section by section with
msgspec, so one bad listener does not hide the errors in the next one: every
error names the file, the key path (``listeners[1].limits.buffer``), the line
where that key sits, and what was expected. Unknown keys are errors.

Listener kinds form a tagged union on ``protocol``; each subsystem adds its own
struct here and nowhere else.
"""

from __future__ import annotations

import copy
import grp
import ipaddress
import pwd
import re
import ssl
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "AdminConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "DockerProviderConfig",
    "GatewayLimits",
    "GatewayListener",
    "GatewayService",
    "HttpBackends",
    "HttpLimits",
    "HttpListener",
    "HttpRoute",
    "HttpRouteServices",
    "Limits",
    "LoggingConfig",
    "NatsConfig",
    "ProbeConfig",
    "ProcessConfig",
    "ProcessProviderConfig",
    "ProvisionUpstream",
    "RegistryConfig",
    "RouteConfig",
    "TcpListener",
    "Upstream",
    "UpstreamConfig",
    "load",
    "parse_listen",
    "parse_size",
]

Balance = Literal["round_robin", "least_conn", "hash"]
ProxyProtocolVersion = Literal["off", "v1", "v2"]


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every config struct refuses keys it does not know."""


class Limits(Base):
    """Timeouts in seconds and sizes in bytes for one listener."""

    buffer: int = 64 * 1024
    decision_timeout: float = 10.0
    connect_timeout: float = 5.0
    idle_timeout: float = 300.0
    max_connections: int = 10_000


class TcpListener(Base, tag="tcp", tag_field="protocol"):
    """A content-aware TCP listener (ProxyMachine).

    Exactly one of ``route`` (a Python file, or ``module:function``) and
    ``upstream`` (a configured pool) decides where connections go.
    """

    name: str
    listen: str
    route: str | None = None
    upstream: str | None = None
    accept_proxy_protocol: bool = False
    send_proxy_protocol: ProxyProtocolVersion = "off"
    limits: Limits = msgspec.field(default_factory=Limits)


class HttpLimits(Base):
    """Sizes in bytes and timeouts in seconds for one HTTP listener.

    ``max_body_bytes`` 0 means no limit (bodies are streamed, never held);
    ``upstream_max_connections`` 0 means no cap per endpoint.
    """

    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    tunnel_idle_timeout: float = 300.0
    max_connections: int = 10_000
    upstream_pool_size: int = 64
    upstream_max_connections: int = 0


class HttpRoute(Base):
    """A static route: ``host`` (exact or ``*.suffix``), optional ``path`` prefix, a target.

    Exactly one of ``upstream`` (a configured pool's name), ``endpoints``, and
    ``root`` (a folder whose files answer the route, relative to the config file).
    """

    host: str
    path: str = ""
    upstream: str | None = None
    endpoints: list[str] = msgspec.field(default_factory=list)
    root: str | None = None
    balance: Balance = "round_robin"
    tls: bool = False
    server_name: str = ""


class HttpBackends(Base):
    """How an HTTP listener speaks TLS to backends that want it (gorouter's ``backends``).

    ``ca_file``: PEM certificates trusted for backend certificates, on top of
    the system's (gorouter's ``ca_certs``). ``cert_file`` and ``key_file``: the
    client certificate presented to backends that ask for one (mTLS; gorouter's
    ``backends.cert_chain`` and ``private_key``). Paths are relative to the file.

    ``availability_zone`` is this router's zone (gorouter's ``zone``); with
    ``az_preference = "locally-optimistic"`` (gorouter's
    ``balancing_algorithm_az_preference``) a request's first attempt goes to an
    endpoint registered in that zone when one can take it, and retries to any.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    availability_zone: str = ""
    az_preference: Literal["none", "locally-optimistic"] = "none"


class HttpRouteServices(Base):
    """Route services, as gorouter calls them (its ``route_services_*`` settings).

    A ``secret`` turns them on: a request to a route registered with a
    ``route_service_url`` goes first to that service, with a signature only
    routers sharing the secret can make, and comes back through a router to
    the app. Without it such requests get 502 ``route_service_unsupported``.
    ``secret_decrypt_only`` is the previous secret while it is rotated out
    (signatures made with it are still accepted). ``timeout`` is how many
    seconds a signature stays valid; ``recommend_https`` makes the forwarded
    URL ``https``; ``max_attempts`` bounds the tries to reach the service
    (a request is tried at most four times in all, as any other).
    With ``hairpinning``, a service whose URL is one of this router's own
    routes is reached through that route's endpoints instead of leaving the
    router; ``hairpinning_allowlist`` (``host`` or ``*.domain``), when not
    empty, limits that to those hosts.
    """

    secret: str = ""
    secret_decrypt_only: str = ""
    timeout: float = 60.0
    recommend_https: bool = True
    max_attempts: int = 3
    hairpinning: bool = True
    hairpinning_allowlist: list[str] = msgspec.field(default_factory=list)


class HttpListener(Base, tag="http", tag_field="protocol"):
    """An HTTP/1.1 reverse proxy routing by host and path (gorouter's data path)."""

    name: str
    listen: str
    routes: list[HttpRoute] = msgspec.field(default_factory=list)
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    sticky_cookies: list[str] = msgspec.field(default_factory=lambda: ["JSESSIONID"])
    connect_allow: list[str] = msgspec.field(default_factory=list)
    forwarded_proto: str = "http"
    limits: HttpLimits = msgspec.field(default_factory=HttpLimits)
    backends: HttpBackends = msgspec.field(default_factory=HttpBackends)
    route_services: HttpRouteServices = msgspec.field(default_factory=HttpRouteServices)


class GatewayLimits(Limits):
    """Limits of a message gateway listener, on top of the common ones.

    ``max_message_size``: larger client messages close the socket with 1009;
    ``queue_bytes``: bytes waiting to be written to one slow client before it
    is closed with 1008; ``max_inflight``: unacked deliveries per socket before
    reading from it pauses; ``delivery_timeout``: seconds an instance has to
    ack a delivery before it is dropped.
    """

    max_message_size: int = 1024 * 1024
    queue_bytes: int = 1024 * 1024
    max_inflight: int = 256
    delivery_timeout: float = 5.0


class GatewayService(Base):
    """A gateway service whose instances are provisioned, one per client socket.

    ``upstream`` names a ``kind = "provision"`` upstream whose backends are
    instances of service ``name`` (SDK services given ``{instance_id}`` and
    ``{nats_url}``). Each socket leases one when it opens, is pinned to it for
    that service, and its end stops it.
    """

    name: str
    upstream: str


class GatewayListener(Base, tag="gateway", tag_field="protocol"):
    """A WebSocket message gateway: envelopes routed by path to announced services.

    ``gateway_name`` is what services list in their ``gateway_names``;
    ``path`` is where the WebSocket is accepted; plain GETs elsewhere are
    served from ``static`` (a folder, relative to this file) when set.
    ``services`` are provisioned per socket (``GatewayService``).
    """

    name: str
    listen: str
    encoding: Literal["json", "msgpack", "protobuf"] = "json"
    gateway_name: str = "gateway"
    nats_url: str = "nats://127.0.0.1:4222"
    path: str = "/ws"
    static: str | None = None
    announce_interval: float = 2.0
    services: list[GatewayService] = msgspec.field(default_factory=list)
    limits: GatewayLimits = msgspec.field(default_factory=GatewayLimits)


Listener = TcpListener | HttpListener | GatewayListener


class Upstream(Base, tag="static", tag_field="kind"):
    """A static pool of endpoints and how to choose between them (``kind = "static"``,
    the default when ``kind`` is absent)."""

    endpoints: list[str]
    balance: Balance = "round_robin"
    max_fails: int = 1
    fail_timeout: float = 10.0


class ProbeConfig(Base):
    """How a provisioned backend shows it is ready: a TCP connect, or ``GET path`` -> 2xx.

    Each attempt gets ``timeout`` seconds; attempts repeat every ``interval``
    seconds until the upstream's ``start_timeout``. ``announce``: a gateway
    service instance is ready once a gateway using the upstream saw it announce
    itself (the provider only checks it is still running).
    """

    kind: Literal["tcp", "http", "announce"] = "tcp"
    path: str = "/"
    timeout: float = 1.0
    interval: float = 0.05


class DockerProviderConfig(Base, tag="docker", tag_field="kind"):
    """One container per connection, through the Docker Engine API (Docker or podman).

    ``url`` is ``unix:///path/docker.sock`` or ``tcp://host:port``. ``port`` is the
    port the app listens on inside the container. ``address = "published"``
    publishes it on ``publish_host`` at a random port; ``"container"`` connects to
    the container's own IP. With ``network_mode = "host"`` each container gets a
    free host port: ``{port}`` in ``command`` and ``env`` is replaced by it.
    ``memory`` is bytes or a size like ``"256m"``; ``cpus`` a fraction of cores.
    ``api_version`` is fixed by default: ``"auto"`` asks the engine, which costs
    podman over half a second.
    """

    image: str
    url: str = "unix:///var/run/docker.sock"
    api_version: str = "v1.41"
    command: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    port: int = 0
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    memory: int | str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network_mode: str = ""
    address: Literal["published", "container"] = "published"
    publish_host: str = "127.0.0.1"
    mounts: list[str] = msgspec.field(default_factory=list)
    ulimits: dict[str, int] = msgspec.field(default_factory=dict)
    user: str = ""
    stop_grace: float = 0.0
    pull: Literal["missing", "never"] = "missing"


class ProcessProviderConfig(Base, tag="process", tag_field="kind"):
    """One process per connection, for machines without containers.

    ``{port}`` (a free port), ``{backend}`` (the backend id), ``{instance_id}``
    (a gateway service instance id derived from it) and ``{nats_url}`` (the bus
    of the gateway using the upstream) are filled in ``command`` and ``env``.
    Stopping sends SIGTERM to the process group, then SIGKILL after ``grace``
    seconds. ``output`` is ``discard`` or ``inherit``.
    """

    command: list[str]
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    host: str = "127.0.0.1"
    grace: float = 5.0
    output: Literal["discard", "inherit"] = "discard"


class ProvisionUpstream(Base, tag="provision", tag_field="kind"):
    """A fresh backend per connection (soh-router), from a warm pool.

    Each connection takes one READY backend for itself; when it ends, the
    backend is stopped and removed. ``warm`` spares are kept started; at most
    ``max_live`` exist (starting, ready or busy). A connection that finds none
    ready waits up to ``queue_timeout`` seconds in a FIFO queue of at most
    ``max_queue``, then is refused (503, WebSocket close 1013, or a TCP close).
    ``max_lifetime`` and ``max_idle`` (seconds, 0 = unlimited) end a backend's
    connection. Failed starts back off from ``backoff_initial`` doubling to
    ``backoff_max``. A spare taken by a connection is replaced ``refill_delay``
    seconds later, so the start's work does not slow that connection's first
    bytes. ``instance`` names this pointsman in backend labels (default:
    derived from the host name and the config file path, so it is stable across
    restarts and clean-up after a crash finds the leftovers).
    """

    provider: DockerProviderConfig | ProcessProviderConfig
    warm: int = 1
    max_live: int = 16
    max_starting: int = 2
    max_queue: int = 1024
    queue_timeout: float = 10.0
    start_timeout: float = 30.0
    max_lifetime: float = 0.0
    max_idle: float = 0.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    refill_delay: float = 0.05
    instance: str = ""
    probe: ProbeConfig = msgspec.field(default_factory=ProbeConfig)


UpstreamConfig = Upstream | ProvisionUpstream


class LoggingConfig(Base):
    """Where JSON-lines records go: ``stdout``, ``stderr``, a file path, or ``off``."""

    access: str = "stdout"
    events: str = "stderr"
    level: Literal["debug", "info", "warning", "error"] = "info"
    # Keys kept in each access record, in this order; empty keeps every key.
    access_fields: list[str] = msgspec.field(default_factory=list)


MAX_WORKERS = 1024


class ProcessConfig(Base):
    """The leader and its workers.

    ``workers = "auto"`` starts one worker per core the process may run on.
    ``drain_timeout`` bounds how long a graceful quit or a reload lets open
    connections finish before cutting them. ``pidfile`` is where the leader
    writes its pid (``pointsman reload|quit|stop`` read it). ``state_file``
    keeps admin-API route changes and drained endpoints across restarts.
    ``user`` (and ``group``, else the user's own) is who workers run as, as
    nginx's ``user``: the leader keeps its privileges to bind and reload.
    """

    workers: Annotated[int, msgspec.Meta(ge=1, le=MAX_WORKERS)] | Literal["auto"] = 1
    drain_timeout: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    pidfile: str | None = None
    ready_timeout: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    state_file: str | None = None
    user: str | None = None
    group: str | None = None
class NatsConfig(Base):
    """The NATS cluster that gorouter-style clients register routes on.

    Present means "use it": the route registry subscribes to
    ``router.register``/``router.unregister`` on these servers.
    ``credentials`` is a ``.creds`` file (JWT + nkey seed), relative to this file.
    """

    servers: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    name: str = "pointsman"
    credentials: str | None = None
    # The JetStream KV bucket where admin-API routes are kept for every router on
    # this cluster (created when missing); "" keeps them in the local file only.
    routes_bucket: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*$")] = \
        "pointsman_routes"


class RegistryConfig(Base):
    """gorouter's registration timing, in seconds (its defaults).

    ``prune_threshold`` is gorouter's ``droplet_stale_threshold`` and
    ``minimum_register_interval`` its ``start_response_delay_interval``; both are
    announced in ``router.start``.

    ``routing_table_sharding_mode`` decides which registrations this router
    takes, by their ``isolation_segment`` (gorouter's ``endpointInRouterShard``):
    ``all`` every one, ``segments`` only those in ``isolation_segments``,
    ``shared-and-segments`` those plus the ones with no segment.

    With ``empty_pool_response_code_503`` and an ``empty_pool_timeout`` above 0,
    a route whose last endpoint went away answers 503 ``no_endpoints`` for that
    many seconds before it is deleted (then 404); otherwise it is deleted at once.
    """

    prune_threshold: float = 120.0
    prune_interval: float = 30.0
    minimum_register_interval: float = 5.0
    suspend_pruning_if_nats_unavailable: bool = True
    routing_table_sharding_mode: Literal["all", "segments", "shared-and-segments"] = "all"
    isolation_segments: list[str] = msgspec.field(default_factory=list)
    empty_pool_response_code_503: bool = False
    empty_pool_timeout: float = 0.0


class AdminConfig(Base):
    """The admin HTTP API. ``token`` falls back to ``POINTSMAN_ADMIN_TOKEN``.

    ``status_user`` and ``status_password`` (gorouter's ``status.user`` and
    ``status.pass``) also let HTTP Basic auth read: GET and HEAD only, so
    gorouter tooling's ``curl http://user:pass@host:port/routes`` works while
    changes still need the token.
    """

    listen: str = "127.0.0.1:9901"
    token: str | None = None
    status_user: str | None = None
    status_password: str | None = None


class RouteConfig(Base):
    """A route from the file: never pruned, changed only by a reload.

    ``uris`` are gorouter route keys (``host`` or ``host/path``, ``*.`` wildcards);
    ``endpoints`` are ``host:port``. ``tls`` means the endpoints speak TLS;
    their certificates must name ``server_name`` (the host when empty).
    """

    uris: list[str]
    endpoints: list[str]
    balance: Literal["round_robin", "least_conn"] = "round_robin"
    tls: bool = False
    server_name: str = ""
    app: str = ""
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class Config(Base):
    """The whole file once every section has converted."""

    listeners: list[Listener] = msgspec.field(default_factory=list)
    upstreams: dict[str, UpstreamConfig] = msgspec.field(default_factory=dict)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    process: ProcessConfig = msgspec.field(default_factory=ProcessConfig)
    nats: NatsConfig | None = None
    registry: RegistryConfig = msgspec.field(default_factory=RegistryConfig)
    admin: AdminConfig | None = None
    routes: list[RouteConfig] = msgspec.field(default_factory=list)
    source: str = ""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in one place of one file."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """The file cannot be used; ``issues`` lists every reason found."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def parse_listen(value: str) -> tuple[str, int]:
    """Read ``host:port``, ``[v6]:port`` or ``:port``; raise ``ValueError`` otherwise."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected 'host:port', got {value!r}")
    port = int(port_text)
    if not 0 <= port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", port


def load(path: str | Path) -> Config:
    """Read, convert and check a config file, or raise ``ConfigError`` with every issue."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, "", f"cannot read file: {exc.strerror}")]) from exc
    return loads(text, file)


def loads(text: str, file: str = "<string>") -> Config:
    """Convert TOML text; ``file`` names it in errors and anchors relative paths."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise ConfigError([ConfigIssue(file, "", f"not valid TOML: {exc}", line)]) from exc
    locator = _KeyLocator(text)
    issues: list[ConfigIssue] = []
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        kind = _SECTION_TYPES.get(key)
        if kind is None:
            expected = ", ".join(sorted(_SECTION_TYPES))
            issues.append(ConfigIssue(file, key, f"unknown section; expected one of {expected}",
                                      locator.line(key)))
            continue
        sections[key] = _convert_section(key, value, kind, file, locator, issues)
    if issues:
        raise ConfigError(issues)
    config = Config(**sections, source=file)
    issues.extend(_check(config, file, locator))
    if issues:
        raise ConfigError(issues)
    return config


_SECTION_TYPES: dict[str, Any] = {
    "listeners": Listener,
    "upstreams": UpstreamConfig,
    "logging": LoggingConfig,
    "process": ProcessConfig,
    "nats": NatsConfig,
    "registry": RegistryConfig,
    "admin": AdminConfig,
    "routes": RouteConfig,
}


def _convert_section(key: str, value: Any, kind: Any, file: str, locator: _KeyLocator,
                     issues: list[ConfigIssue]) -> Any:
    """Convert one top-level section item by item so each bad item is reported."""
    if key == "listeners":
        if not isinstance(value, list):
            issues.append(ConfigIssue(file, key, "expected an array of tables ([[listeners]])",
                                      locator.line(key)))
            return []
        return [_convert(f"{key}[{i}]", item, kind, file, locator, issues)
                for i, item in enumerate(value)]
    if key == "routes":
        if not isinstance(value, list):
            issues.append(ConfigIssue(file, key, "expected an array of tables ([[routes]])",
                                      locator.line(key)))
            return []
        return [_convert(f"{key}[{i}]", item, kind, file, locator, issues)
                for i, item in enumerate(value)]
    if key == "upstreams":
        if not isinstance(value, dict):
            issues.append(ConfigIssue(file, key, "expected a table of [upstreams.NAME]",
                                      locator.line(key)))
            return {}
        return {name: _convert(f"{key}.{name}", _default_kind(item), kind, file, locator, issues)
                for name, item in value.items()}
    return _convert(key, value, kind, file, locator, issues)


def _default_kind(item: Any) -> Any:
    """``[upstreams.NAME]`` without ``kind`` is a static pool (files from before the union)."""
    if isinstance(item, dict) and "kind" not in item:
        return {"kind": "static", **item}
    return item


def _convert(prefix: str, value: Any, kind: Any, file: str, locator: _KeyLocator,
             issues: list[ConfigIssue]) -> Any:
    """Convert one item; on failure drop the offending key and retry, to find every error."""
    value = copy.deepcopy(value)
    for _ in range(_MAX_ISSUES_PER_ITEM):
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            sub, message = _split_validation_error(str(exc))
            path = prefix + sub
            issues.append(ConfigIssue(file, path, message, locator.line(path)))
            if sub.rpartition(".")[2] in _TAG_FIELDS or not _drop(value, sub):
                return None  # without its tag an item cannot be read any further
    return None


_MAX_ISSUES_PER_ITEM = 20
_TAG_FIELDS = frozenset({"protocol", "kind"})


def _split_validation_error(text: str) -> tuple[str, str]:
    """msgspec says "Expected `int`, got `str` - at `$.limits.buffer`"; split and reword it."""
    message, _, where = text.partition(" - at `$")
    sub = where.rstrip("`")
    missing = re.search(r"missing required field `(\w+)`", message)
    unknown = re.search(r"unknown field `(\w+)`", message)
    if missing:
        return f"{sub}.{missing[1]}", "required key is missing"
    if unknown:
        return f"{sub}.{unknown[1]}", "unknown key"
    if message.startswith("Invalid value") and sub.endswith(".protocol"):
        kinds = ", ".join(sorted(_listener_tags()))
        return sub, f"unknown protocol {message.split(' ', 2)[2]}; expected one of {kinds}"
    if message.startswith("Invalid value") and sub.endswith(".kind"):
        return sub, f"unknown kind {message.split(' ', 2)[2]}"
    message = message.replace("`", "'")
    if message.startswith("Expected"):
        message = "expected" + message[len("Expected"):]
    return sub, message


def _listener_tags() -> list[str]:
    kinds: tuple[Any, ...] = getattr(Listener, "__args__", (Listener,))
    return [str(kind.__struct_config__.tag) for kind in kinds]


def _drop(value: Any, sub: str) -> bool:
    """Remove the key at ``.a.b[2].c`` from ``value`` so conversion can go on past it."""
    steps = re.findall(r"\.([^.\[]+)|\[(\d+)\]", sub)
    if not steps:
        return False
    node = value
    for name, index in steps[:-1]:
        try:
            node = node[name] if name else node[int(index)]
        except (KeyError, IndexError, TypeError):
            return False
    name, index = steps[-1]
    if not name or not isinstance(node, dict) or name not in node:
        return False
    del node[name]
    return True


def _check(config: Config, file: str, locator: _KeyLocator) -> list[ConfigIssue]:
    """Cross-references and values msgspec cannot see."""
    issues: list[ConfigIssue] = []
    base = Path(file).parent

    def add(path: str, message: str) -> None:
        issues.append(ConfigIssue(file, path, message, locator.line(path)))

    names: set[str] = set()
    for i, listener in enumerate(config.listeners):
        at = f"listeners[{i}]"
        if listener.name in names:
            add(f"{at}.name", f"duplicate listener name {listener.name!r}")
        names.add(listener.name)
        try:
            parse_listen(listener.listen)
        except ValueError as exc:
            add(f"{at}.listen", str(exc))
        if isinstance(listener, TcpListener):
            if (listener.route is None) == (listener.upstream is None):
                add(at, "expected exactly one of 'route' or 'upstream'")
            if listener.upstream is not None and listener.upstream not in config.upstreams:
                add(f"{at}.upstream", f"no upstream named {listener.upstream!r}")
            if listener.route is not None and listener.route.endswith(".py"):
                route_path = Path(listener.route)
                if not route_path.is_absolute():
                    route_path = base / route_path
                if not route_path.is_file():
                    add(f"{at}.route", f"no such file: {route_path}")
        if isinstance(listener, HttpListener):
            _check_http(listener, at, config, add)
            continue
        if isinstance(listener, GatewayListener):
            _check_gateway_services(listener, at, config, add)
        for field_name in ("buffer", "max_connections"):
            if getattr(listener.limits, field_name) <= 0:
                add(f"{at}.limits.{field_name}", "expected a positive number")
        for field_name in ("decision_timeout", "connect_timeout", "idle_timeout"):
            if getattr(listener.limits, field_name) <= 0:
                add(f"{at}.limits.{field_name}", "expected a positive number of seconds")
    for name, upstream in config.upstreams.items():
        at = f"upstreams.{name}"
        if isinstance(upstream, ProvisionUpstream):
            issues.extend(_check_provision(upstream, at, file, locator))
            if upstream.probe.kind == "announce" and not any(
                    service.upstream == name for listener in config.listeners
                    if isinstance(listener, GatewayListener) for service in listener.services):
                add(f"{at}.probe.kind", "'announce' needs a gateway listener whose services "
                                        "name this upstream")
            continue
        if not upstream.endpoints:
            add(f"{at}.endpoints", "expected at least one 'host:port'")
        for j, endpoint in enumerate(upstream.endpoints):
            try:
                _host, port = parse_listen(endpoint)
                if port == 0:
                    raise ValueError(f"expected a non-zero port in {endpoint!r}")
            except ValueError as exc:
                add(f"{at}.endpoints[{j}]", str(exc))
    issues.extend(_check_registry(config, add))
    _check_identity(config, add)
    return issues


def _check_gateway_services(listener: GatewayListener, at: str, config: Config,
                            add: Callable[[str, str], None]) -> None:
    """Each provisioned gateway service names a provision upstream, once."""
    seen: set[str] = set()
    for j, service in enumerate(listener.services):
        where = f"{at}.services[{j}]"
        if service.name in seen:
            add(f"{where}.name", f"duplicate service {service.name!r}")
        seen.add(service.name)
        upstream = config.upstreams.get(service.upstream)
        if not isinstance(upstream, ProvisionUpstream):
            add(f"{where}.upstream", f"no provision upstream named {service.upstream!r}")


def _check_identity(config: Config, add: Any) -> None:
    """``[process] user`` and ``group`` must exist on this machine."""
    process = config.process
    if process.user is not None:
        try:
            pwd.getpwnam(process.user)
        except KeyError:
            add("process.user", f"no such user {process.user!r}")
    elif process.group is not None:
        add("process.group", "a group needs 'user' too")
    if process.group is not None:
        try:
            grp.getgrnam(process.group)
        except KeyError:
            add("process.group", f"no such group {process.group!r}")


def _check_provision(upstream: ProvisionUpstream, at: str, file: str,
                     locator: _KeyLocator) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []

    def add(path: str, message: str) -> None:
        issues.append(ConfigIssue(file, path, message, locator.line(path)))

    for field_name in ("max_live", "max_starting", "backoff_initial", "start_timeout"):
        if getattr(upstream, field_name) <= 0:
            add(f"{at}.{field_name}", "expected a positive number")
    for field_name in ("warm", "max_queue", "queue_timeout", "max_lifetime", "max_idle",
                       "backoff_max", "refill_delay"):
        if getattr(upstream, field_name) < 0:
            add(f"{at}.{field_name}", "expected zero or a positive number")
    if upstream.warm > upstream.max_live:
        add(f"{at}.warm", f"warm ({upstream.warm}) exceeds max_live ({upstream.max_live})")
    if upstream.probe.timeout <= 0 or upstream.probe.interval <= 0:
        add(f"{at}.probe", "expected positive 'timeout' and 'interval'")
    if upstream.probe.kind == "http" and not upstream.probe.path.startswith("/"):
        add(f"{at}.probe.path", "expected a path starting with '/'")
    provider = upstream.provider
    where = f"{at}.provider"
    announce = upstream.probe.kind == "announce"
    if isinstance(provider, DockerProviderConfig):
        host_network = provider.network_mode == "host"
        if not host_network and not announce and not 0 < provider.port < 65536:
            add(f"{where}.port", "expected the container's listening port (1-65535)")
        if provider.api_version != "auto" and not re.fullmatch(r"v1\.\d+",
                                                                provider.api_version):
            add(f"{where}.api_version", "expected 'auto' or a version like 'v1.41'")
        if not provider.url.startswith(("unix://", "tcp://", "http://", "https://")):
            add(f"{where}.url", "expected unix:///path, tcp://host:port or http(s)://host:port")
        if provider.memory is not None:
            try:
                parse_size(provider.memory)
            except ValueError as exc:
                add(f"{where}.memory", str(exc))
        if provider.cpus is not None and provider.cpus <= 0:
            add(f"{where}.cpus", "expected a positive number of cores")
        if provider.pids_limit is not None and provider.pids_limit <= 0:
            add(f"{where}.pids_limit", "expected a positive number")
        for j, mount in enumerate(provider.mounts):
            if mount.count(":") not in (1, 2):
                add(f"{where}.mounts[{j}]", "expected 'host:container' or 'host:container:ro'")
    else:
        if not provider.command:
            add(f"{where}.command", "expected a non-empty command")
        elif not announce and not any("{port}" in part for part in (*provider.command,
                                                                    *provider.env.values())):
            add(f"{where}.command", "expected '{port}' in command or env, to pass the port")
        if provider.grace < 0:
            add(f"{where}.grace", "expected zero or a positive number of seconds")
    return issues


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: int | str) -> int:
    """Bytes from ``1048576``, ``"512k"``, ``"256m"`` or ``"1g"``."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("expected a positive size")
        return value
    found = re.fullmatch(r"\s*(\d+)\s*([bkmg]?)b?\s*", value.lower())
    if not found or int(found[1]) <= 0:
        raise ValueError(f"expected a size like 256m, got {value!r}")
    return int(found[1]) * _SIZE_UNITS[found[2]]


def _check_registry(config: Config, add: Any) -> list[ConfigIssue]:
    """The ``[nats]``, ``[registry]``, ``[admin]`` and ``[[routes]]`` sections.

    Issues go through ``add``; the return value is always empty so the caller's
    ``extend`` reads naturally.
    """
    if config.nats is not None and not config.nats.servers:
        add("nats.servers", "expected at least one 'nats://host:port'")
    for name in ("prune_threshold", "prune_interval", "minimum_register_interval"):
        if getattr(config.registry, name) <= 0:
            add(f"registry.{name}", "expected a positive number of seconds")
    if config.registry.empty_pool_timeout < 0:
        add("registry.empty_pool_timeout", "expected 0 or more seconds")
    if config.registry.routing_table_sharding_mode == "segments" \
            and not config.registry.isolation_segments:
        add("registry.isolation_segments",
            "expected at least one segment: routing_table_sharding_mode is 'segments'")
    if config.admin is not None:
        try:
            parse_listen(config.admin.listen)
        except ValueError as exc:
            add("admin.listen", str(exc))
        if (config.admin.status_user is None) != (config.admin.status_password is None):
            add("admin", "expected both 'status_user' and 'status_password', or neither")
        elif config.admin.status_user is not None and ":" in config.admin.status_user:
            add("admin.status_user", "expected a user name without ':' (HTTP Basic auth)")
    for i, route in enumerate(config.routes):
        if not route.uris:
            add(f"routes[{i}].uris", "expected at least one uri")
        if not route.endpoints:
            add(f"routes[{i}].endpoints", "expected at least one 'host:port'")
        for j, endpoint in enumerate(route.endpoints):
            try:
                if parse_listen(endpoint)[1] == 0:
                    raise ValueError(f"expected a non-zero port in {endpoint!r}")
            except ValueError as exc:
                add(f"routes[{i}].endpoints[{j}]", str(exc))
        if route.server_name and not route.tls:
            add(f"routes[{i}].server_name", "'server_name' needs 'tls = true'")
    return []


def _check_http(listener: HttpListener, at: str, config: Config,
                add: Callable[[str, str], None]) -> None:
    """Values of an HTTP listener that msgspec cannot check; reported through ``add``."""
    for j, route in enumerate(listener.routes):
        where = f"{at}.routes[{j}]"
        targets = (route.upstream is not None) + bool(route.endpoints) + (route.root is not None)
        if targets != 1:
            add(where, "expected exactly one of 'upstream', 'endpoints' or 'root'")
        if route.root is not None and not resolve_path(config, route.root).is_dir():
            add(f"{where}.root", f"no such folder: {resolve_path(config, route.root)}")
        if route.upstream is not None and route.upstream not in config.upstreams:
            add(f"{where}.upstream", f"no upstream named {route.upstream!r}")
        if not route.host or "/" in route.host:
            add(f"{where}.host", "expected a host name (put the path in 'path')")
        if route.path and not route.path.startswith("/"):
            add(f"{where}.path", "expected a path starting with '/'")
        if route.balance == "hash":
            add(f"{where}.balance", "expected 'round_robin' or 'least_conn'")
        for k, endpoint in enumerate(route.endpoints):
            try:
                parse_listen(endpoint)
            except ValueError as exc:
                add(f"{where}.endpoints[{k}]", str(exc))
        if route.server_name and not route.tls:
            add(f"{where}.server_name", "'server_name' needs 'tls = true'")
        if route.tls and route.root is not None:
            add(f"{where}.tls", "a 'root' route has no backend to speak TLS to")
        if route.tls and isinstance(config.upstreams.get(route.upstream or ""),
                                    ProvisionUpstream):
            add(f"{where}.tls", "backends of a provision upstream are reached in the clear")
    backends = listener.backends
    for field_name in ("ca_file", "cert_file", "key_file"):
        name = getattr(backends, field_name)
        if name is not None and not resolve_path(config, name).is_file():
            add(f"{at}.backends.{field_name}", f"no such file: {resolve_path(config, name)}")
    if (backends.cert_file is None) != (backends.key_file is None):
        add(f"{at}.backends", "expected both 'cert_file' and 'key_file', or neither")
    else:
        _check_backend_tls(backends, f"{at}.backends", config, add)
    _check_route_services(listener.route_services, f"{at}.route_services", add)
    for j, network in enumerate(listener.trusted_proxies):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            add(f"{at}.trusted_proxies[{j}]", f"expected a CIDR, got {network!r}")
    for j, target in enumerate(listener.connect_allow):
        try:
            parse_listen(target)
        except ValueError as exc:
            add(f"{at}.connect_allow[{j}]", str(exc))
    limits = listener.limits
    for field_name in ("max_header_bytes", "max_connections", "upstream_pool_size"):
        if getattr(limits, field_name) <= 0:
            add(f"{at}.limits.{field_name}", "expected a positive number")
    for field_name in ("max_body_bytes", "upstream_max_connections"):
        if getattr(limits, field_name) < 0:
            add(f"{at}.limits.{field_name}", "expected 0 (no limit) or a positive number")
    for field_name in ("header_timeout", "body_timeout", "keepalive_timeout", "connect_timeout",
                       "response_timeout", "tunnel_idle_timeout"):
        if getattr(limits, field_name) <= 0:
            add(f"{at}.limits.{field_name}", "expected a positive number of seconds")


_ALLOWLIST_ENTRY = re.compile(r"(?i)^(\*\.)?[a-z\d-]+(\.[a-z\d-]+)+$")


def _check_route_services(services: HttpRouteServices, at: str,
                          add: Callable[[str, str], None]) -> None:
    """``[listeners.route_services]`` values msgspec cannot check."""
    if services.secret_decrypt_only and not services.secret:
        add(f"{at}.secret_decrypt_only", "needs 'secret' (route services are off without it)")
    if services.timeout <= 0:
        add(f"{at}.timeout", "expected a positive number of seconds")
    if services.max_attempts < 1:
        add(f"{at}.max_attempts", "expected 1 or more")
    for j, entry in enumerate(services.hairpinning_allowlist):
        if not _ALLOWLIST_ENTRY.match(entry):
            add(f"{at}.hairpinning_allowlist[{j}]",
                f"expected a host name or '*.domain', got {entry!r}")


def _check_backend_tls(backends: HttpBackends, at: str, config: Config,
                       add: Callable[[str, str], None]) -> None:
    """The PEM files of ``[listeners.backends]`` load (a bad one would fail the start)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if backends.ca_file is not None and resolve_path(config, backends.ca_file).is_file():
            where = f"{at}.ca_file"
            context.load_verify_locations(cafile=resolve_path(config, backends.ca_file))
        if backends.cert_file is not None and backends.key_file is not None \
                and resolve_path(config, backends.cert_file).is_file() \
                and resolve_path(config, backends.key_file).is_file():
            where = f"{at}.cert_file"
            context.load_cert_chain(resolve_path(config, backends.cert_file),
                                    resolve_path(config, backends.key_file))
    except (ssl.SSLError, OSError) as exc:
        add(where, f"cannot load: {exc}")


def resolve_path(config: Config, value: str) -> Path:
    """A path from the file, read relative to the file's own folder."""
    path = Path(value)
    return path if path.is_absolute() else Path(config.source).parent / path


def _toml_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found[1]) if found else None


class _KeyLocator:
    """Find the line of a key path in TOML text, for error messages.

    It understands the shapes config files use: ``[table]``, ``[[array]]``,
    dotted ``[a.b]`` headers and ``key = value`` lines. When it cannot place a
    path it answers the line of the nearest enclosing table, or ``None``.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        counters: dict[str, int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header[2].replace('"', "").replace("'", "")
                if header[1] == "[[":
                    index = counters.get(name, -1) + 1
                    counters[name] = index
                    table = f"{name}[{index}]"
                else:
                    table = self._resolve(name, counters)
                self._lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                name = key[1].replace('"', "").replace("'", "")
                self._lines.setdefault(f"{table}.{name}" if table else name, number)

    @staticmethod
    def _resolve(name: str, counters: dict[str, int]) -> str:
        """``listeners.limits`` under the latest ``[[listeners]]`` is ``listeners[i].limits``."""
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            head = ".".join(parts[:cut])
            if head in counters:
                rest = ".".join(parts[cut:])
                return f"{head}[{counters[head]}]" + (f".{rest}" if rest else "")
        return name

    def line(self, path: str) -> int | None:
        path = re.sub(r"\[(\d+)\]\.?$", r"[\1]", path)
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return self._lines.get(path)
            path = path[:cut]
        return None

