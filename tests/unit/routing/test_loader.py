"""Loading route functions from files and modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.routing.content import Conn
from pointsman.routing.loader import RouteLoadError, load_route_module

CONN = Conn(client=("127.0.0.1", 1), local=("127.0.0.1", 2), listener="t")


def test_route_and_proxymachine_style_names(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def route(data, conn):\n    return 'a:1'\n")
    (tmp_path / "b.py").write_text("def proxy(data):\n    return data.decode()\n")
    assert load_route_module(str(tmp_path / "a.py")).route(b"", CONN) == "a:1"
    assert load_route_module("b.py", tmp_path).route(b"h:2", CONN) == "h:2"


def test_named_function_and_module(tmp_path: Path) -> None:
    (tmp_path / "c.py").write_text("def pick(data, conn):\n    return conn.listener\n")
    assert load_route_module(f"{tmp_path / 'c.py'}:pick").route(b"", CONN) == "t"
    module = load_route_module("os.path:basename")
    assert module.on_connect is None


@pytest.mark.parametrize(("source", "message"), [
    ("x = 1\n", "defines no function named 'route' or 'proxy'"),
    ("def route():\n    pass\n", "must take (data, conn) or (data)"),
    ("raise ValueError('nope')\n", "ValueError: nope"),
])
def test_errors_say_what_is_wrong(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(source)
    with pytest.raises(RouteLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_route_module(str(tmp_path / "bad.py"))


def test_missing_file() -> None:
    with pytest.raises(RouteLoadError, match="no such file"):
        load_route_module("/nonexistent/router.py")


def test_on_connect_is_found_beside_route(tmp_path: Path) -> None:
    (tmp_path / "d.py").write_text("def route(data, conn):\n    return None\n"
                                   "def on_connect(conn):\n    return 'h:1'\n")
    module = load_route_module(str(tmp_path / "d.py"))
    assert module.on_connect is not None and module.on_connect(CONN) == "h:1"
