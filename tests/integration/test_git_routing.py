"""git:// routed by user through pointsman to two real git daemons.

Each daemon serves a different user's repositories; ``git clone`` through the
proxy must land on the right one, and an unknown user must get git's own
"remote error" rather than a hang or a broken pipe.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ROOT, Pointsman, free_port_number, wait_for_port

EXAMPLE = ROOT / "examples" / "git_router.py"
GIT_TIMEOUT = 20


def git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=check,
    )  # fmt: skip


def make_repo(base: Path, path: str, content: str) -> None:
    """A bare repository at ``base/path`` whose one commit holds README = content."""
    work = base.parent / f"work-{path.replace('/', '-')}"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", str(work))
    (work / "README").write_text(content)
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    git("clone", "-q", "--bare", str(work), str(base / path))


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Daemon]]:
    daemons: list[Daemon] = []

    def start(name: str, repos: dict[str, str]) -> Daemon:
        base = tmp_path / name / "repos"
        base.mkdir(parents=True)
        for path, content in repos.items():
            make_repo(base, path, content)
        port = free_port_number()
        process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
             "--listen=127.0.0.1", f"--port={port}", "--informative-errors"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        daemon = Daemon(process, port)
        daemons.append(daemon)
        wait_for_port("127.0.0.1", port)
        return daemon

    yield start
    for daemon in daemons:
        daemon.process.terminate()
        try:
            daemon.process.wait(5)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()


@pytest.mark.parametrize("function", ["route", "builtin"])
def test_clone_lands_on_the_users_backend(
    function: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pointsman: Callable[..., Pointsman],
    git_daemon: Callable[[str, dict[str, str]], Daemon],
) -> None:
    first = git_daemon("one", {"alice/proj.git": "alice's project\n"})
    second = git_daemon(
        "two", {"bob/tools.git": "bob's tools\n", "alice/proj.git": "the wrong alice\n"}
    )
    monkeypatch.setenv("POINTSMAN_GIT_BACKENDS", f"alice={first.address},bob={second.address}")
    proxy = pointsman("tcp", "-c", f"{EXAMPLE}:{function}", "-h", "127.0.0.1", "-p", "0")
    host, port = proxy.address("tcp")

    git("clone", "-q", f"git://{host}:{port}/alice/proj.git", str(tmp_path / "a"))
    assert (tmp_path / "a" / "README").read_text() == "alice's project\n"
    git("clone", "-q", f"git://{host}:{port}/bob/tools.git", str(tmp_path / "b"))
    assert (tmp_path / "b" / "README").read_text() == "bob's tools\n"
    # protocol v0 (no version=2 extra parameter) is routed the same way
    git("-c", "protocol.version=0", "clone", "-q", f"git://{host}:{port}/bob/tools.git",
        str(tmp_path / "c"))  # fmt: skip
    assert (tmp_path / "c" / "README").read_text() == "bob's tools\n"

    refused = git("ls-remote", f"git://{host}:{port}/carol/x.git", check=False)
    assert refused.returncode != 0
    assert "remote error:" in refused.stderr
    assert "/carol/x.git" in refused.stderr

    records = proxy.wait_access(4)
    backends = sorted(r.get("backend") or "" for r in records)
    assert backends.count(first.address) == 1
    assert backends.count(second.address) == 2


def test_non_git_bytes_are_closed_without_reaching_a_backend(
    monkeypatch: pytest.MonkeyPatch,
    pointsman: Callable[..., Pointsman],
    git_daemon: Callable[[str, dict[str, str]], Daemon],
) -> None:

    daemon = git_daemon("one", {"alice/proj.git": "x\n"})
    monkeypatch.setenv("POINTSMAN_GIT_BACKENDS", f"alice={daemon.address}")
    proxy = pointsman("tcp", "-c", str(EXAMPLE), "-h", "127.0.0.1", "-p", "0")
    with socket.create_connection(proxy.address("tcp"), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert sock.recv(100) == b""
    record = proxy.wait_access(1)[0]
    assert not record.get("backend")
