"""The echo behind the WebSocket gateway scenarios, in the two shapes the peers need.

``python -m bench.ws_backends server --port P --encoding E``: a plain WebSocket
server answering each envelope ``{path, id, data}`` with ``{id, data}``; nginx
relays to it. ``python -m bench.ws_backends service --nats URL --encoding E``:
the same echo as a pointsman service (``/bench/echo``) behind the gateway.
Both decode and re-encode ``data``, on uvloop, one process each.
"""

from __future__ import annotations

import argparse
from typing import Any


def serve_echo(host: str, port: int, encoding: str) -> None:
    import asyncio

    import uvloop
    from websockets.asyncio.server import ServerConnection, serve

    from pointsman.wire.envelope import EnvelopeError, codec_for

    codec = codec_for(encoding)

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            frame = message.encode() if isinstance(message, str) else message
            try:
                env = codec.decode(frame)
            except EnvelopeError as exc:
                await ws.send(codec.encode(error=("bad_envelope", exc.message)))
                continue
            data = codec.encode_data(codec.decode_data(env.data))
            reply = codec.encode(id=env.id, data=data)
            await ws.send(reply if codec.binary else reply.decode())

    async def main() -> None:
        async with serve(handler, host, port, compression=None, max_size=None):
            await asyncio.Future()

    uvloop.run(main())


def run_service(nats_url: str, encoding: str) -> None:
    from pointsman.service import Context, NatsTransport, Router, Service

    router = Router()

    @router.public_bind("/bench/echo")
    async def echo(ctx: Context) -> Any:
        return ctx.data

    Service("bench", NatsTransport(nats_url), router, encoding=encoding).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    server = sub.add_parser("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--encoding", default="json")
    service = sub.add_parser("service")
    service.add_argument("--nats", required=True)
    service.add_argument("--encoding", default="json")
    args = parser.parse_args()
    if args.what == "server":
        serve_echo(args.host, args.port, args.encoding)
    else:
        run_service(args.nats, args.encoding)


if __name__ == "__main__":
    main()
