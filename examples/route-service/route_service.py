"""A Cloud Foundry route service: checks a request, then sends it on through the router.

A router sends a request bound to this service with three headers:
``X-CF-Forwarded-Url`` (where the client was going), ``X-CF-Proxy-Signature``
and ``X-CF-Proxy-Metadata``. The service decides (here: is ``--require-header``
present?), then makes the request to the forwarded URL itself, keeping the
signature and metadata, so the router lets it through to the app. The
answer goes back to the client with an ``X-Route-Service`` header added.

The forwarded URL names the app's public host; this example connects to the
router given by ``--router`` and sends that host in ``Host``, as a service
behind the same load balancer would. Standard library only; request bodies
are buffered up to ``MAX_BODY``.

    python3 route_service.py --listen 127.0.0.1:9100 --router 127.0.0.1:8080 \\
        [--cert cert.pem --key key.pem] [--require-header X-Api-Key]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
TIMEOUT = 30.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
              "te", "trailer", "upgrade", "proxy-connection"}
CF_HEADERS = ("x-cf-forwarded-url", "x-cf-proxy-signature", "x-cf-proxy-metadata")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_request(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise Refused(431, "Request Header Fields Too Large")
    line, *fields = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method = line.split(" ", 1)[0]
    headers = [(name.strip(), value.strip())
               for name, _, value in (field.partition(":") for field in fields)]
    found = {name.lower(): value for name, value in headers}
    if "chunked" in found.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            if len(body) + size > MAX_BODY:
                raise Refused(413, "Payload Too Large")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        length = int(found.get("content-length", "0"))
        if length > MAX_BODY:
            raise Refused(413, "Payload Too Large")
        body = await reader.readexactly(length)
    return method, headers, body


def check(headers: list[tuple[str, str]], required: str | None) -> str:
    """The forwarded URL of an acceptable request; ``Refused`` otherwise."""
    found = {name.lower(): value for name, value in headers}
    if not all(found.get(name) for name in CF_HEADERS):
        raise Refused(400, "Bad Request: not sent by a router")
    if required and required.lower() not in found:
        raise Refused(403, "Forbidden")
    return found["x-cf-forwarded-url"]


async def forward(router: tuple[str, int], method: str, url: str,
                  headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Send the request on to ``url`` through the router; its whole raw response."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in HOP_BY_HOP]
    lines += ["X-Route-Service: checked", f"Content-Length: {len(body)}", "Connection: close"]
    reader, writer = await asyncio.open_connection(*router)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), TIMEOUT)
    finally:
        writer.close()


def mark(response: bytes) -> bytes:
    """The router's response, with this service's header after the status line."""
    cut = response.find(b"\r\n")
    if cut < 0:
        return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    return response[:cut + 2] + b"X-Route-Service: seen\r\n" + response[cut + 2:]


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                router: tuple[str, int], required: str | None) -> None:
    try:
        method, headers, body = await asyncio.wait_for(read_request(reader), TIMEOUT)
        url = check(headers, required)
        print(f"{method} {url}", flush=True)
        writer.write(mark(await forward(router, method, url, headers, body)))
    except Refused as refused:
        writer.write(f"HTTP/1.1 {refused.status} {refused.reason}\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
            TimeoutError, ValueError):
        pass
    finally:
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, default=("127.0.0.1", 9100))
    parser.add_argument("--router", type=address, default=("127.0.0.1", 8080),
                        help="where requests are sent on (the router's HTTP listener)")
    parser.add_argument("--cert", help="PEM certificate: serve TLS (needs --key)")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--require-header", help="refuse (403) requests without this header")
    args = parser.parse_args()
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args.router, args.require_header),
        *args.listen, ssl=context, limit=MAX_HEAD)
    print(f"route service on {args.listen[0]}:{args.listen[1]}, TLS {'on' if context else 'off'}",
          flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
