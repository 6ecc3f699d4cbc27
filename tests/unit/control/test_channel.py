"""The leader <-> worker channel over a real socket pair: order, coalescing, route changes, EOF."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pointsman.control.channel import Channel, RouteChange, encode
from pointsman.wire.gorouter import Options, RegistryMessage


class Counting(socket.socket):
    """A socket that counts its ``send`` calls (one per flushed batch)."""

    sends = 0

    def send(self, data: Any, flags: int = 0) -> int:
        self.sends += 1
        return super().send(data, flags)


def pair(loop: asyncio.AbstractEventLoop) -> tuple[Channel, Channel, list[Any], list[str]]:
    left, right = socket.socketpair()
    counting = Counting(left.family, left.type, left.proto, fileno=left.detach())
    received: list[Any] = []
    closed: list[str] = []
    sender = Channel(counting, loop, lambda message: None, lambda: closed.append("sender"))
    receiver = Channel(right, loop, received.append, lambda: closed.append("receiver"))
    sender.start()
    receiver.start()
    return sender, receiver, received, closed


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def test_many_messages_arrive_in_order_in_few_writes() -> None:
    sender, receiver, received, _ = pair(asyncio.get_running_loop())
    count = 20_000
    for batch in range(20):  # 20 loop iterations, 1000 messages each
        for i in range(1000):
            sender.send({"type": "n", "i": batch * 1000 + i, "pad": "x" * 50})
        await asyncio.sleep(0)
    await until(lambda: len(received) == count)
    assert [message["i"] for message in received] == list(range(count))
    assert isinstance(sender.sock, Counting)
    # One write per iteration, a few more when the socket buffer was full.
    assert sender.sock.sends < 200, sender.sock.sends
    sender.close()
    receiver.close()


async def test_route_changes_travel_as_arrays_and_decode_to_route_changes() -> None:
    sender, receiver, received, _ = pair(asyncio.get_running_loop())
    message = RegistryMessage(host="10.0.0.1", port=8080, uris=("a.example.com",),
                              tags={"zone": "z1"}, options=Options(loadbalancing="hash"))
    change = RouteChange("register", "nats", message)
    line = encode(change)
    assert line.startswith(b'["register","nats",{') and line.endswith(b"}]\n")
    sender.write(line)
    sender.send({"type": "drain", "route": "a.example.com", "endpoint": "10.0.0.1:8080"})
    sender.send(RouteChange("unregister", "admin", message))
    await until(lambda: len(received) == 3)
    assert received[0] == change
    assert received[1] == {"type": "drain", "route": "a.example.com",
                           "endpoint": "10.0.0.1:8080"}
    assert received[2] == RouteChange("unregister", "admin", message)
    sender.close()
    receiver.close()


async def test_a_bad_line_is_skipped_and_the_rest_still_arrive() -> None:
    sender, receiver, received, _ = pair(asyncio.get_running_loop())
    sender.write(b'["register","nats",{"port":80}]\n')  # no host: not a registration
    sender.write(b"not json\n")
    sender.send({"type": "ok"})
    await until(lambda: len(received) == 1)
    assert received == [{"type": "ok"}]
    sender.close()
    receiver.close()


async def test_what_is_queued_before_close_still_goes_out_and_the_peer_sees_eof() -> None:
    sender, _receiver, received, closed = pair(asyncio.get_running_loop())
    for i in range(100):
        sender.send({"type": "last", "i": i})
    sender.close()  # in the same iteration: nothing was flushed yet
    sender.send({"type": "too late"})
    await until(lambda: "receiver" in closed)
    assert [message["i"] for message in received] == list(range(100))
    assert closed == ["sender", "receiver"]


async def test_drain_inbox_reads_the_last_words_of_a_peer_that_went() -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    received: list[Any] = []
    closed: list[bool] = []
    receiver = Channel(right, loop, received.append, lambda: closed.append(True))
    receiver.start()
    left.sendall(encode({"type": "stats", "n": 1}) + encode({"type": "stats", "n": 2}))
    left.close()
    receiver.drain_inbox()  # synchronously, as the leader does when it reaps a worker
    assert [message["n"] for message in received] == [1, 2] and closed == [True]


async def test_after_a_handler_raised_no_line_comes_twice_and_none_is_lost() -> None:
    loop = asyncio.get_running_loop()
    left, right = socket.socketpair()
    seen: list[int] = []

    def handler(message: Any) -> None:
        seen.append(message["i"])
        if message["i"] == 1:
            raise RuntimeError("handler bug")

    receiver = Channel(right, loop, handler, lambda: None)
    receiver.start()
    left.sendall(b"".join(encode({"i": i}) for i in range(3)))
    await asyncio.sleep(0.05)  # the reader callback raised on line 1 (logged by the loop)
    left.sendall(encode({"i": 3}))
    await until(lambda: 3 in seen)
    assert seen == [0, 1, 2, 3]  # none twice, none lost: line 2 waited for the next read
    receiver.close()
    left.close()
