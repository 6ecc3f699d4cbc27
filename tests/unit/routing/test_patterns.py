"""Pattern compilation and most-specific matching."""

from __future__ import annotations

import pytest

from pointsman.routing.patterns import Matcher, PatternError, compile_pattern


def test_param_and_rest_capture() -> None:
    assert compile_pattern("/users/:id").match("/users/42") == {"id": "42"}
    assert compile_pattern("/files/**").match("/files/a/b") == {"**": "a/b"}
    assert compile_pattern("/files/**").match("/files") == {"**": ""}
    assert compile_pattern("/a/*/c").match("/a/b/c") == {}
    assert compile_pattern("/a/**/z/:x").match("/a/b/c/z/9") == {"**": "b/c", "x": "9"}
    assert compile_pattern("/users/:id").match("/users") is None
    assert compile_pattern("/users/:id").match("/users/1/2") is None


def test_empty_segments_are_ignored() -> None:
    assert compile_pattern("/a/b/").match("//a//b") == {}


@pytest.mark.parametrize("bad", ["users", "/a/:", "/a/:1x", "/a/b*", "/a/x:y", "/a/***"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_static_beats_param_beats_star_beats_rest() -> None:
    table = Matcher({"/users/me": "static", "/users/:id": "param", "/users/*": "star",
                     "/users/**": "rest", "/**": "root"})
    assert table.match("/users/me").value == "static"  # type: ignore[union-attr]
    assert table.match("/users/7").value == "param"  # type: ignore[union-attr]
    assert table.match("/users/7/x").value == "rest"  # type: ignore[union-attr]
    assert table.match("/other").value == "root"  # type: ignore[union-attr]
    assert table.match("/").value == "root"  # type: ignore[union-attr]


def test_precedence_is_decided_from_the_left() -> None:
    table = Matcher({"/:a/static": "param-first", "/static/*": "static-first"})
    found = table.match("/static/static")
    assert found is not None and found.value == "static-first"


def test_backtracks_when_the_specific_branch_dead_ends() -> None:
    table = Matcher({"/users/me/settings": "s", "/users/:id/posts": "p"})
    found = table.match("/users/me/posts")
    assert found is not None and found.value == "p" and found.params == {"id": "me"}
    assert table.match("/users/me/other") is None


def test_registration_order_does_not_matter() -> None:
    patterns = ["/a/:x", "/a/*", "/a/b", "/a/**"]
    first = Matcher([(p, p) for p in patterns])
    second = Matcher([(p, p) for p in reversed(patterns)])
    for path in ("/a/b", "/a/c", "/a/c/d", "/a"):
        a, b = first.match(path), second.match(path)
        assert (a and a.value) == (b and b.value), path
