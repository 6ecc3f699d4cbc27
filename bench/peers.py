"""The proxies under test: how each is launched in front of a target address.

A ``Peer`` writes its configuration into the run's work directory and starts
one process (tree) listening on the address it is given. ``Direct`` starts
nothing: the load generator dials the target itself, which is the ceiling
every proxy is measured against. Scenarios pick their peers from here, so a
new protocol adds peers here and scenarios stay small.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bench import peerconf
from bench.peerconf import Addr
from bench.procs import Managed, ProcessSet

__all__ = [
    "REPO",
    "Bare",
    "Direct",
    "HaproxyHttp",
    "HaproxyTcp",
    "HaproxyTcpCopy",
    "NginxHttp",
    "NginxStream",
    "Peer",
    "PointsmanTcp",
    "nginx_stream_module",
    "stream_module_path",
]

REPO = Path(__file__).resolve().parent.parent
NGINX_MODULES = Path("/usr/lib/nginx/modules")


class Peer(ABC):
    """One proxy in a side-by-side comparison."""

    name: str

    def missing(self) -> str | None:
        """Why this peer cannot run on this machine, or ``None`` when it can."""
        return None

    @abstractmethod
    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        """Listen on ``listen``, forward to ``target``; ``None`` when nothing is started."""

    def address(self, listen: Addr, target: Addr) -> Addr:
        """Where the load generator dials to go through this peer."""
        return listen


class Direct(Peer):
    """No proxy: the load generator talks to the backend (the loopback ceiling)."""

    name = "direct"

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        return None

    def address(self, listen: Addr, target: Addr) -> Addr:
        return target


def _which(binary: str) -> str | None:
    return None if shutil.which(binary) else f"{binary} not installed (make peers)"


POINTSMAN_ENV = {"PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}


def start_pointsman(procs: ProcessSet, name: str, *args: str) -> Managed:
    """``python -m pointsman ARGS`` from this tree's sources."""
    return procs.start(name, [sys.executable, "-m", "pointsman", *args], env=POINTSMAN_ENV)


def serve_pointsman(procs: ProcessSet, name: str, config: str) -> Managed:
    """``pointsman serve`` on ``config``, written into the run's work dir as NAME.toml."""
    toml = procs.workdir / f"{name}.toml"
    toml.write_text(config)
    return start_pointsman(procs, name, "serve", "-c", str(toml))


@dataclass
class PointsmanTcp(Peer):
    """pointsman's content-aware TCP proxy, routed by a Python route function.

    ``mode="router"`` runs ``pointsman tcp -c ROUTER.py`` (the ProxyMachine
    way, the route function runs for every connection); ``mode="serve"`` runs
    ``pointsman serve`` on a TOML listener with a configured upstream, and
    ``access_log=False`` turns pointsman's per-connection log line off there.
    """

    name: str = "pointsman"
    mode: str = "router"
    access_log: bool = True

    def missing(self) -> str | None:
        if not (REPO / "src" / "pointsman").is_dir():
            return f"no pointsman sources under {REPO / 'src'}"
        return None

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        if self.mode != "router":
            return serve_pointsman(procs, self.name, peerconf.pointsman_tcp_toml(
                "bench", listen, target, access_log=self.access_log))
        router = procs.workdir / f"{self.name}_router.py"
        router.write_text(peerconf.pointsman_router(target))
        return start_pointsman(procs, self.name, "tcp", "-c", str(router), "-h", listen.host,
                               "-p", str(listen.port))


class HaproxyTcp(Peer):
    """HAProxy ``mode tcp`` with splice, one thread."""

    name = "haproxy"

    def missing(self) -> str | None:
        return _which("haproxy")

    def config(self, listen: Addr, target: Addr) -> str:
        return peerconf.haproxy_tcp(listen, target)

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        cfg = procs.workdir / f"{self.name}.cfg"
        cfg.write_text(self.config(listen, target))
        return procs.start(self.name, ["haproxy", "-db", "-f", str(cfg)])


class HaproxyTcpCopy(HaproxyTcp):
    """HAProxy ``mode tcp`` copying through its buffers (no splice): a reference point."""

    name = "haproxy-copy"

    def config(self, listen: Addr, target: Addr) -> str:
        return "".join(line for line in peerconf.haproxy_tcp(listen, target).splitlines(True)
                       if "splice" not in line)


@dataclass
class Bare(Peer):
    """A bench module (``bench/bare_*.py``) that forwards with nothing but the essentials.

    Not a product: the floor of what a proxy written in Python can cost here
    (``bare-splice`` for a TCP relay, ``bare-http`` for an HTTP proxy).
    """

    name: str
    module: str

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        return procs.start(self.name, [sys.executable, "-m", self.module, str(listen),
                                       str(target)], cwd=REPO)


class HaproxyHttp(HaproxyTcp):
    """HAProxy ``mode http``, keep-alive and backend connection reuse, one thread."""

    def config(self, listen: Addr, target: Addr) -> str:
        return peerconf.haproxy_http(listen, target)


def stream_module_path(nginx_v: str, modules_dir: Path = NGINX_MODULES) -> Path | None:
    """The ``load_module`` path nginx needs for ``stream {}``, or ``None`` if built in.

    Debian builds the stream module as a dynamic module (package
    libnginx-mod-stream); ``nginx -V`` says ``--with-stream=dynamic`` then.
    """
    if re.search(r"--with-stream=dynamic\b", nginx_v):
        return modules_dir / "ngx_stream_module.so"
    return None


def nginx_stream_module() -> Path | None:
    """Ask the installed nginx where its stream module is (see ``stream_module_path``)."""
    out = subprocess.run(["nginx", "-V"], capture_output=True, text=True, check=False)
    return stream_module_path(out.stdout + out.stderr)


def start_nginx(procs: ProcessSet, name: str, config: str) -> Managed:
    """Run nginx in the foreground with its own prefix directory under the work dir."""
    prefix = procs.workdir / name
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(config)
    argv = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    return procs.start(name, argv)


class NginxStream(Peer):
    """nginx's stream module (plain TCP proxy), one worker."""

    name = "nginx"

    def missing(self) -> str | None:
        if reason := _which("nginx"):
            return reason
        module = nginx_stream_module()
        if module is not None and not module.exists():
            return f"{module} missing (apt-get install libnginx-mod-stream)"
        return None

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        prefix = procs.workdir / self.name
        config = peerconf.nginx_stream(prefix, listen, target, nginx_stream_module())
        return start_nginx(procs, self.name, config)


class NginxHttp(Peer):
    """nginx ``proxy_pass`` to an upstream with keepalive connections, one worker."""

    name = "nginx"

    def missing(self) -> str | None:
        return _which("nginx")

    def start(self, procs: ProcessSet, listen: Addr, target: Addr) -> Managed | None:
        prefix = procs.workdir / self.name
        return start_nginx(procs, self.name, peerconf.nginx_http_proxy(prefix, listen, target))
