"""The leader's socket table: port 0 resolved once, one socket per slot, released on demand."""

from __future__ import annotations

import socket

from pointsman.control.sockets import SocketTable


def test_port_zero_is_resolved_once_for_every_slot_and_kept_across_growth() -> None:
    table = SocketTable()
    table.shared("127.0.0.1:0", socket.SOCK_STREAM, 2)
    first, second = table.for_slot(0)["127.0.0.1:0"][0], table.for_slot(1)["127.0.0.1:0"][0]
    port = first.getsockname()[1]
    assert port != 0 and second.getsockname()[1] == port and first is not second
    table.shared("127.0.0.1:0", socket.SOCK_STREAM, 3)
    assert table.for_slot(2)["127.0.0.1:0"][0].getsockname()[1] == port
    assert table.describe() == {"127.0.0.1:0": [f"127.0.0.1:{port}"]}
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the kernel queues it: the sockets listen
    table.retain([("127.0.0.1:0", socket.SOCK_STREAM, 1)], [])
    assert table.for_slot(1) == {}
    table.close()
    assert table.filenos() == set()


def test_a_reserved_port_stays_the_same_until_released() -> None:
    table = SocketTable()
    concrete = table.reserve("web", "127.0.0.1:0", socket.SOCK_STREAM)
    assert concrete != "127.0.0.1:0"
    assert table.reserve("web", "127.0.0.1:0", socket.SOCK_STREAM) == concrete
    assert table.reserve("web", "127.0.0.1:8080", socket.SOCK_STREAM) == "127.0.0.1:8080"
    table.close()
