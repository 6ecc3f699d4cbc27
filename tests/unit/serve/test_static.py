"""Static files: safe paths, validators, ranges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pointsman.serve.static import StaticFiles


@pytest.fixture
def site(tmp_path: Path) -> StaticFiles:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>welcome</h1>")
    (root / "docs" / "a.txt").write_bytes(b"0123456789")
    (tmp_path / "secret").write_text("outside")
    os.symlink(tmp_path / "secret", root / "leak")
    return StaticFiles(root)


def _headers(response: object) -> dict[bytes, bytes]:
    return dict(response.headers)  # type: ignore[attr-defined]


def test_index_and_file(site: StaticFiles) -> None:
    index = site.respond(b"GET", b"/", {})
    assert index.status == 200 and index.length == len("<h1>welcome</h1>")
    assert _headers(index)[b"content-type"] == b"text/html; charset=utf-8"
    text = site.respond(b"GET", b"/docs/a.txt?x=1", {})
    assert (text.status, text.offset, text.length) == (200, 0, 10)
    head = site.respond(b"HEAD", b"/docs/a.txt", {})
    assert head.status == 200 and head.length == 0
    assert _headers(head)[b"content-length"] == b"10"


@pytest.mark.parametrize("target", [
    b"/../secret", b"/docs/../../secret", b"/%2e%2e/secret", b"/leak", b"/nope", b"/docs/a.txt%00",
    b"relative", b"/%ff",
])
def test_nothing_outside_the_root(site: StaticFiles, target: bytes) -> None:
    assert site.respond(b"GET", target, {}).status == 404


def test_methods(site: StaticFiles) -> None:
    response = site.respond(b"POST", b"/", {})
    assert response.status == 405 and _headers(response)[b"allow"] == b"GET, HEAD"


def test_validators(site: StaticFiles) -> None:
    first = site.respond(b"GET", b"/docs/a.txt", {})
    etag = _headers(first)[b"etag"]
    assert site.respond(b"GET", b"/docs/a.txt", {b"if-none-match": etag}).status == 304
    assert site.respond(b"GET", b"/docs/a.txt", {b"if-none-match": b'"other"'}).status == 200
    modified = _headers(first)[b"last-modified"]
    assert site.respond(b"GET", b"/docs/a.txt", {b"if-modified-since": modified}).status == 304


@pytest.mark.parametrize(("value", "status", "span"), [
    (b"bytes=2-4", 206, (2, 3)),
    (b"bytes=-3", 206, (7, 3)),
    (b"bytes=8-", 206, (8, 2)),
    (b"bytes=0-99", 200, (0, 10)),
    (b"bytes=10-", 416, None),
    (b"bytes=5-2", 416, None),
    (b"bytes=0-1,3-4", 200, (0, 10)),
])
def test_ranges(site: StaticFiles, value: bytes, status: int,
                span: tuple[int, int] | None) -> None:
    response = site.respond(b"GET", b"/docs/a.txt", {b"range": value})
    assert response.status == status
    if span is not None:
        assert (response.offset, response.length) == span


def test_prefix_is_stripped(site: StaticFiles) -> None:
    assert site.respond(b"GET", b"/static/docs/a.txt", {}, prefix="/static").status == 200
