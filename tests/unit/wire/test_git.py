"""git: request lines as git 2.x sends them, refusals, and fuzzing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointsman.wire import git
from pointsman.wire.git import NEED_DATA, GitError, GitRequest


def three_ways(parse: Callable[[bytes], Any], data: bytes, trailing: bytes = b"0000") -> Any:
    """Feed ``data`` whole, as every prefix, and with trailing bytes; expect one answer."""
    for i in range(len(data)):
        assert parse(data[:i]) is NEED_DATA, f"prefix of {i} bytes"
    whole = parse(data)
    assert whole is not NEED_DATA
    assert parse(data + trailing) == whole
    assert parse(bytearray(data)) == whole
    return whole


# Captured from git 2.39 (ls-remote, ls-remote with ~user, archive --remote).
LS_REMOTE = b"0044git-upload-pack /alice/proj.git\x00host=127.0.0.1:35247\x00\x00version=2\x00"
TILDE = b"003bgit-upload-pack ~bob/x\x00host=localhost:35247\x00\x00version=2\x00"
ARCHIVE = b"003cgit-upload-archive /a/b\x00host=127.0.0.1:35247\x00\x00version=2\x00"


def test_ls_remote_request() -> None:
    req = three_ways(git.parse, LS_REMOTE)
    assert req == GitRequest(
        "git-upload-pack", "/alice/proj.git", "127.0.0.1", 35247, ("version=2",), 0x44
    )
    assert (req.user, req.repo, req.version) == ("alice", "proj.git", 2)


def test_tilde_path_and_archive() -> None:
    req = three_ways(git.parse, TILDE)
    assert (req.path, req.user, req.repo, req.host) == ("~bob/x", "bob", "x", "localhost")
    req = three_ways(git.parse, ARCHIVE, trailing=b"0012argument HEAD\n0000")
    assert req.service == "git-upload-archive" and req.length == 0x3C


@pytest.mark.parametrize(
    ("payload", "host", "port", "extra"),
    [
        (b"git-receive-pack /u/r\x00host=example.com\x00", "example.com", None, ()),
        (b"git-upload-pack /u/r\x00", None, None, ()),
        (b"git-upload-pack /u/r", None, None, ()),
        (b"git-upload-pack /u/r\x00\x00version=2\x00", None, None, ("version=2",)),
        (b"git-upload-pack /u/r\x00host=[::1]:9418\x00", "::1", 9418, ()),
        (b"git-upload-pack /u/r\x00host=h\x00\x00a=1\x00b\x00", "h", None, ("a=1", "b")),
        (b"git-upload-pack /u/r\x00host=h\x00\n", "h", None, ()),
    ],
)
def test_request_shapes(
    payload: bytes, host: str | None, port: int | None, extra: tuple[str, ...]
) -> None:
    req = three_ways(git.parse, git.pkt_line(payload))
    assert (req.host, req.port, req.extra) == (host, port, extra)
    assert req.user == "u" and req.repo == "r"


def test_user_and_repo_need_two_segments() -> None:
    req = git.parse(git.pkt_line(b"git-upload-pack /lonely.git\x00"))
    assert isinstance(req, GitRequest)
    assert (req.user, req.repo, req.version) == (None, None, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01",
        b"0000",  # flush first
        b"0008",  # too short for any service
        b"fff1",  # over LARGE_PACKET_MAX
        b"0030GET ",
        b"0030git+",
        git.pkt_line(b"git-frob-pack /u/r\x00"),
        git.pkt_line(b"git-upload-pack\x00"),
        git.pkt_line(b"git-upload-pack \x00host=h\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h"),
        git.pkt_line(b"git-upload-pack /u/r\x00user=h\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h:x\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h:99999\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=[::1\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h\x00v=2\x00"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h\x00\x00v=2"),
        git.pkt_line(b"git-upload-pack /u/r\x00host=h\x00\x00\x00"),
        git.pkt_line(b"git-upload-pack /u/\xff\x00"),
    ],
)
def test_not_a_git_request(data: bytes) -> None:
    with pytest.raises(GitError):
        git.parse(data)


def test_err_pkt() -> None:
    assert git.err_pkt("no such repo") == b"0015ERR no such repo\n"
    assert git.err_pkt("two\nlines") == b"0012ERR two lines\n"
    with pytest.raises(GitError):
        git.pkt_line(b"x" * git.MAX_PKT_LINE)


# -- properties ---------------------------------------------------------------

segment = st.from_regex(r"\A[A-Za-z0-9._-]{1,12}\Z", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    service=st.sampled_from(git.SERVICES),
    user=segment,
    repo=segment,
    host=st.none() | st.from_regex(r"\A[a-z0-9.-]{1,20}\Z", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
    extra=st.lists(st.from_regex(r"\A[a-z]{1,6}=[0-9]{1,3}\Z", fullmatch=True), max_size=3),
)
def test_generated_requests_parse_the_same_every_way(
    service: str, user: str, repo: str, host: str | None, port: int | None, extra: list[str]
) -> None:
    payload = f"{service} /{user}/{repo}\0".encode()
    if host is not None:
        payload += f"host={host}".encode() + (f":{port}".encode() if port else b"") + b"\0"
    if extra:
        payload += b"\0" + b"".join(e.encode() + b"\0" for e in extra)
    req = three_ways(git.parse, git.pkt_line(payload))
    assert (req.service, req.path, req.host, req.extra) == (
        service,
        f"/{user}/{repo}",
        host,
        tuple(extra),
    )
    assert req.port == (port if host is not None else None)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_git_error(data: bytes) -> None:
    with contextlib.suppress(GitError):
        git.parse(data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(LS_REMOTE) - 1), st.integers(0, 255)), max_size=3))
def test_mutated_requests_raise_only_git_error(edits: list[tuple[int, int]]) -> None:
    data = bytearray(LS_REMOTE)
    for pos, value in edits:
        data[pos] = value
    refused_at = None
    for cut in range(len(data) + 1):
        try:
            git.parse(bytes(data[:cut]))
        except GitError:
            refused_at = cut if refused_at is None else refused_at
        else:  # a refusal is final: routers.first relies on it
            assert refused_at is None, f"refused {refused_at} bytes, accepted {cut}"
