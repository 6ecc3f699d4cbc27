"""One container per connection through the Docker Engine HTTP API (aiodocker).

The same requests drive Docker and podman's Docker-compatible service
(``podman system service``): create with raw Docker JSON, start, inspect for
the address, and ``DELETE ?force=1`` to stop and remove in one call. The
container's name is the backend id, so ``docker ps`` shows what the pool
calls it; its labels name the pointsman instance and upstream.

Where the pool connects:
- ``address = "published"``: the app's ``port`` is published on
  ``publish_host`` (127.0.0.1) at a port the engine picks; read back by inspect.
- ``address = "container"``: the container's own IP and ``port`` (bridge
  networks reachable from the host).
- ``network_mode = "host"``: no isolation of ports, so each container gets a
  free host port, passed in through ``{port}`` in ``command`` and ``env``.
- ``port = 0`` (a gateway service, ready once announced): no port at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError

from pointsman.config import DockerProviderConfig, ProbeConfig, parse_size
from pointsman.upstream.providers.base import (
    BACKEND_LABEL,
    Handle,
    ProviderError,
    free_port,
    network_probe,
    service_instance_id,
)

__all__ = ["DockerProvider", "container_config"]

# Inspect a container that keeps failing its probe only every few attempts, so a
# slow app does not turn into a stream of API calls against a serialising engine.
INSPECT_EVERY_FAILED_PROBES = 10
NOT_FOUND = 404
CONFLICT = 409
SERVER_ERROR = 500
LIST_ATTEMPTS = 5
LIST_RETRY_DELAY = 0.05
# A TCP probe through a published port waits this long for the forwarder to
# hang up, which Docker's userland proxy does when the app is not listening yet.
PUBLISHED_SETTLE = 0.01


def container_config(config: DockerProviderConfig, backend_id: str, labels: Mapping[str, str],
                     host_port: int | None) -> dict[str, Any]:
    """The Docker JSON for one backend's container (``host_port`` for host networking)."""
    fill = {"port": str(host_port if host_port is not None else config.port),
            "backend": backend_id, "instance_id": service_instance_id(backend_id)}
    env = {key: value.format_map(fill) for key, value in config.env.items()}
    env.setdefault("PORT", fill["port"])
    host_config: dict[str, Any] = {}
    body: dict[str, Any] = {
        "Image": config.image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": {**config.labels, **labels, BACKEND_LABEL: backend_id},
        "HostConfig": host_config,
    }
    if config.command is not None:
        body["Cmd"] = [part.format_map(fill) for part in config.command]
    if config.user:
        body["User"] = config.user
    if config.network_mode:
        host_config["NetworkMode"] = config.network_mode
    if host_port is None and config.port:
        key = f"{config.port}/tcp"
        body["ExposedPorts"] = {key: {}}
        if config.address == "published":
            host_config["PortBindings"] = {key: [{"HostIp": config.publish_host,
                                                  "HostPort": ""}]}
    if config.memory is not None:
        host_config["Memory"] = parse_size(config.memory)
    if config.cpus is not None:
        host_config["NanoCpus"] = int(config.cpus * 1_000_000_000)
    if config.pids_limit is not None:
        host_config["PidsLimit"] = config.pids_limit
    if config.mounts:
        host_config["Binds"] = list(config.mounts)
    if config.ulimits:
        host_config["Ulimits"] = [{"Name": name, "Soft": value, "Hard": value}
                                  for name, value in config.ulimits.items()]
    return body


def _address(config: DockerProviderConfig, info: Mapping[str, Any],
             host_port: int | None) -> tuple[str, int]:
    """Where to connect, read from an inspect result."""
    if host_port is not None:
        return "127.0.0.1", host_port
    if not config.port:  # a gateway service: it reaches out to the bus, nothing connects in
        return "", 0
    settings = info.get("NetworkSettings") or {}
    if config.address == "published":
        bindings = (settings.get("Ports") or {}).get(f"{config.port}/tcp") or []
        for binding in bindings:
            if binding.get("HostPort"):
                host = binding.get("HostIp") or config.publish_host
                if host in ("0.0.0.0", "::", ""):
                    host = "127.0.0.1"
                return host, int(binding["HostPort"])
        raise ProviderError("no_address", f"port {config.port}/tcp was not published")
    ip = settings.get("IPAddress") or ""
    if not ip:
        for network in (settings.get("Networks") or {}).values():
            ip = network.get("IPAddress") or ""
            if ip:
                break
    if not ip:
        raise ProviderError("no_address", "the container has no IP address")
    return ip, config.port


class DockerProvider:
    """Containers through one Docker Engine API endpoint (one aiohttp session)."""

    kind = "docker"

    def __init__(self, config: DockerProviderConfig) -> None:
        self.config = config
        self._docker: aiodocker.Docker | None = None
        self._failed_probes: dict[str, int] = {}

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.config.url,
                                            api_version=self.config.api_version)
        return self._docker

    async def start(self, backend_id: str, labels: Mapping[str, str]) -> Handle:
        docker = self._client()
        host_port = free_port() if self.config.network_mode == "host" else None
        body = container_config(self.config, backend_id, labels, host_port)
        try:
            container = await self._create(docker, body, backend_id)
            await container.start()
            info = await container.show()
            host, port = _address(self.config, info, host_port)
        except BaseException as exc:
            # remove by name: a create that was cut off may have made it all the same
            with contextlib.suppress(DockerError, OSError):
                await asyncio.shield(docker.containers.container(backend_id).delete(force=True))
            if isinstance(exc, DockerError):
                raise ProviderError("create", _message(exc)) from exc
            if isinstance(exc, OSError):
                raise ProviderError("engine", str(exc)) from exc
            raise
        return Handle(backend_id, str(container.id), host, port)

    async def _create(self, docker: aiodocker.Docker, body: dict[str, Any],
                      name: str) -> Any:
        try:
            return await docker.containers.create(body, name=name)
        except DockerError as exc:
            if exc.status != NOT_FOUND or self.config.pull != "missing":
                raise
        # the image is missing: pull it once, then create again
        image, _, tag = self.config.image.rpartition(":")
        if not image or "/" in tag:
            image, tag = self.config.image, "latest"
        await docker.images.pull(image, tag=tag)
        return await docker.containers.create(body, name=name)

    async def probe(self, handle: Handle, check: ProbeConfig) -> bool:
        published = self.config.address == "published" and self.config.network_mode != "host"
        if await network_probe(handle, check, PUBLISHED_SETTLE if published else 0.0):
            self._failed_probes.pop(handle.ref, None)
            return True
        failed = self._failed_probes.get(handle.ref, 0) + 1
        self._failed_probes[handle.ref] = failed
        if failed % INSPECT_EVERY_FAILED_PROBES == 0:
            try:
                info = await self._client().containers.container(handle.ref).show()
            except DockerError as exc:
                raise ProviderError("gone", _message(exc)) from exc
            state = info.get("State") or {}
            if not state.get("Running", False):
                raise ProviderError("exited",
                                    f"container exited with {state.get('ExitCode', '?')}")
        return False

    async def stop(self, handle: Handle) -> None:
        self._failed_probes.pop(handle.ref, None)
        container = self._client().containers.container(handle.ref)
        try:
            if self.config.stop_grace > 0:
                await container.stop(t=max(1, round(self.config.stop_grace)))
            await container.delete(force=True)
        except DockerError as exc:
            if exc.status == NOT_FOUND:
                return
            if exc.status == CONFLICT:  # removal already in progress elsewhere
                return
            raise ProviderError("stop", _message(exc)) from exc
        except OSError as exc:
            raise ProviderError("engine", str(exc)) from exc

    async def list_leftovers(self, labels: Mapping[str, str]) -> list[Handle]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        for attempt in range(1, LIST_ATTEMPTS + 1):
            try:
                containers = await self._client().containers.list(all=True, filters=filters)
                break
            except DockerError as exc:
                # podman answers 500 "container not known" when a listed container is
                # removed mid-listing; that is a race, not a failure: list again
                if exc.status != SERVER_ERROR or attempt == LIST_ATTEMPTS:
                    raise ProviderError("list", _message(exc)) from exc
            except OSError as exc:
                raise ProviderError("engine", str(exc)) from exc
            await asyncio.sleep(LIST_RETRY_DELAY)
        handles = []
        for container in containers:
            # the filter is the engine's; check again so a lax engine cannot widen it
            found = container["Labels"] or {}
            if all(found.get(key) == value for key, value in labels.items()):
                handles.append(Handle(found.get(BACKEND_LABEL, ""), str(container.id)))
        return handles

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            await docker.close()


def _message(exc: DockerError) -> str:
    message = exc.message
    if isinstance(message, dict):
        message = message.get("message", message)
    return f"{exc.status} {message}"
