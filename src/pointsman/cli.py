"""The ``pointsman`` command.

    pointsman serve -c FILE.toml        run the listeners a config file names
    pointsman check -c FILE.toml        validate a config (and its route modules), start nothing
    pointsman tcp -c ROUTER.py [-h HOST] [-p PORT]
                                        ProxyMachine's command line: one content-aware TCP listener
    pointsman version

Exit codes: 0 success, 1 the config or a route module is wrong, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pointsman import __version__
from pointsman.config import Config, ConfigError, ConfigIssue, Limits, TcpListener, load
from pointsman.routing.loader import RouteLoadError, load_route_module

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
    tcp.add_argument("--help", action="help", help="show this help and exit")

    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"pointsman {__version__}")
        return 0
    if args.command == "tcp":
        config = _tcp_config(args.config, args.host, args.port, args.buffer)
        return _run(config, None)
    config_or_code = _load(args.config, check_modules=args.command == "check")
    if isinstance(config_or_code, int):
        return config_or_code
    if args.command == "check":
        print(f"{args.config}: ok ({len(config_or_code.listeners)} listeners, "
              f"{len(config_or_code.upstreams)} upstreams)")
        return 0
    return _run(config_or_code, args.config)


def _load(path: str, check_modules: bool) -> Config | int:
    """The config, or 1 after printing every issue; serving loads route modules itself."""
    try:
        config = load(path)
        if check_modules:
            _check_route_modules(config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    return config


def _check_route_modules(config: Config) -> None:
    """A route module that does not import is a config error, found before serving."""
    issues = []
    base = Path(config.source).parent
    for index, listener in enumerate(config.listeners):
        route = getattr(listener, "route", None)
        if route:
            try:
                load_route_module(route, base)
            except RouteLoadError as exc:
                issues.append(ConfigIssue(config.source, f"listeners[{index}].route", str(exc)))
    if issues:
        raise ConfigError(issues)


def _tcp_config(router: str, host: str, port: int, buffer: int) -> Config:
    path = Path(router).resolve()
    listener = TcpListener(name="tcp", listen=f"{host}:{port}", route=str(path),
                           limits=Limits(buffer=buffer))
    return Config(listeners=[listener], source=str(path))


def _run(config: Config, path: str | None) -> int:
    from pointsman.control.runtime import run

    return run(config, path)
