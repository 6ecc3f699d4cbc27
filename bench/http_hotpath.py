"""The HTTP proxy's per-request Python cost, without sockets, counted in instructions.

Load tests on a shared 2-core machine swing by tens of percent from run to
run; a change of a few percent in the request path cannot be seen there.
This drives keep-alive GETs through the real ``ClientConnection`` and
``UpstreamConnection`` with transports that only count writes, so nothing
but pointsman's own Python (and llhttp) runs, and, with ``--cachegrind``,
runs itself under valgrind twice and reports user-space instructions per
request: a figure that does not move with the machine's load.

    python -m bench.http_hotpath                 # µs of CPU per request (noisy)
    python -m bench.http_hotpath --cachegrind    # instructions per request (stable)
    python -m bench.http_hotpath --unique ...    # every request a target of its own

The same request again and again is what wrk sends, and pointsman skips
parsing a head it has seen; ``--unique`` gives each request a query string
of its own (as ``bench/unique_targets.lua`` does for the ``http_unique``
scenario), so every head is parsed and rewritten.

Not a test: the numbers are for comparing two trees (``--src DIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

REQUEST = b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:18081\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
            b"Date: Mon, 23 Nov 2026 11:51:31 GMT\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 128\r\nLast-Modified: Mon, 23 Nov 2026 11:51:21 GMT\r\n"
            b"Connection: keep-alive\r\nETag: \"6b0428b9-80\"\r\nAccept-Ranges: bytes\r\n\r\n"
            + b"x" * 128)
"""nginx's answer for a 128-byte file, the origin of the ``http`` scenario."""


class CountingTransport:
    """Just enough of a transport: writes are counted, flow control is a no-op."""

    def __init__(self) -> None:
        self.writes = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int, low: int) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def drive(requests: int, unique: bool = False) -> float:
    """Proxy ``requests`` keep-alive GETs; the CPU seconds the last ``requests`` took."""
    from pointsman.config import HttpListener, HttpRoute
    from pointsman.control.counters import CountingSink
    from pointsman.control.logs import JsonLog
    from pointsman.serve import http1
    from pointsman.serve.context import ServeContext
    from pointsman.serve.http_upstream import UpstreamConnection
    from pointsman.serve.poller import Poller

    loop = asyncio.new_event_loop()
    # As the runtime does: per-listener counts in front of an access log that is off.
    ctx = ServeContext(loop=loop, poller=Poller(loop), access=CountingSink(JsonLog("off")),
                       events=JsonLog("off"))
    config = HttpListener(name="bench", listen="127.0.0.1:0", routes=[
        HttpRoute(host="127.0.0.1", endpoints=["127.0.0.1:18080"])])
    ctx.routes.table = http1.static_table(config, ctx)
    server = http1.HttpServer(config, ctx, ctx.routes)
    client = http1.ClientConnection(server)
    to_client = CountingTransport()
    client.connection_made(to_client)  # type: ignore[arg-type]
    upstream = UpstreamConnection(server.pool, "127.0.0.1:18080")
    upstream.connection_made(CountingTransport())  # type: ignore[arg-type]
    server.pool.idle["127.0.0.1:18080"] = [upstream]

    heads = [REQUEST.replace(b".txt", b".txt?n=%d" % i) if unique else REQUEST
             for i in range(1000 + requests)]

    def run(batch: list[bytes]) -> None:
        for request in batch:
            client.data_received(request)
            upstream.data_received(RESPONSE)

    run(heads[:1000])  # warm: memo caches filled, code specialised
    started = time.process_time()
    run(heads[1000:])
    spent = time.process_time() - started
    if to_client.writes < requests:
        raise SystemExit(f"only {to_client.writes} responses for {requests} requests")
    loop.close()
    return spent


def instructions(src: Path, requests: int, unique: bool) -> float:
    """User-space instructions per request under cachegrind: two runs, their difference."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")

    def count(n: int) -> int:
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                "--cachegrind-out-file=/dev/null", sys.executable, "-m", "bench.http_hotpath",
                "--src", str(src), "--requests", str(n), "--quiet"] + (["--unique"] * unique)
        result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
        if found is None:
            raise SystemExit(f"no instruction count from valgrind:\n{result.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))

    small, large = count(requests // 4), count(requests)
    return (large - small) / (requests - requests // 4)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_hotpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the tree whose pointsman is measured (default: this one's)")
    parser.add_argument("--requests", type=int, default=4000, help="requests per measurement")
    parser.add_argument("--cachegrind", action="store_true",
                        help="report instructions per request (runs under valgrind)")
    parser.add_argument("--unique", action="store_true",
                        help="a target of its own on every request (no head repeats)")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cachegrind:
        per = instructions(args.src, args.requests, args.unique)
        print(f"{per:,.0f} instructions per proxied request ({args.src})")
        return
    sys.path.insert(0, str(args.src))
    spent = drive(args.requests, args.unique)
    if not args.quiet:
        print(f"{spent / args.requests * 1e6:.2f} µs of CPU per proxied request ({args.src})")


if __name__ == "__main__":
    main()
