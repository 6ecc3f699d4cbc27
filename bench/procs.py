"""Start, watch and stop the processes of one benchmark run.

Every process (a proxy under test, a backend) runs in its own session so it
and whatever it forks are stopped together, and writes its output to a log
file in the run's work directory, whose tail is shown when it fails to start.
A ``ProcessSet`` owns everything one run started and stops it all on exit,
whatever happened in between.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench import procstat

__all__ = ["Managed", "ProcessSet", "StartError", "free_port"]

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05
LOG_TAIL_BYTES = 2000


class StartError(RuntimeError):
    """A process exited or never listened; the message carries its log's tail."""


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Managed:
    """One started process and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def last_log_line(self) -> str:
        lines = [line for line in self.log_tail().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no output)"

    def log_tail(self) -> str:
        try:
            data = self.log.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")

    def cpu_seconds(self) -> float:
        return procstat.tree_cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return procstat.peak_rss_kib(self.pid) / 1024

    def wait_listening(self, port: int, timeout: float = READY_TIMEOUT) -> None:
        """Return once 127.0.0.1:``port`` is in LISTEN state; raise if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(
                    f"{self.name} exited with {self.popen.returncode}: {self.last_log_line()}\n"
                    f"{self.log_tail()}"
                )
            listening = procstat.listening_ports()
            if ("127.0.0.1", port) in listening or ("0.0.0.0", port) in listening:
                return
            time.sleep(POLL_INTERVAL)
        raise StartError(
            f"{self.name} did not listen on {port} in {timeout:.0f}s: {self.last_log_line()}\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the process's session, SIGKILL it if it lingers."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(STOP_TIMEOUT)
        # Children may outlive a leader that exited (nginx workers), so the
        # session is killed whether or not the leader is still there.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_TIMEOUT)


@dataclass
class ProcessSet:
    """Everything one run started, stopped in reverse order on exit."""

    workdir: Path
    started: list[Managed] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Managed:
        log = self.workdir / f"{name}.log"
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd or self.workdir,
                start_new_session=True,
            )
        managed = Managed(name, popen, log)
        self.started.append(managed)
        return managed

    def cpu_seconds(self) -> float:
        """CPU seconds spent so far by every process tree this set started."""
        return sum(managed.cpu_seconds() for managed in self.started)

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
