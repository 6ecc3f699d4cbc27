"""The servers the proxies forward to, shared by scenarios.

A backend is a real, fast server started in the run's process set and
returned as the address it listens on: iperf3's server for bulk TCP, nginx
serving a small static file for requests and new connections.
"""

from __future__ import annotations

from bench import peerconf
from bench.peerconf import Addr
from bench.peers import start_nginx
from bench.procs import ProcessSet, free_port

__all__ = ["SMALL_FILE", "SMALL_FILE_BYTES", "iperf3_server", "nginx_origin"]

SMALL_FILE = "small.txt"
SMALL_FILE_BYTES = 128


def iperf3_server(procs: ProcessSet) -> Addr:
    """``iperf3 -s`` on loopback; it serves one test at a time, which is all we run."""
    addr = Addr("127.0.0.1", free_port())
    server = procs.start("iperf3-server", ["iperf3", "-s", "-B", addr.host, "-p", str(addr.port)])
    server.wait_listening(addr.port)
    return addr


def nginx_origin(procs: ProcessSet) -> Addr:
    """nginx (one worker) serving ``/small.txt``, ``SMALL_FILE_BYTES`` long."""
    addr = Addr("127.0.0.1", free_port())
    name = "nginx-origin"
    root = procs.workdir / "www"
    root.mkdir(exist_ok=True)
    (root / SMALL_FILE).write_bytes(b"x" * (SMALL_FILE_BYTES - 1) + b"\n")
    config = peerconf.nginx_origin(procs.workdir / name, addr, root)
    start_nginx(procs, name, config).wait_listening(addr.port)
    return addr
