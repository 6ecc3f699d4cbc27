"""The chat service: run several instances; a room spans all of them.

Each instance knows only the sockets pinned to it. Whatever happens in a room
is broadcast to every instance through the private route
``/rooms/:room/fanout``, and each instance pushes it to its own members.

    python examples/chat/service.py [--nats nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import msgspec

from pointsman.service import Context, NatsTransport, Router, Service, ServiceError

router = Router()
members: dict[str, set[str]] = {}  # room -> socket ids pinned to this instance


class Join(msgspec.Struct):
    name: str


class Say(msgspec.Struct):
    text: str


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"event": kind, **fields}


@router.public_bind("/rooms/:room/join")
async def join(ctx: Context) -> dict[str, Any]:
    name = ctx.unmarshal(Join).name.strip()[:40]
    if not name:
        raise ServiceError("invalid_data", "a name is required")
    room = ctx.params["room"]
    ctx.state.update(room=room, name=name)
    assert ctx.socket_id is not None
    members.setdefault(room, set()).add(ctx.socket_id)
    ctx.service.broadcast(f"/rooms/{room}/fanout", event("joined", name=name))
    return {"room": room, "instance": ctx.service.instance}


@router.public_bind("/rooms/:room/say")
async def say(ctx: Context) -> dict[str, bool]:
    if ctx.state.get("room") != ctx.params["room"]:
        raise ServiceError("not_joined", "join the room first")
    text = ctx.unmarshal(Say).text[:2000]
    ctx.service.broadcast(f"/rooms/{ctx.params['room']}/fanout",
                          event("message", name=ctx.state["name"], text=text,
                                instance=ctx.service.instance))
    return {"ok": True}


@router.bind("/rooms/:room/fanout")
async def fanout(ctx: Context) -> None:
    room = ctx.params["room"]
    for socket_id in list(members.get(room, ())):
        ctx.service.send_to(socket_id, ctx.data, path=f"/rooms/{room}/events")


@router.use_close
async def leave(ctx: Context) -> None:
    room = ctx.state.get("room")
    if room is None or ctx.socket_id is None:
        return
    members.get(room, set()).discard(ctx.socket_id)
    ctx.service.broadcast(f"/rooms/{room}/fanout", event("left", name=ctx.state["name"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--interval", type=float, default=2.0, help="heartbeat seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Service("chat", NatsTransport(args.nats), router, interval=args.interval).run()


if __name__ == "__main__":
    main()
