"""Feeding a peek parser the way h11's tests do: whole, every prefix, with trailing bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pointsman.wire.peek import NEED_DATA


def three_ways(parse: Callable[[bytes], Any], data: bytes, trailing: bytes) -> Any:
    """Every strict prefix needs more data; whole, followed or in another buffer: one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(bytearray(data)) == whole
    assert parse(memoryview(data)) == whole
    return whole
