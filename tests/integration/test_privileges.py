"""``[process] user``: workers run as that user; the leader keeps root to bind and reload.

These tests run as root (as the test machines do): the point is a worker that
is not.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_support import TOKEN, admin_call, admin_url
from test_process import _command, children, config_text, wait_until

from harness import ROOT, Pointsman, ThreadedServer, _environment, exchange

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder an unprivileged worker can enter (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="pointsman-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _ids(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()[1:]
    gid = next(line for line in status if line.startswith("Gid:")).split()[1:]
    assert len(set(uid)) == 1 and len(set(gid)) == 1, (uid, gid)  # real = effective = saved
    return int(uid[0]), int(gid[0])


def test_workers_run_as_the_user_and_still_write_their_logs(
        pointsman: Callable[..., Pointsman], write_config: Callable[[str], Path],
        echo_server: Callable[..., ThreadedServer], open_dir: Path, tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test needs root, as nginx's 'user' does"
    access = open_dir / "access.log"
    text = config_text(echo_server(), workers=2).replace(
        "[process]", f'[process]\nuser = "nobody"\nstate_file = "{tmp_path / "state.json"}"')
    text += f'\n[logging]\naccess = "{access}"\n'
    text += f'\n[admin]\nlisten = "127.0.0.1:0"\ntoken = "{TOKEN}"\n'
    handle = pointsman("serve", "-c", str(write_config(text)))
    workers = children(handle.process.pid)
    assert len(workers) == 2
    assert all(_ids(pid) == (NOBODY.pw_uid, NOBODY.pw_gid) for pid in workers)
    assert _ids(handle.process.pid)[0] == 0  # the leader keeps root, to bind on reload
    for index in range(6):
        assert exchange(handle.address("front"), b"%d" % index) == b"%d" % index
    wait_until(lambda: access.exists() and len(access.read_text().splitlines()) >= 6, 5)
    assert access.stat().st_uid == NOBODY.pw_uid
    # The state file is the leader's to write; workers take the change all the same.
    route = {"uris": ["api.example.com"], "host": "127.0.0.1", "port": 7003}
    assert admin_call(admin_url(handle), "POST", "/routes", route)[0] == 200
    assert "api.example.com" in (tmp_path / "state.json").read_text()
    tables = admin_call(admin_url(handle), "GET", "/routes?workers=1")[1]
    assert len(tables) == 2 and all("api.example.com" in t["routes"] for t in tables)

    # logrotate moves the file; USR1: the leader creates the new one for the workers.
    access.rename(open_dir / "access.log.1")
    handle.signal(signal.SIGUSR1)
    handle.wait_event("logs_reopened")
    time.sleep(0.2)
    wait_until(lambda: (exchange(handle.address("front"), b"again") == b"again"
                        and access.exists() and "front" in access.read_text()), 5)
    assert access.stat().st_uid == NOBODY.pw_uid

    # A reload binds nothing new here, but its workers drop too.
    handle.signal(signal.SIGHUP)
    handle.wait_event("reloaded")
    wait_until(lambda: len(children(handle.process.pid)) == 2, 10)
    assert all(_ids(pid)[0] == NOBODY.pw_uid for pid in children(handle.process.pid))
    assert exchange(handle.address("front"), b"after") == b"after"


def test_an_unknown_user_is_a_config_error(write_config: Callable[[str], Path]) -> None:
    path = write_config('[process]\nuser = "no-such-user-here"\ngroup = "nor-this-group"\n')
    checked = _command("check", "-c", str(path))
    assert checked.returncode != 0
    assert "process.user: no such user 'no-such-user-here'" in checked.stderr
    assert "process.group: no such group 'nor-this-group'" in checked.stderr


def _serve_as_nobody(config: Path) -> tuple[subprocess.Popen[str], list[dict[str, object]]]:
    """``pointsman serve`` started as nobody; its events until ready or exit."""
    process = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
         sys.executable, "-m", "pointsman", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, cwd=ROOT, env=_environment())
    assert process.stderr is not None
    events = []
    for line in process.stderr:
        with_json = line.strip()
        if not with_json.startswith("{"):
            continue
        event = json.loads(with_json)
        events.append(event)
        if event.get("event") in ("ready", "start_failed"):
            break
    return process, events


def test_a_user_without_root_is_a_clear_start_error_unless_it_is_that_user(
        echo_server: Callable[..., ThreadedServer], open_dir: Path) -> None:
    base = config_text(echo_server(), workers=1).replace(
        "[process]", f'[process]\nstate_file = "{open_dir / "state.json"}"')
    refused = open_dir / "refused.toml"
    refused.write_text(base.replace("[process]", '[process]\nuser = "root"'))
    refused.chmod(0o644)
    process, events = _serve_as_nobody(refused)
    try:
        assert process.wait(15) == 1
    finally:
        process.kill()
    failed = [event for event in events if event.get("event") == "start_failed"]
    assert failed and "user = 'root' needs the leader to start as root" in str(
        failed[0]["error"])

    itself = open_dir / "itself.toml"
    itself.write_text(base.replace("[process]", '[process]\nuser = "nobody"'))
    itself.chmod(0o644)
    process, events = _serve_as_nobody(itself)
    try:
        assert events[-1]["event"] == "ready", events
        front = events[-1]["listeners"]["front"][0]  # type: ignore[index]
        host, _, port = str(front).rpartition(":")
        assert exchange((host, int(port)), b"hi") == b"hi"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
