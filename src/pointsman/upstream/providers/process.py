"""One local process per connection, for machines without containers.

The command is a template: ``{port}`` becomes a free port picked for this
backend, ``{backend}`` its id and ``{instance_id}`` the gateway service
instance id derived from it. Each process starts in its own session, so
stopping it signals the whole group (a shell wrapper and its children): SIGTERM
first, SIGKILL after ``grace`` seconds.

Labels become environment variables (``pointsman.instance`` ->
``POINTSMAN_INSTANCE``), inherited by every child. That is how leftovers are
found after pointsman itself was killed: ``/proc/<pid>/environ`` of each process
is read and only those carrying every asked-for variable are listed. A pid
reused by an unrelated process does not carry them, so it is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pointsman.config import ProbeConfig, ProcessProviderConfig
from pointsman.upstream.providers.base import (
    BACKEND_LABEL,
    Handle,
    ProviderError,
    free_port,
    network_probe,
    service_instance_id,
)

__all__ = ["ProcessProvider", "label_env", "processes_with_env"]

STOP_POLL_INTERVAL = 0.01
MAX_ENVIRON_BYTES = 1 << 20


def label_env(labels: Mapping[str, str]) -> dict[str, str]:
    """``{"pointsman.instance": "x"}`` -> ``{"POINTSMAN_INSTANCE": "x"}``."""
    return {key.upper().replace(".", "_").replace("-", "_"): value
            for key, value in labels.items()}


def processes_with_env(wanted: Mapping[str, str], proc: Path = Path("/proc")) -> list[int]:
    """Pids whose environment holds every ``wanted`` pair (other users' are unreadable)."""
    needles = [f"{key}={value}".encode() for key, value in wanted.items()]
    me = os.getpid()
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(entry / "environ", "rb") as file:
                environ = set(file.read(MAX_ENVIRON_BYTES).split(b"\0"))
        except OSError:
            continue
        if all(needle in environ for needle in needles):
            found.append(int(entry.name))
    return sorted(found)


class ProcessProvider:
    """Starts ``command`` per backend; tracks the ones it started by pid."""

    kind = "process"

    def __init__(self, config: ProcessProviderConfig) -> None:
        self.config = config
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, backend_id: str, labels: Mapping[str, str]) -> Handle:
        port = free_port(self.config.host)
        fill = {"port": str(port), "backend": backend_id,
                "instance_id": service_instance_id(backend_id)}
        argv = [part.format_map(fill) for part in self.config.command]
        env = dict(os.environ)
        env.update({key: value.format_map(fill) for key, value in self.config.env.items()})
        own = label_env({**labels, BACKEND_LABEL: backend_id})
        env.update(own)
        env["PORT"] = str(port)
        output = subprocess.DEVNULL if self.config.output == "discard" else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=self.config.cwd, stdin=subprocess.DEVNULL,
                stdout=output, stderr=output, start_new_session=True)
        except OSError as exc:
            raise ProviderError("spawn", f"{argv[0]}: {exc.strerror or exc}") from exc
        ref = str(proc.pid)
        self._procs[ref] = proc
        return Handle(backend_id, ref, self.config.host, port)

    async def probe(self, handle: Handle, check: ProbeConfig) -> bool:
        proc = self._procs.get(handle.ref)
        if proc is not None and proc.returncode is not None:
            raise ProviderError("exited", f"process {handle.ref} exited with {proc.returncode}")
        return await network_probe(handle, check)

    async def stop(self, handle: Handle) -> None:
        proc = self._procs.pop(handle.ref, None)
        if proc is not None:
            await self._stop_tracked(proc)
        else:
            await self._stop_untracked(int(handle.ref))

    async def _stop_tracked(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.config.grace)
        # the leader may be gone while children of the group linger: kill the group
        _signal_group(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()

    async def _stop_untracked(self, pid: int) -> None:
        """A leftover from an earlier run: not our child, so poll instead of wait."""
        _signal_group(pid, signal.SIGTERM)
        _signal(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.grace
        while _alive(pid) and loop.time() < deadline:
            await asyncio.sleep(STOP_POLL_INTERVAL)
        _signal_group(pid, signal.SIGKILL)
        _signal(pid, signal.SIGKILL)

    async def list_leftovers(self, labels: Mapping[str, str]) -> list[Handle]:
        wanted = label_env(labels)
        pids = await asyncio.get_running_loop().run_in_executor(
            None, processes_with_env, wanted)
        return [Handle("", str(pid)) for pid in pids]

    async def close(self) -> None:
        """Nothing of its own to release; running backends are the pool's to stop."""


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that is not us."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the process group ``pid`` leads (its own session); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
