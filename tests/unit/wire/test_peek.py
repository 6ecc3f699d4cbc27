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


def test_peek_errors_join_the_codec_error_hierarchy() -> None:
    from pointsman.wire import git, http_peek, postgres, proxy_protocol, tls_hello
    from pointsman.wire.errors import RemoteProtocolError, TooLarge

    for error in (
        tls_hello.TlsHelloError,
        postgres.PostgresError,
        git.GitError,
        proxy_protocol.ProxyProtocolError,
        http_peek.HttpPeekError,
    ):
        assert issubclass(error, RemoteProtocolError) and issubclass(error, ValueError)
        assert error("bad bytes").status_hint == 400
    too_large = http_peek.HttpHeadTooLarge(20000, 16384)
    assert isinstance(too_large, TooLarge)
    assert (too_large.status_hint, too_large.size, too_large.limit) == (431, 20000, 16384)
    hello = tls_hello.TlsHelloTooLarge(40000, 32768)
    assert isinstance(hello, TooLarge) and isinstance(hello, tls_hello.TlsHelloError)
    assert (hello.what, hello.limit) == ("ClientHello", 32768)
