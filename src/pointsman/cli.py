"""The ``pointsman`` command.

    pointsman serve -c FILE.toml [--daemon] [--pidfile PATH] [--workers N]
                                        run the listeners a config file names
    pointsman check -c FILE.toml        validate a config (and its route modules), start nothing
    pointsman reload|quit|stop [-c FILE.toml | --pidfile PATH]
                                        signal the running leader: HUP, QUIT (drain), TERM
    pointsman routes [-c FILE.toml | --admin URL --token T]
                                        routes, upstream endpoints (health, counters)
                                        and provisioned backends
    pointsman tcp -c ROUTER.py [-h HOST] [-p PORT]
                                        ProxyMachine's command line: one content-aware TCP listener
    pointsman version

Exit codes: 0 success, 1 the config or a route module is wrong (or no leader to
signal, or it did not stop in time), 2 bad usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from pointsman import __version__
from pointsman.config import (
    Config,
    ConfigError,
    Limits,
    TcpListener,
    load,
    resolve_path,
)
from pointsman.control.validate import check_route_modules

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pointsman",
        description="A programmable traffic router: content-aware TCP, HTTP with NATS "
                    "self-registration, WebSocket message gateway, per-connection backends.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the listeners a config file names")
    serve.add_argument("-c", "--config", required=True, metavar="FILE",
                       help="TOML config file")
    serve.add_argument("--daemon", action="store_true",
                       help="detach; exit once every worker accepts (or report why not)")
    serve.add_argument("--pidfile", metavar="PATH",
                       help="write the leader's pid here (default: [process].pidfile; "
                            f"with --daemon, {default_pidfile()})")
    serve.add_argument("--workers", type=_positive, metavar="N",
                       help="worker processes (overrides [process].workers)")

    for name, what in (("reload", "reload the config (HUP): new workers, old ones drain"),
                       ("quit", "stop gracefully (QUIT): drain, then exit"),
                       ("stop", "stop now (TERM)")):
        command = commands.add_parser(name, help=what)
        command.add_argument("-c", "--config", metavar="FILE",
                             help="config naming the pidfile in [process].pidfile")
        command.add_argument("--pidfile", metavar="PATH",
                             help=f"the leader's pidfile (default {default_pidfile()})")
        if name != "reload":
            command.add_argument("--timeout", type=float, default=60.0,
                                 help="seconds to wait for the exit (default %(default)s)")

    check = commands.add_parser("check", help="validate a config file without starting")
    check.add_argument("-c", "--config", required=True, metavar="FILE",
                       help="TOML config file")

    tcp = commands.add_parser(
        "tcp", add_help=False,
        help="one content-aware TCP listener, ProxyMachine style",
        description="Route each TCP connection with the route(data, conn) function in "
                    "ROUTER.py: it answers 'host:port', a Route, NOOP or CLOSE.")
    tcp.add_argument("-c", "--config", required=True, metavar="ROUTER.py",
                     help="Python file defining route(data, conn)")
    tcp.add_argument("-h", "--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    tcp.add_argument("-p", "--port", type=int, default=5432,
                     help="port to listen on (default 5432)")
    tcp.add_argument("--buffer", type=int, default=Limits().buffer,
                     help="bytes to buffer before a decision (default %(default)s)")
    tcp.add_argument("--workers", type=_positive, default=1, metavar="N",
                     help="worker processes (default %(default)s)")
    tcp.add_argument("--help", action="help", help="show this help and exit")

    routes = commands.add_parser("routes", help="routes and upstream endpoints with health "
                                                "and counters, from the admin API")
    routes.add_argument("-c", "--config", metavar="FILE",
                        help="config whose [admin] names the address and token")
    routes.add_argument("--admin", metavar="URL",
                        help=f"admin API base URL (default http://{DEFAULT_ADMIN})")
    routes.add_argument("--token", help="bearer token (default: the config's, or "
                                        "$POINTSMAN_ADMIN_TOKEN)")
    routes.add_argument("--json", action="store_true", help="print the raw JSON instead")

    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"pointsman {__version__}")
        return 0
    if args.command == "tcp":
        config = _tcp_config(args.config, args.host, args.port, args.buffer)
        return _run(_with_workers(config, args.workers), None)
    if args.command in SIGNALS:
        return _signal(args)
    if args.command == "routes":
        return _routes(args)
    config_or_code = _load(args.config, check_modules=args.command == "check")
    if isinstance(config_or_code, int):
        return config_or_code
    if args.command == "check":
        print(f"{args.config}: ok ({len(config_or_code.listeners)} listeners, "
              f"{len(config_or_code.upstreams)} upstreams)")
        return 0
    config = _with_workers(config_or_code, args.workers)
    pidfile = _serve_pidfile(config, args.pidfile, args.daemon)
    return _run(config, str(Path(args.config).resolve()), pidfile, args.daemon)


DEFAULT_ADMIN = "127.0.0.1:9901"


def _routes(args: argparse.Namespace) -> int:
    import json
    import os

    from pointsman.control.routes_cli import AdminUnreachable, fetch, render_tables

    base, token = args.admin, args.token
    if args.config:
        config_or_code = _load(args.config, check_modules=False)
        if isinstance(config_or_code, int):
            return config_or_code
        if config_or_code.admin is not None:
            base = base or f"http://{config_or_code.admin.listen}"
            token = token or config_or_code.admin.token
    base = base or f"http://{DEFAULT_ADMIN}"
    token = token or os.environ.get("POINTSMAN_ADMIN_TOKEN")
    try:
        routes = fetch(base, "/routes", token)
        upstreams = fetch(base, "/upstreams", token)
        provision = fetch(base, "/provision", token)
    except AdminUnreachable as exc:
        print(f"pointsman routes: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"routes": routes, "upstreams": upstreams, "provision": provision},
                         indent=2))
    else:
        sys.stdout.write(render_tables(routes, upstreams, provision))
    return 0


SIGNALS = {"reload": signal.SIGHUP, "quit": signal.SIGQUIT, "stop": signal.SIGTERM}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number of at least 1")
    return value


def _with_workers(config: Config, workers: int | None) -> Config:
    if workers is None:
        return config
    process = msgspec.structs.replace(config.process, workers=workers)
    return msgspec.structs.replace(config, process=process)


def _serve_pidfile(config: Config, option: str | None, daemon: bool) -> Path | None:
    if option:
        return Path(option).resolve()
    if config.process.pidfile:
        return resolve_path(config, config.process.pidfile).resolve()
    return default_pidfile() if daemon else None


def _signal(args: argparse.Namespace) -> int:
    """``reload``/``quit``/``stop``: signal the leader the pidfile names; wait for an exit."""
    from pointsman.control.daemon import PidfileError, signal_leader, wait_exit

    if args.pidfile:
        pidfile = Path(args.pidfile)
    elif args.config:
        # ``reload -c FILE`` checks the file first, as ``nginx -t``: a broken one is
        # reported here and the leader is not disturbed.
        config_or_code = _load(args.config, check_modules=args.command == "reload")
        if isinstance(config_or_code, int):
            return config_or_code
        pidfile = _serve_pidfile(config_or_code, None, daemon=True) or default_pidfile()
    else:
        pidfile = default_pidfile()
    try:
        pid = signal_leader(pidfile, SIGNALS[args.command])
    except PidfileError as exc:
        print(f"pointsman {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.command == "reload":
        print(f"pointsman: asked pid {pid} to reload")
        return 0
    if not wait_exit(pid, args.timeout):
        print(f"pointsman {args.command}: pid {pid} still running after {args.timeout}s",
              file=sys.stderr)
        return 1
    return 0


def _load(path: str, check_modules: bool) -> Config | int:
    """The config, or 1 after printing every issue; serving loads route modules itself."""
    try:
        config = load(path)
        if check_modules:
            check_route_modules(config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    return config


def _tcp_config(router: str, host: str, port: int, buffer: int) -> Config:
    path = Path(router).resolve()
    listener = TcpListener(name="tcp", listen=f"{host}:{port}", route=str(path),
                           limits=Limits(buffer=buffer))
    return Config(listeners=[listener], source=str(path))


def _run(config: Config, path: str | None, pidfile: Path | None = None,
         daemon: bool = False) -> int:
    from pointsman.control.daemon import daemonize
    from pointsman.control.process import serve

    report: Callable[[str], None] | None = daemonize() if daemon else None
    return serve(config, path, pidfile, report)


def default_pidfile() -> Path:
    from pointsman.control.daemon import default_pidfile as default

    return default()
