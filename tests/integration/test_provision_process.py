"""Per-connection backends as local processes, through the real asyncio pool driver."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from provision_support import (
    PYTHON,
    ROOT,
    greeting,
    process_provider,
    provision_config,
    unique_instance,
)

from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.providers.process import label_env, processes_with_env
from pointsman.upstream.provision import Phase, PoolExhausted


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def ready(count: int):  # type: ignore[no-untyped-def]
    return lambda pool: pool.count(Phase.READY) >= count


async def test_each_connection_gets_its_own_process_and_the_next_is_warm() -> None:
    pool = ProvisionPool("echo", provision_config(process_provider(), warm=1),
                         instance=unique_instance())
    await pool.open()
    try:
        await pool.wait_until(ready(1), 5)
        began = time.monotonic()
        first = await pool.acquire()
        assert time.monotonic() - began < 0.05  # the warm one, at once
        second = await pool.acquire()  # waits for the refill
        assert first.backend_id != second.backend_id and first.port != second.port
        hellos = await asyncio.gather(greeting(first.host, first.port),
                                      greeting(second.host, second.port))
        assert hellos == [f"hello from {first.backend_id}", f"hello from {second.backend_id}"]
        await pool.wait_until(ready(1), 5)  # and another is warmed behind them
        pids = [int(first.ref), int(second.ref)]
        assert all(alive(pid) for pid in pids)
        first.release()
        second.release()
        first.release()  # twice is harmless
        await pool.wait_until(lambda p: p.count(Phase.STOPPING) == 0
                              and p.count(Phase.BUSY) == 0, 5)
        assert not any(alive(pid) for pid in pids)
        assert pool.machine.counters.stopped == {"released": 2}
    finally:
        await pool.close()
    assert pool.machine.backends == {} or all(
        b.phase is Phase.STOPPING for b in pool.machine.backends.values())
    assert processes_with_env(label_env(pool.labels)) == []


async def test_pool_exhausted_queues_then_refuses() -> None:
    pool = ProvisionPool("echo", provision_config(process_provider(), warm=0, max_live=1,
                                                  queue_timeout=0.3),
                         instance=unique_instance())
    await pool.open()
    try:
        lease = await pool.acquire()
        began = time.monotonic()
        with pytest.raises(PoolExhausted) as caught:
            await pool.acquire()
        waited = time.monotonic() - began
        assert 0.25 <= waited < 1.0
        assert caught.value.reason == "timeout"
        assert (caught.value.status_hint, caught.value.close_code) == (503, 1013)
        # a queued connection is served first come, first served once room frees up
        third = asyncio.ensure_future(pool.acquire(timeout=5))
        await asyncio.sleep(0.05)
        lease.release()
        assert (await third).backend_id != lease.backend_id
        third.result().release()
    finally:
        await pool.close()


async def test_a_backend_that_never_becomes_ready_is_replaced_with_backoff(tmp_path: Path) -> None:
    # the first start never listens; later ones do (the flag file says which)
    flag = tmp_path / "broken-once"
    script = tmp_path / "maybe.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ ! -e {flag} ]; then touch {flag}; exec sleep 30; fi
        exec {PYTHON} -S -I {ROOT / 'examples/per-connection/wsecho.py'} "$1"
        """))
    script.chmod(0o755)
    config = provision_config({"kind": "process", "command": [str(script), "{port}"],
                               "grace": 0.5}, warm=1, start_timeout=0.4)
    pool = ProvisionPool("flaky", config, instance=unique_instance())
    await pool.open()
    try:
        await pool.wait_until(ready(1), 5)
        assert pool.machine.counters.failures == {"probe_timeout": 1}
        lease = await pool.acquire(timeout=0)
        assert (await greeting(lease.host, lease.port)).startswith("hello from ")
        lease.release()
    finally:
        await pool.close()
    assert processes_with_env(label_env(pool.labels)) == []


async def test_a_process_that_exits_fails_fast_and_backs_off() -> None:
    config = provision_config({"kind": "process", "command": ["sh", "-c", "exit 3", "{port}"]},
                              warm=1, start_timeout=5, backoff_initial=0.1, backoff_max=0.2)
    pool = ProvisionPool("broken", config, instance=unique_instance())
    await pool.open()
    try:
        await asyncio.sleep(0.6)
        failures = pool.machine.counters.failures.get("exited", 0)
        # 0.6 s with backoff 0.1, 0.2, 0.2...: a handful of tries, not a hot loop
        assert 2 <= failures <= 6
        with pytest.raises(PoolExhausted):
            await pool.acquire(timeout=0.1)
    finally:
        await pool.close()


async def test_stop_escalates_to_sigkill_after_the_grace_period() -> None:
    stubborn = ["sh", "-c", f"trap '' TERM; exec {PYTHON} -S -I "
                            f"{ROOT / 'examples/per-connection/wsecho.py'} {{port}}"]
    config = provision_config({"kind": "process", "command": stubborn, "grace": 0.3}, warm=0)
    pool = ProvisionPool("stubborn", config, instance=unique_instance())
    await pool.open()
    try:
        lease = await pool.acquire()
        pid = int(lease.ref)
        began = time.monotonic()
        lease.release()
        await pool.wait_until(lambda p: not p.machine.backends, 5)
        assert 0.25 <= time.monotonic() - began < 2.0
        assert not alive(pid)
    finally:
        await pool.close()


async def test_revoke_on_lifetime_calls_the_connection_back() -> None:
    config = provision_config(process_provider(), warm=0, max_lifetime=0.3)
    pool = ProvisionPool("short", config, instance=unique_instance())
    await pool.open()
    try:
        lease = await pool.acquire()
        revoked: list[str] = []
        lease.on_revoke = lambda reason: (revoked.append(reason), lease.release())  # type: ignore[func-returns-value]
        await pool.wait_until(lambda p: bool(revoked), 3)
        assert revoked == ["lifetime"]
    finally:
        await pool.close()


async def test_idle_uses_the_connection_activity_counter() -> None:
    config = provision_config(process_provider(), warm=0, max_idle=0.3)
    pool = ProvisionPool("idle", config, instance=unique_instance())
    await pool.open()
    try:
        lease = await pool.acquire()
        moved = [0]
        lease.activity = lambda: moved[0]
        revoked: list[float] = []
        lease.on_revoke = lambda reason: revoked.append(time.monotonic())
        began = time.monotonic()
        for _ in range(4):  # keep it busy for ~0.6 s
            await asyncio.sleep(0.15)
            moved[0] += 100
        assert revoked == []
        await pool.wait_until(lambda p: bool(revoked), 3)
        assert revoked[0] - began >= 0.6
        lease.release()
    finally:
        await pool.close()


PARENT = """
import asyncio, sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
from pointsman.serve.provision import ProvisionPool
from pointsman.upstream.provision import Phase
from provision_support import process_provider, provision_config

async def main():
    pool = ProvisionPool("crash", provision_config(process_provider(), warm=2),
                         instance={instance!r})
    await pool.open()
    await pool.wait_until(lambda p: p.count(Phase.READY) >= 2, 10)
    lease = await pool.acquire()
    await pool.wait_until(lambda p: p.count(Phase.READY) >= 2, 10)
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_sigkilled_pointsman_leaves_nothing_the_next_start_does_not_clean() -> None:
    instance = unique_instance("crash")
    labels = {"pointsman.managed": "1", "pointsman.instance": instance,
              "pointsman.upstream": "crash"}
    # other users' processes: unlabelled, and labelled for another instance
    env_other = {**os.environ, **label_env({**labels, "pointsman.instance": "someone-else"})}
    bystanders = [
        subprocess.Popen(["sleep", "30"], start_new_session=True),
        subprocess.Popen(["sleep", "30"], env=env_other, start_new_session=True),
    ]
    code = PARENT.format(src=str(ROOT / "src"), tests=str(ROOT / "tests" / "integration"),
                         instance=instance)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, parent.stdout.readline), 15)
        assert line == b"ready\n"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        orphans = processes_with_env(label_env(labels))
        assert len(orphans) >= 3  # one leased, two warm: all still running

        pool = ProvisionPool("crash", provision_config(process_provider(), warm=0),
                             instance=instance)
        await pool.open()
        assert pool.leftovers_removed == len(orphans)
        await pool.close()
        assert processes_with_env(label_env(labels)) == []
        assert not any(alive(pid) for pid in orphans)
        assert all(proc.poll() is None for proc in bystanders)
    finally:
        if parent.poll() is None:
            parent.kill()
        for proc in bystanders:
            proc.kill()
            proc.wait()
        for pid in processes_with_env(label_env(labels)):  # never leave our own behind
            os.kill(pid, signal.SIGKILL)


async def test_metrics_and_admin_state_show_the_pool() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from pointsman.control.provision_metrics import register

    pool = ProvisionPool("seen", provision_config(process_provider(), warm=1),
                         instance=unique_instance())
    registry = CollectorRegistry()
    register(registry, lambda: [pool])
    await pool.open()
    try:
        lease = await pool.acquire()
        await pool.wait_until(ready(1), 5)
        text = generate_latest(registry).decode()
        assert 'pointsman_provision_backends{phase="busy",upstream="seen"} 1.0' in text
        assert 'pointsman_provision_backends{phase="ready",upstream="seen"} 1.0' in text
        assert 'pointsman_provision_started_total{upstream="seen"} 2.0' in text
        assert 'pointsman_provision_leases_total{upstream="seen"} 1.0' in text
        assert 'pointsman_provision_start_seconds_count{upstream="seen"} 2.0' in text
        assert 'pointsman_provision_queue_wait_seconds_bucket{le="+Inf",upstream="seen"} 1.0' \
            in text
        from prometheus_client import REGISTRY

        from pointsman.control.provision_metrics import register_default

        register_default(lambda: [pool])  # what a running pointsman reports by default
        assert 'pointsman_provision_waiting{upstream="seen"} 0.0' in \
            generate_latest(REGISTRY).decode()
        state = pool.describe()
        assert state["counts"] == {"starting": 0, "ready": 1, "busy": 1, "stopping": 0}
        busy = [b for b in state["backends"] if b["phase"] == "busy"]
        assert busy[0]["id"] == lease.backend_id and busy[0]["ref"] == lease.ref
        assert state["provider"] == "process" and state["instance"] == pool.instance
        lease.release()
    finally:
        await pool.close()
