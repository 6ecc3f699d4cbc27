"""A WebSocket envelope load generator: messages per second and latency percentiles.

``python -m bench.wsload ws://HOST:PORT/ws --connections 32 --seconds 5`` opens
the connections, keeps ``--window`` envelopes ``{path, id, data}`` in flight on
each (closed loop: a reply releases the next send), and prints one JSON object:
``messages``, ``seconds``, ``rate``, ``p50_ms``, ``p99_ms``, ``errors``.

It runs in its own process on uvloop and drives websockets' sans-I/O client
from an ``asyncio.Protocol`` so the generator costs as little CPU as the
machine allows; ``run_wsload`` runs it bounded in time and parses the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["WsLoadResult", "parse_wsload", "run_wsload", "wsload_argv"]

RUN_GRACE_S = 20.0
PAYLOAD = {"user": "bench", "text": "hello from the load generator", "n": 12345}


@dataclass(frozen=True, slots=True)
class WsLoadResult:
    messages: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def wsload_argv(url: str, seconds: float, *, connections: int, window: int,
                encoding: str) -> list[str]:
    return [sys.executable, "-m", "bench.wsload", url, "--seconds", f"{seconds:g}",
            "--connections", str(connections), "--window", str(window), "--encoding", encoding]


def parse_wsload(text: str) -> WsLoadResult:
    data = json.loads(text.strip().splitlines()[-1])
    return WsLoadResult(int(data["messages"]), float(data["seconds"]), float(data["p50_ms"]),
                        float(data["p99_ms"]), int(data["errors"]))


def run_wsload(url: str, seconds: float, *, connections: int = 32, window: int = 1,
               encoding: str = "json") -> WsLoadResult:
    from bench.loadgen import LoadError

    argv = wsload_argv(url, seconds, connections=connections, window=window, encoding=encoding)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=seconds + RUN_GRACE_S)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wsload did not finish within {seconds + RUN_GRACE_S} s") from exc
    if done.returncode != 0:
        raise LoadError(f"wsload failed: {done.stderr.strip()[-500:]}")
    return parse_wsload(done.stdout)


# -- the generator itself (runs in the child process) --------------------------------------

class _Conn(asyncio.Protocol):
    def __init__(self, load: _Load) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.load = load
        self.ws = ClientProtocol(parse_uri(load.url), max_size=None)
        self.transport: Any = None
        self.sent: dict[int, int] = {}
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame
        from websockets.http11 import Response

        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if not self.ready.done():
                    self.ready.set_result(event.status_code == 101)
            elif isinstance(event, Frame) and event.opcode in (1, 2):
                self.load.on_reply(self, bytes(event.data))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        self.load.lost += 1

    def send(self, frame: bytes) -> None:
        if self.load.binary:
            self.ws.send_binary(frame)
        else:
            self.ws.send_text(frame)
        self._flush()


class _Load:
    def __init__(self, url: str, encoding: str) -> None:
        from pointsman.wire.envelope import codec_for

        self.url = url
        self.codec = codec_for(encoding)
        self.binary = self.codec.binary
        self.data = self.codec.encode_data(PAYLOAD)
        self.next_id = 0
        self.latencies: list[int] = []
        self.measuring = False
        self.stopping = False
        self.count = 0
        self.errors = 0
        self.lost = 0

    def send(self, conn: _Conn) -> None:
        self.next_id += 1
        ident = self.next_id
        conn.sent[ident] = time.perf_counter_ns()
        conn.send(self.codec.encode(id=ident, path="/bench/echo", data=self.data))

    def on_reply(self, conn: _Conn, frame: bytes) -> None:
        from pointsman.wire.envelope import decode_outbound

        now = time.perf_counter_ns()
        out = decode_outbound(self.codec, bytes(frame))
        ident = int(out.id) if out.id is not None else -1
        started = conn.sent.pop(ident, None)
        if out.error is not None or started is None:
            self.errors += 1
        elif self.measuring:
            self.count += 1
            self.latencies.append(now - started)
        if not self.stopping:
            self.send(conn)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from websockets.uri import parse_uri

    uri = parse_uri(args.url)
    loop = asyncio.get_running_loop()
    load = _Load(args.url, args.encoding)
    conns: list[_Conn] = []
    for _ in range(args.connections):
        _, conn = await loop.create_connection(lambda: _Conn(load), uri.host, uri.port)
        if not await asyncio.wait_for(conn.ready, 10):
            raise SystemExit("handshake failed")
        conns.append(conn)
    for conn in conns:
        for _ in range(args.window):
            load.send(conn)
    await asyncio.sleep(min(0.5, args.seconds / 4))  # settle
    load.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(args.seconds)
    load.measuring = False
    seconds = time.perf_counter() - started
    load.stopping = True
    await asyncio.sleep(0.2)
    for conn in conns:
        conn.transport.close()
    lat = sorted(load.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] / 1e6 if lat else 0.0

    return {"messages": load.count, "seconds": seconds, "rate": load.count / seconds,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": load.errors + load.lost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--encoding", default="json", choices=["json", "msgpack"])
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(_main(args))))


if __name__ == "__main__":
    main()
