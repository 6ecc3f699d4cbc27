"""The peek parsers stay sans-I/O: their source imports no sockets, clocks or event loop."""

from __future__ import annotations

import ast
import importlib

import pytest

from pointsman.wire.peek import NEED_DATA, NeedData

PEEK_MODULES = ["peek", "tls_hello", "postgres", "git", "proxy_protocol", "http_peek"]
FORBIDDEN = {"asyncio", "socket", "selectors", "select", "time", "threading", "ssl", "os"}


@pytest.mark.parametrize("name", PEEK_MODULES)
def test_module_imports_no_io(name: str) -> None:
    module = importlib.import_module(f"pointsman.wire.{name}")
    assert module.__file__ is not None
    with open(module.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
    assert imported <= {"__future__", "dataclasses", "enum", "typing", "struct", "ipaddress",
                        "pointsman"}  # fmt: skip


def test_need_data_is_a_singleton_sentinel() -> None:
    assert NEED_DATA is NeedData.NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"
