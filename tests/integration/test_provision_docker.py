"""Per-connection containers for real, on both engines the docker provider serves.

Every test runs twice, once per engine: podman's Docker-compatible API
(``scripts/podman-service``) and a private Docker engine (``scripts/docker-service``).
Each script installs what is missing, imports the same local busybox test image
and starts its engine on a socket in a temp dir. The echo app inside the
containers is ``examples/per-connection/wsecho.py``, run by this machine's Python
mounted read-only; it greets with who it is, so each test can tell exactly which
container served it: on podman its hostname, the container's short id; on Docker
its backend id, which is the container's name.

The Docker engine runs without iptables rules and without its default bridge, so
its containers use the host's network (and hostname), each on a free host port;
the tests of published ports and container addresses use the one bridge network
``scripts/docker-service`` creates, which the host reaches without NAT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from aiodocker.exceptions import DockerError
from provision_support import (
    ROOT,
    PrintEvents,
    greeting,
    provision_config,
    unique_instance,
)
from websockets.asyncio.client import connect

from harness import NatsServer, Pointsman
from pointsman.serve.provision import Lease, ProvisionPool
from pointsman.upstream.providers.base import service_instance_id
from pointsman.upstream.provision import Phase, PoolExhausted

IMAGE = "localhost/pointsman-test-echo:latest"
SERVICE_SCRIPTS = {"podman": ROOT / "scripts" / "podman-service",
                   "docker": ROOT / "scripts" / "docker-service"}
PYTHON_REAL = os.path.realpath(sys.executable)
DOCKER_BRIDGE = "pointsman-test"  # the network scripts/docker-service creates


@dataclass(frozen=True)
class Service:
    """One engine's API socket: ``podman`` or ``docker``."""

    name: str
    socket: str


@pytest.fixture(scope="session", params=["podman", "docker"])
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An engine for this session; both must work here, so no skipping.

    pytest runs all tests of one engine before it starts the other, so only one
    engine runs at a time; stopping it removes its containers (and mounts).
    """
    name: str = request.param
    script = SERVICE_SCRIPTS[name]
    workdir = tmp_path_factory.mktemp(name)
    result = subprocess.run([str(script), str(workdir)], capture_output=True,
                            text=True, timeout=600, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        subprocess.run([str(script), "--stop", str(workdir)], timeout=60, check=False)
        pytest.fail(f"{name} is not usable here, so the docker provider cannot be tested "
                    f"against it:\n{script} exited {result.returncode}\n"
                    f"{result.stderr[-3000:]}")
    yield Service(name, result.stdout.strip().splitlines()[-1])
    subprocess.run([str(script), "--stop", str(workdir)], timeout=60, check=False)


@pytest.fixture
async def engine(service: Service) -> AsyncIterator[aiodocker.Docker]:
    docker = aiodocker.Docker(url=f"unix://{service.socket}")
    yield docker
    await docker.close()


def docker_provider(service: Service, *, bridged: bool = False,
                    **extra: Any) -> dict[str, Any]:
    """The echo app's containers; on Docker on the host's network unless ``bridged``."""
    mounts = sorted({"/usr:/usr:ro", f"{sys.base_prefix}:{sys.base_prefix}:ro"})
    provider: dict[str, Any] = {
        "kind": "docker", "url": f"unix://{service.socket}", "image": IMAGE, "port": 9000,
        "command": [PYTHON_REAL, "-S", "-I", "/app/wsecho.py", "{port}"],
        "mounts": mounts, "pull": "never", "memory": "128m", "cpus": 0.5, "pids_limit": 64,
        "labels": {"app": "wsecho"},
    }
    if service.name == "docker":
        provider["network_mode"] = DOCKER_BRIDGE if bridged else "host"
        provider["env"] = {"POINTSMAN_BACKEND": "{backend}"}  # host mode: the host's hostname
    provider.update(extra)
    return provider


def hello(service: Service, lease: Lease) -> str:
    """The greeting of the container behind ``lease`` (see the module docstring)."""
    me = lease.backend_id if service.name == "docker" else lease.ref[:12]
    return f"hello from {me}"


async def labelled(engine: aiodocker.Docker, instance: str) -> list[str]:
    """Our containers; podman may fail a listing that races a removal (500), so retry."""
    filters = {"label": ["pointsman.managed=1", f"pointsman.instance={instance}"]}
    for attempt in range(5):
        try:
            found = await engine.containers.list(all=True, filters=filters)
            return sorted(str(container.id) for container in found)
        except DockerError as exc:
            if exc.status != 500 or attempt == 4:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def exists(engine: aiodocker.Docker, ref: str) -> bool:
    try:
        await engine.containers.container(ref).show()
    except DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def ready(count: int):  # type: ignore[no-untyped-def]
    return lambda pool: pool.count(Phase.READY) >= count


async def test_two_clients_two_containers_third_takes_the_warm_one(
        service: Service, engine: aiodocker.Docker) -> None:
    instance = unique_instance()
    pool = ProvisionPool("ws", provision_config(docker_provider(service), warm=1),
                         instance=instance, events=PrintEvents())
    await pool.open()
    try:
        await pool.wait_until(ready(1), 10)
        first, second = await asyncio.gather(pool.acquire(), pool.acquire())
        assert first.ref != second.ref
        hellos = await asyncio.gather(greeting(first.host, first.port),
                                      greeting(second.host, second.port))
        assert list(hellos) == [hello(service, first), hello(service, second)]

        await pool.wait_until(ready(1), 10)
        began = time.monotonic()
        third = await pool.acquire(timeout=0)  # the pre-warmed one, at once
        assert time.monotonic() - began < 0.05
        assert third.ref not in (first.ref, second.ref)
        assert pool.count(Phase.STARTING) + pool.count(Phase.READY) == 1  # and a new one warms
        assert await greeting(third.host, third.port) == hello(service, third)

        info = await engine.containers.container(third.ref).show()
        labels, host = info["Config"]["Labels"], info["HostConfig"]
        assert labels["pointsman.managed"] == "1" and labels["pointsman.instance"] == instance
        assert labels["pointsman.backend"] == third.backend_id and labels["app"] == "wsecho"
        assert host["Memory"] == 128 << 20 and host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] == 64
        assert info["Name"].lstrip("/") == third.backend_id

        for lease in (first, second, third):  # closing a connection removes its container
            lease.release()
        await pool.wait_until(lambda p: p.count(Phase.BUSY) + p.count(Phase.STOPPING) == 0, 10)
        for lease in (first, second, third):
            assert not await exists(engine, lease.ref)
    finally:
        await pool.close()
    assert await labelled(engine, instance) == []


async def test_exhausted_pool_queues_then_refuses(service: Service,
                                                  engine: aiodocker.Docker) -> None:
    instance = unique_instance()
    # ports published on 127.0.0.1 (on Docker through docker-proxy, which accepts
    # before the app listens: the TCP probe must not take that for ready)
    config = provision_config(docker_provider(service, bridged=True), warm=0, max_live=1,
                              queue_timeout=0.3)
    pool = ProvisionPool("one", config, instance=instance)
    await pool.open()
    try:
        lease = await pool.acquire(timeout=10)
        began = time.monotonic()
        with pytest.raises(PoolExhausted) as caught:
            await pool.acquire()
        assert 0.25 <= time.monotonic() - began < 1.5
        assert caught.value.close_code == 1013 and caught.value.status_hint == 503
        waiting = asyncio.ensure_future(pool.acquire(timeout=10))
        await asyncio.sleep(0.05)
        lease.release()
        nxt = await waiting
        assert nxt.ref != lease.ref
        # ready means the app answers, not merely the forwarder in front of it
        assert await greeting(nxt.host, nxt.port) == hello(service, nxt)
        nxt.release()
    finally:
        await pool.close()
    assert await labelled(engine, instance) == []


async def test_a_container_that_never_becomes_ready_is_removed_and_replaced(
        service: Service, engine: aiodocker.Docker, tmp_path: Path) -> None:
    instance = unique_instance()
    flags = tmp_path / "flags"
    flags.mkdir()
    command = ["sh", "-c", "if [ ! -e /flags/once ]; then touch /flags/once; exec sleep 30; fi; "
               f"exec {PYTHON_REAL} -S -I /app/wsecho.py {{port}}"]
    provider = docker_provider(service, bridged=True, command=command)
    provider["mounts"] = [*provider["mounts"], f"{flags}:/flags"]
    # the IP-address mode: connect to the container's own address, nothing published
    provider["address"] = "container"
    # start_timeout is what the silent one costs; it must also leave a start on a
    # busy 2-core machine (podman, bridged network) room to finish, or none ever does.
    pool = ProvisionPool("flaky", provision_config(provider, warm=1, start_timeout=5.0),
                         instance=instance, events=PrintEvents())
    await pool.open()
    try:
        await pool.wait_until(ready(1), 45)
        failures = pool.machine.counters.failures
        # the silent one fails its probe; a start slowed by the engine's own removal
        # work may also time out before its container runs: both are replaced
        assert sum(failures.values()) >= 1
        assert set(failures) <= {"probe_timeout", "start_timeout"}
        lease = await pool.acquire(timeout=0)
        assert not lease.host.startswith("127.")
        assert await greeting(lease.host, lease.port) == hello(service, lease)
        # the one that never answered is gone (a refill may be starting behind the lease)
        assert not await exists(engine, f"{pool.machine.id_prefix}-1")
        assert lease.ref in await labelled(engine, instance)
        lease.release()
    finally:
        await pool.close()
    assert await labelled(engine, instance) == []


def listener_config(service: Service, instance: str, **pool: Any) -> str:
    """A ``pointsman serve`` config: a TCP listener whose upstream provisions containers."""
    settings = {"kind": "provision", "instance": instance, "warm": 1, "max_live": 4,
                "start_timeout": 10.0, "backoff_initial": 0.05, **pool,
                "provider": docker_provider(service),
                "probe": {"kind": "http", "path": "/health", "interval": 0.02}}
    return ('[[listeners]]\nprotocol = "tcp"\nname = "ws"\nlisten = "127.0.0.1:0"\n'
            f'upstream = "terminal"\n\n[upstreams]\nterminal = {_toml_inline(settings)}\n')


def _toml_inline(value: Any) -> str:
    """TOML for plain data: JSON strings and numbers are valid TOML values."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_inline(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


async def test_websockets_through_the_listener_get_their_own_containers(
        service: Service, engine: aiodocker.Docker,
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance()
    proxy = pointsman("serve", "-c", str(write_config(listener_config(service, instance))))
    host, port = proxy.address("ws")
    hellos = await asyncio.gather(greeting(host, port), greeting(host, port))
    assert hellos[0] != hellos[1]
    records = proxy.wait_access(2)
    names = {record["backend_id"] for record in records}
    assert len(names) == 2 and all(record["reason"] == "done" for record in records)
    # each connection's container is removed once it ended; only the warm one is left
    # (a count of one alone can be a moment when the refill is not created yet and a
    # leased one not removed yet)

    async def settled() -> bool:
        gone = [not await exists(engine, name) for name in names]
        return all(gone) and len(await labelled(engine, instance)) == 1

    deadline = time.monotonic() + 10
    while not await settled():
        assert time.monotonic() < deadline, (names, await labelled(engine, instance))
        await asyncio.sleep(0.05)
    assert proxy.stop(signal.SIGTERM) == 0
    assert await labelled(engine, instance) == []


async def test_after_sigkill_the_next_start_cleans_only_its_own(
        service: Service, engine: aiodocker.Docker,
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    instance = unique_instance("crash")
    bystander_config = {"Image": IMAGE, "Cmd": ["sleep", "60"]}
    unlabelled = await engine.containers.create(bystander_config,
                                                name=f"bystander-{instance}")
    foreign = await engine.containers.create(
        {**bystander_config, "Labels": {"pointsman.managed": "1",
                                        "pointsman.instance": f"{instance}-other",
                                        "pointsman.upstream": "terminal"}},
        name=f"foreign-{instance}")
    await unlabelled.start()
    await foreign.start()
    path = write_config(listener_config(service, instance, warm=1))
    held: socket.socket | None = None
    try:
        proxy = pointsman("serve", "-c", str(path))
        held = socket.create_connection(proxy.address("ws"))  # one leased, one warm
        deadline = time.monotonic() + 15
        while len(await labelled(engine, instance)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        survivors = await labelled(engine, instance)
        assert len(survivors) == 2
        proxy.stop(signal.SIGKILL)
        assert await labelled(engine, instance) == survivors  # a crash leaves them running

        # the same instance starts again (without a warm pool, to keep this quick)
        again_path = write_config(listener_config(service, instance, warm=0), "again.toml")
        again = pointsman("serve", "-c", str(again_path))
        again.wait_event("provision.leftovers_removed",
                         predicate=lambda event: event["count"] == 2)
        assert await labelled(engine, instance) == []
        code = again.stop(signal.SIGTERM)
        assert code == 0, again.events
        assert await labelled(engine, instance) == []
        assert await exists(engine, str(unlabelled.id))
        assert await exists(engine, str(foreign.id))
    finally:
        if held is not None:
            held.close()
        for container in (unlabelled, foreign):
            await container.delete(force=True)
        for ref in await labelled(engine, instance):  # never leave our own mess behind
            await engine.containers.container(ref).delete(force=True)


async def test_gateway_sockets_get_their_own_service_container(
        service: Service, engine: aiodocker.Docker, nats_server: NatsServer,
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    """An SDK gateway service per socket, in containers of the busybox test image.

    The image has no Python: the host's interpreter, the virtualenv and this
    checkout are mounted read-only, and host networking lets the service reach
    NATS on 127.0.0.1 (the instance connects out; nothing connects in).
    """
    instance = unique_instance("gw")
    mounts = sorted({"/usr:/usr:ro", f"{sys.base_prefix}:{sys.base_prefix}:ro",
                     f"{sys.prefix}:{sys.prefix}:ro", f"{ROOT}:{ROOT}:ro"})
    provider = docker_provider(
        service, network_mode="host", port=0, mounts=mounts, memory="256m",
        command=[sys.executable, "-I", str(ROOT / "tests" / "integration" /
                                           "provisioned_service.py"),
                 "{nats_url}", "{instance_id}"])
    upstream = {"kind": "provision", "instance": instance, "warm": 1, "max_live": 4,
                "start_timeout": 20.0, "backoff_initial": 0.05, "provider": provider,
                "probe": {"kind": "announce", "interval": 0.05}}
    text = ('[[listeners]]\nprotocol = "gateway"\nname = "gw"\nlisten = "127.0.0.1:0"\n'
            f'nats_url = "{nats_server.url}"\nannounce_interval = 0.5\n'
            'services = [{ name = "term", upstream = "term" }]\n\n'
            f'[upstreams]\nterm = {_toml_inline(upstream)}\n')
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("gw")
    url = f"ws://{host}:{port}/ws"

    async def whoami(ws: Any, ident: str) -> dict[str, Any]:
        await ws.send(json.dumps({"path": "/whoami", "id": ident}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert reply["id"] == ident, reply
        data: dict[str, Any] = reply["data"]
        return data

    async def instances() -> set[str]:
        """The service instance ids of our live containers (from their backend labels)."""
        filters = {"label": ["pointsman.managed=1", f"pointsman.instance={instance}"]}
        found = await engine.containers.list(all=True, filters=filters)
        return {service_instance_id(c["Labels"]["pointsman.backend"]) for c in found}

    try:
        async with connect(url, open_timeout=30) as first, \
                connect(url, open_timeout=30) as second:
            one, two = await whoami(first, "a"), await whoami(second, "b")
            assert (await whoami(first, "a2"))["count"] == 2
            assert one["instance"] != two["instance"]
            assert {one["instance"], two["instance"]} <= await instances()
        deadline = time.monotonic() + 15
        while {one["instance"], two["instance"]} & await instances():
            assert time.monotonic() < deadline, "closed sockets' containers are still there"
            await asyncio.sleep(0.1)
    finally:
        proxy.stop(signal.SIGTERM)
    assert await labelled(engine, instance) == []


async def test_a_killed_workers_containers_go_and_its_siblings_stay(
        service: Service, engine: aiodocker.Docker,
        pointsman: Callable[..., Pointsman], write_config: Callable[[str, str], Path]) -> None:
    """Two workers; SIGKILL one: the leader removes the containers labelled with it."""
    instance = unique_instance("wrk")
    # the kernel spreads connections over the workers at random: room for all twelve in
    # one worker, or a run of five to one worker would queue (and time out) the fifth
    text = "[process]\nworkers = 2\n\n" + listener_config(service, instance, warm=1,
                                                          max_live=13)
    proxy = pointsman("serve", "-c", str(write_config(text)))
    host, port = proxy.address("ws")

    async def by_worker() -> dict[str, set[str]]:
        """Each worker's containers, by id and by name (the greeting is one of them)."""
        filters = {"label": ["pointsman.managed=1", f"pointsman.instance={instance}"]}
        found: dict[str, set[str]] = {}
        for attempt in range(5):
            try:
                for c in await engine.containers.list(all=True, filters=filters):
                    refs = found.setdefault(c["Labels"]["pointsman.worker"], set())
                    refs.update((str(c.id), c["Labels"]["pointsman.backend"]))
                return found
            except DockerError as exc:  # a listing racing a removal (see ``labelled``)
                if exc.status != 500 or attempt == 4:
                    raise
                found = {}
                await asyncio.sleep(0.05)
        return found

    held: list[tuple[Any, str]] = []  # (socket, worker of its container)
    try:
        deadline = time.monotonic() + 30
        while len(await by_worker()) < 2:
            assert time.monotonic() < deadline, "the workers did not warm their containers"
            await asyncio.sleep(0.1)
        for _ in range(12):  # until both workers lease a container to one of ours
            ws = await connect(f"ws://{host}:{port}/", open_timeout=20)
            greeted = await asyncio.wait_for(ws.recv(), 20)
            short = str(greeted).removeprefix("hello from ")
            worker = next(w for w, refs in (await by_worker()).items()
                          if any(ref.startswith(short) for ref in refs))
            held.append((ws, worker))
            if len({w for _, w in held}) == 2:
                break
        assert len({w for _, w in held}) == 2, "connections never reached both workers"
        victim = held[0][1]
        survivor = next(w for _, w in held if w != victim)
        before = await by_worker()
        os.kill(int(victim), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while victim in await by_worker():
            if time.monotonic() >= deadline:
                filters = {"label": [f"pointsman.worker={victim}"]}
                left = [(c["Labels"]["pointsman.backend"], c["State"], c["Status"])
                        for c in await engine.containers.list(all=True, filters=filters)]
                sweeps = [e for e in proxy.events if "sweep" in e.get("event", "")
                          or e.get("level") in ("warning", "error")]
                pytest.fail(f"the killed worker's containers survived: {left}; {sweeps}")
            await asyncio.sleep(0.1)
        assert before[survivor] <= (await by_worker()).get(survivor, set())
        for ws, worker in held:
            if worker == survivor:
                await ws.send("still there?")
                assert await asyncio.wait_for(ws.recv(), 5) == "$ still there?"
    finally:
        for ws, _ in held:
            with contextlib.suppress(Exception):
                await ws.close()
        proxy.stop(signal.SIGTERM)
    assert await labelled(engine, instance) == []
