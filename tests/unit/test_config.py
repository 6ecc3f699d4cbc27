"""Config errors name the file, the key path, the line, and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.cli import main
from pointsman.config import ConfigError, TcpListener, load, loads, parse_listen

BROKEN = """\
[logging]
access = "stdout"

[[listeners]]
name = "git"
listen = "0.0.0.0:9418"
protocol = "tcp"
upstream = "pool"
bogus = 1

[listeners.limits]
buffer = "big"

[[listeners]]
name = "second"
protocol = "udpx"
listen = ":1"

[upstreams.pool]
endpoints = ["127.0.0.1:9000"]
"""


def test_every_error_is_reported_with_path_line_and_expectation() -> None:
    with pytest.raises(ConfigError) as caught:
        loads(BROKEN, "site.toml")
    lines = [str(issue) for issue in caught.value.issues]
    assert lines[:2] == [
        "site.toml:9: listeners[0].bogus: unknown key",
        "site.toml:12: listeners[0].limits.buffer: expected 'int', got 'str'",
    ]
    assert lines[2].startswith("site.toml:16: listeners[1].protocol: unknown protocol 'udpx'; "
                               "expected one of ")
    assert len(lines) == 3 and "tcp" in lines[2]


def test_cross_references_are_checked() -> None:
    text = """
[[listeners]]
name = "a"
protocol = "tcp"
listen = "nowhere"
upstream = "missing"

[[listeners]]
name = "a"
protocol = "tcp"
listen = "127.0.0.1:1"
route = "absent.py"
upstream = "pool"

[upstreams.pool]
endpoints = []
"""
    with pytest.raises(ConfigError) as caught:
        loads(text, "x.toml")
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert messages["listeners[0].listen"] == "expected 'host:port', got 'nowhere'"
    assert messages["listeners[0].upstream"] == "no upstream named 'missing'"
    assert messages["listeners[1].name"] == "duplicate listener name 'a'"
    assert messages["listeners[1]"] == "expected exactly one of 'route' or 'upstream'"
    assert messages["upstreams.pool.endpoints"] == "expected at least one 'host:port'"


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        loads("[[listeners]]\nname = \n", "bad.toml")
    issue = caught.value.issues[0]
    assert issue.line == 2 and "not valid TOML" in issue.message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "none.toml")
    assert "cannot read file" in str(caught.value)


def test_defaults_are_filled() -> None:
    config = loads('[[listeners]]\nname="t"\nprotocol="tcp"\nlisten=":7"\nupstream="u"\n'
                   '[upstreams.u]\nendpoints=["127.0.0.1:7"]\n')
    listener = config.listeners[0]
    assert isinstance(listener, TcpListener)
    assert listener.limits.buffer == 64 * 1024
    assert config.upstreams["u"].balance == "round_robin"


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("[::1]:443", ("::1", 443)),
    (":9000", ("0.0.0.0", 9000)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_check_command_prints_every_error_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BROKEN)
    assert main(["check", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:9: listeners[0].bogus: unknown key" in err
    assert "3 error(s)" in err


def test_check_command_loads_route_modules(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "router.py").write_text("def route(data, conn):\n    return 1 +\n")
    path = tmp_path / "site.toml"
    path.write_text('[[listeners]]\nname="t"\nprotocol="tcp"\nlisten=":7"\nroute="router.py"\n')
    assert main(["check", "-c", str(path)]) == 1
    assert "listeners[0].route: " in capsys.readouterr().err
    (tmp_path / "router.py").write_text("def route(data, conn):\n    return '127.0.0.1:7'\n")
    assert main(["check", "-c", str(path)]) == 0
    assert "ok (1 listeners, 0 upstreams)" in capsys.readouterr().out
