"""The ``Provider`` contract and what every provider shares: labels and probes.

Every backend carries labels (container labels, or environment variables for
processes) that name the pointsman instance and upstream that made it. They are
how clean-up finds leftovers after a crash, and how it leaves everything else
alone: a provider only ever lists or removes what carries *all* the labels asked
for, and ``pointsman.managed=1`` is always among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pointsman.config import DockerProviderConfig, ProbeConfig, ProcessProviderConfig

__all__ = [
    "INSTANCE_LABEL",
    "MANAGED_LABEL",
    "UPSTREAM_LABEL",
    "WORKER_LABEL",
    "Handle",
    "Provider",
    "ProviderError",
    "free_port",
    "http_probe",
    "make_provider",
    "network_probe",
    "service_instance_id",
    "tcp_probe",
]

MANAGED_LABEL = "pointsman.managed"
INSTANCE_LABEL = "pointsman.instance"
UPSTREAM_LABEL = "pointsman.upstream"
BACKEND_LABEL = "pointsman.backend"
WORKER_LABEL = "pointsman.worker"  # the worker process that owns it (swept when it dies)
MAX_PROBE_RESPONSE_LINE = 1024


class ProviderError(Exception):
    """A provider could not do what was asked; ``reason`` is a short metric-safe word."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Handle:
    """One backend a provider made: where to connect, and its engine reference.

    ``ref`` is the container id or the process id; ``backend_id`` the pool's name
    for it (the container name, the ``POINTSMAN_BACKEND`` variable).
    """

    backend_id: str
    ref: str
    host: str = ""
    port: int = 0


class Provider(Protocol):
    """What the pool driver needs from an engine."""

    kind: str

    async def start(self, backend_id: str, labels: Mapping[str, str]) -> Handle:
        """Create and start one backend; raise ``ProviderError`` and leave nothing behind."""
        ...

    async def probe(self, handle: Handle, check: ProbeConfig) -> bool:
        """``True`` once the backend answers; raise ``ProviderError`` if it can never."""
        ...

    async def stop(self, handle: Handle) -> None:
        """Stop and remove the backend; one that is already gone is not an error."""
        ...

    async def list_leftovers(self, labels: Mapping[str, str]) -> list[Handle]:
        """Every backend that carries all of ``labels``, running or not."""
        ...

    async def close(self) -> None:
        """Release the provider's own resources (API sessions); backends are untouched."""
        ...


def make_provider(config: DockerProviderConfig | ProcessProviderConfig) -> Provider:
    """The provider for a config section; docker's import is deferred (aiodocker is optional)."""
    if isinstance(config, DockerProviderConfig):
        from pointsman.upstream.providers.docker import DockerProvider

        return DockerProvider(config)
    from pointsman.upstream.providers.process import ProcessProvider

    return ProcessProvider(config)


def service_instance_id(backend_id: str) -> str:
    """The gateway service instance id a backend is given (``{instance_id}``).

    Derived from the backend id, so the pool and the gateway agree on it without
    asking the backend; lower-case letters, digits and dashes only, which makes
    it a safe NATS subject token.
    """
    return re.sub(r"[^a-z0-9]+", "-", backend_id.lower()).strip("-")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's pick), for ``{port}``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def tcp_probe(host: str, port: int, timeout: float, settle: float = 0.0) -> bool:
    """Ready when a TCP connect succeeds (and, with ``settle``, is not closed at once).

    A port forwarder in front of the app (Docker's userland proxy on a published
    port) accepts before the app listens and then closes: ``settle`` seconds
    without an end of stream tell a real listener from that.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        if settle > 0:
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), settle) == b"":
                    return False
        return True
    except OSError:
        return False
    finally:
        writer.close()


async def http_probe(host: str, port: int, path: str, timeout: float) -> bool:
    """Ready when ``GET path`` answers with a 2xx status line."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "User-Agent: pointsman-probe\r\nConnection: close\r\n\r\n".encode())
            line = await reader.readline()
    except (OSError, TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()
    parts = line[:MAX_PROBE_RESPONSE_LINE].split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] == b"2"


async def network_probe(handle: Handle, check: ProbeConfig, settle: float = 0.0) -> bool:
    """``announce`` checks nothing on the network: the pool waits for the announcement."""
    if check.kind == "announce":
        return True
    if check.kind == "http":
        return await http_probe(handle.host, handle.port, check.path, check.timeout)
    return await tcp_probe(handle.host, handle.port, check.timeout, settle)
