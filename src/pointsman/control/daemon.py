"""Running detached, the pidfile, and signalling a running leader by it.

``--daemon`` is the classic double fork: the command the operator typed
waits until the detached leader reports that every worker accepts (or why it
could not start) and exits 0 or 1 accordingly, so ``pointsman serve --daemon``
in a script fails loudly instead of leaving nothing behind.

The pidfile names the leader. Without one in the config or on the command
line it lives where an unprivileged user can write: ``$XDG_RUNTIME_DIR``,
else ``/run`` for root, else ``/tmp`` with the user id in the name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PidfileError", "daemonize", "default_pidfile", "is_running", "read_pidfile",
           "remove_pidfile", "signal_leader", "wait_exit", "write_pidfile"]

PIDFILE_NAME = "pointsman.pid"
POLL_INTERVAL = 0.05


class PidfileError(Exception):
    """No leader to signal, or another one already owns the pidfile."""


def default_pidfile() -> Path:
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return Path(runtime_dir) / PIDFILE_NAME
    if os.geteuid() == 0:
        return Path("/run") / PIDFILE_NAME
    return Path("/tmp") / f"pointsman-{os.geteuid()}.pid"


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def read_pidfile(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise PidfileError(f"{path}: no such pidfile (is pointsman running?)") from None
    except OSError as exc:
        raise PidfileError(f"{path}: {exc.strerror}") from exc
    if not text.isdigit():
        raise PidfileError(f"{path}: does not hold a process id")
    return int(text)


def write_pidfile(path: Path) -> None:
    """Write our pid atomically; refuse when a live leader already owns the file."""
    with contextlib.suppress(PidfileError):
        other = read_pidfile(path)
        if other != os.getpid() and is_running(other):
            raise PidfileError(f"{path}: pointsman is already running as pid {other}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.replace(path)


def remove_pidfile(path: Path) -> None:
    """Remove the file only while it still names us (a successor may have replaced it)."""
    with contextlib.suppress(PidfileError, OSError):
        if read_pidfile(path) == os.getpid():
            path.unlink()


def signal_leader(path: Path, signum: int) -> int:
    pid = read_pidfile(path)
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        raise PidfileError(f"{path}: process {pid} is not running (stale pidfile)") from None
    return pid


def wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def daemonize() -> Callable[[str], None]:
    """Detach; the returned function reports ``ready`` or an error to the waiting command."""
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        os.waitpid(first, 0)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        outcome = b"".join(chunks).decode("utf-8", "replace")
        if outcome.startswith("ready"):
            os._exit(0)
        sys.stderr.write(outcome or "pointsman: the daemon exited before it was ready\n")
        sys.stderr.flush()
        os._exit(1)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the leader installs its handlers
    done = False

    def report(text: str) -> None:
        nonlocal done
        if done:
            return
        done = True
        with contextlib.suppress(OSError):
            os.write(write_fd, text.encode())
        os.close(write_fd)

    return report
