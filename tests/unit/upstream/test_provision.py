"""The pool policy, driven by hand with virtual time."""

from __future__ import annotations

import pytest

from pointsman.upstream.provision import (
    Action,
    Grant,
    Histogram,
    Phase,
    PoolMachine,
    PoolPolicy,
    Reject,
    Revoke,
    Start,
    Stop,
)


def starts(actions: list[Action]) -> list[str]:
    return [a.backend_id for a in actions if isinstance(a, Start)]


def only(actions: list[Action], kind: type) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


def warm_machine(**policy: float) -> tuple[PoolMachine, list[str]]:
    """A machine whose first warm starts have all succeeded at t=0."""
    machine = PoolMachine(PoolPolicy(**policy), "t")  # type: ignore[arg-type]
    ids = starts(machine.tick(0.0))
    for i, backend_id in enumerate(ids):
        machine.started(backend_id, "127.0.0.1", 9000 + i, 0.0)
    return machine, ids


def test_warms_one_by_default_and_grants_it_at_once_then_refills() -> None:
    machine = PoolMachine(PoolPolicy(), "t")
    first = starts(machine.tick(0.0))
    assert first == ["t-1"]
    assert machine.tick(0.1) == []  # already starting: no second start
    assert machine.started("t-1", "127.0.0.1", 9000, 0.2) == []
    actions = machine.acquire(1, 1.0)
    assert actions[0] == Grant(1, "t-1", 0.0)
    assert starts(actions) == ["t-2"]  # refilled as soon as it was taken
    assert machine.backends["t-1"].phase is Phase.BUSY


def test_waiters_are_served_first_come_first_served() -> None:
    machine = PoolMachine(PoolPolicy(warm=0, max_starting=4), "t")
    assert starts(machine.acquire(1, 0.0)) == ["t-1"]
    assert starts(machine.acquire(2, 0.1)) == ["t-2"]
    assert starts(machine.acquire(3, 0.2)) == ["t-3"]
    # the third start finishes first: it still goes to the first waiter
    assert machine.started("t-3", "h", 3, 0.5) == [Grant(1, "t-3", 0.5)]
    assert machine.started("t-1", "h", 1, 0.6) == [Grant(2, "t-1", 0.5)]
    assert machine.started("t-2", "h", 2, 0.7)[0] == Grant(3, "t-2", pytest.approx(0.5))


def test_no_backend_is_ever_granted_twice() -> None:
    machine, _ = warm_machine(warm=2)
    granted = [a.backend_id for w in range(1, 3) for a in only(machine.acquire(w, 1.0), Grant)]
    assert len(set(granted)) == 2
    for backend_id in granted:
        assert only(machine.release(backend_id, 2.0), Stop)[0] == Stop(backend_id, "released")
        assert machine.release(backend_id, 2.0) == []  # twice: nothing more
        assert machine.backends[backend_id].phase is Phase.STOPPING


def test_max_live_caps_starts_and_waiters_time_out_in_order() -> None:
    machine, _ = warm_machine(warm=1, max_live=2, queue_timeout=5.0)
    assert only(machine.acquire(1, 1.0), Grant)  # the warm one
    machine.started("t-2", "h", 2, 1.2)  # the refill
    assert only(machine.acquire(2, 1.3), Grant)
    assert starts(machine.acquire(3, 2.0)) == []  # two live: at the cap
    assert machine.acquire(4, 3.0) == []
    assert machine.next_wakeup() == 7.0
    assert machine.tick(6.9) == []
    assert machine.tick(7.0) == [Reject(3, "timeout", 5.0)]
    assert machine.tick(8.0) == [Reject(4, "timeout", 5.0)]
    assert machine.counters.rejected == {"timeout": 2}


def test_a_released_backend_makes_room_for_a_waiter_start() -> None:
    machine, _ = warm_machine(warm=0, max_live=1)
    assert starts(machine.acquire(1, 0.0)) == ["t-1"]
    assert only(machine.started("t-1", "h", 1, 0.2), Grant)
    assert machine.acquire(2, 0.3) == []
    assert only(machine.release("t-1", 1.0), Stop)
    assert starts(machine.release("t-1", 1.0)) == []
    # stopping backends do not count as live, so the waiter's start begins at once
    assert machine.count(Phase.STARTING) == 1


def test_per_call_timeout_and_zero_means_only_if_ready() -> None:
    machine = PoolMachine(PoolPolicy(warm=0, queue_timeout=30), "t")
    actions = machine.acquire(1, 0.0, timeout=0)
    assert Reject(1, "timeout", 0.0) in actions
    machine.acquire(2, 0.0, timeout=1.5)
    assert machine.next_wakeup() == 1.5
    assert machine.tick(1.5) == [Reject(2, "timeout", 1.5)]


def test_queue_full_rejects_at_once() -> None:
    machine = PoolMachine(PoolPolicy(warm=0, max_queue=1, max_live=1), "t")
    machine.acquire(1, 0.0)
    assert machine.acquire(2, 0.0) == [Reject(2, "queue_full", 0.0)]


def test_cancelled_waiter_leaves_its_start_as_a_warm_spare() -> None:
    machine = PoolMachine(PoolPolicy(warm=0), "t")
    assert starts(machine.acquire(1, 0.0)) == ["t-1"]
    machine.cancel(1, 0.1)
    assert machine.started("t-1", "h", 1, 0.2) == []
    assert machine.count(Phase.READY) == 1


def test_give_back_returns_an_unused_grant_to_ready() -> None:
    machine, _ = warm_machine()
    grant = only(machine.acquire(1, 1.0), Grant)[0]
    assert isinstance(grant, Grant)
    machine.give_back(grant.backend_id, 1.0)
    assert machine.backends[grant.backend_id].phase is Phase.READY
    assert only(machine.acquire(2, 1.1), Grant)[0] == Grant(2, grant.backend_id, 0.0)


def test_failed_starts_back_off_exponentially_up_to_the_cap() -> None:
    machine = PoolMachine(PoolPolicy(backoff_initial=1.0, backoff_max=4.0), "t")
    backend_id = starts(machine.tick(0.0))[0]
    delays = []
    now = 0.0
    for _ in range(5):
        actions = machine.start_failed(backend_id, "probe_timeout", now)
        assert Stop(backend_id, "start_failed:probe_timeout") in actions
        assert starts(actions) == []  # no hot loop
        wake = machine.next_wakeup()
        assert wake is not None
        delays.append(wake - now)
        assert machine.tick(wake - 0.01) == []
        now = wake
        new = starts(machine.tick(now))
        assert len(new) == 1
        backend_id = new[0]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert machine.counters.failures == {"probe_timeout": 5}
    machine.started(backend_id, "h", 1, now + 0.1)
    assert machine.backoff_until == 0.0


def test_ready_backend_past_lifetime_is_recycled() -> None:
    machine, ids = warm_machine(max_lifetime=60.0)
    assert machine.next_wakeup() == 60.0
    actions = machine.tick(60.0)
    assert Stop(ids[0], "lifetime") in actions
    assert len(starts(actions)) == 1


def test_busy_backend_past_lifetime_or_idle_is_revoked_once() -> None:
    machine, ids = warm_machine(warm=2, max_lifetime=100.0, max_idle=10.0)
    machine.acquire(1, 0.0)
    machine.acquire(2, 0.0)
    machine.touch(ids[0], 8.0)
    revoked = only(machine.tick(10.0), Revoke)
    assert revoked == [Revoke(ids[1], "idle")]
    assert only(machine.tick(11.0), Revoke) == []  # once
    machine.touch(ids[0], 17.0)
    assert only(machine.tick(100.0), Revoke) == [Revoke(ids[0], "lifetime")]
    assert machine.counters.revoked == {"idle": 1, "lifetime": 1}


def test_close_rejects_waiters_stops_spares_and_revokes_leases() -> None:
    machine, ids = warm_machine(warm=2, max_live=2)
    machine.acquire(1, 0.0)
    machine.acquire(2, 0.0)  # both taken; refills blocked by max_live
    machine.release(ids[1], 0.5)  # one stopping; a refill starts
    machine.acquire(3, 1.0)
    actions = machine.close(2.0)
    assert Reject(3, "closed", 1.0) in actions
    assert Revoke(ids[0], "closed") in actions
    assert machine.acquire(4, 2.0) == [Reject(4, "closed", 0.0)]
    starting = [b.id for b in machine.backends.values() if b.phase is Phase.STARTING]
    for backend_id in starting:  # a start that finishes after close is stopped at once
        assert machine.started(backend_id, "h", 1, 2.5) == [Stop(backend_id, "closed")]


def test_stopped_forgets_the_backend_and_counts_the_reason() -> None:
    machine, ids = warm_machine()
    machine.acquire(1, 0.0)
    machine.release(ids[0], 1.0)
    machine.stopped(ids[0], "released", 1.4)
    assert ids[0] not in machine.backends
    assert machine.counters.stopped == {"released": 1}
    assert machine.stopped(ids[0], "released", 1.5) == []


def test_histogram_is_cumulative() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert histogram.count == 4
    assert histogram.sum == pytest.approx(3.65)


def test_describe_is_plain_data() -> None:
    machine, _ = warm_machine(warm=1)
    machine.acquire(1, 0.0)
    state = machine.describe(1.0)
    assert state["counts"] == {"starting": 1, "ready": 0, "busy": 1, "stopping": 0}
    assert state["waiting"] == 0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PoolPolicy(max_live=0)
    with pytest.raises(ValueError):
        PoolPolicy(queue_timeout=-1)
