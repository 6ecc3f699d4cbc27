"""The leader's view of provision pools kept by several workers."""

from __future__ import annotations

from pointsman.control.provision_admin import merge_worker_states


def test_workers_states_are_summed_per_upstream() -> None:
    one = {"term": {"counts": {"ready": 1, "busy": 2}, "waiting": 0, "consecutive_failures": 0,
                    "totals": {"leases": 3, "failures": {"probe": 1}}, "backends": [{"id": "a"}],
                    "policy": {"warm": 1}}}
    two = {"term": {"counts": {"ready": 1, "busy": 0}, "waiting": 2, "consecutive_failures": 1,
                    "totals": {"leases": 4, "failures": {"start": 2}}, "backends": [{"id": "b"}],
                    "policy": {"warm": 1}}}
    merged = merge_worker_states([one, two])["term"]
    assert merged["workers"] == 2
    assert merged["counts"] == {"ready": 2, "busy": 2}
    assert merged["totals"] == {"leases": 7, "failures": {"probe": 1, "start": 2}}
    assert (merged["waiting"], merged["consecutive_failures"]) == (2, 1)
    assert [b["id"] for b in merged["backends"]] == ["a", "b"]
    assert merged["policy"] == {"warm": 1}
    assert one["term"]["backends"] == [{"id": "a"}]  # the replies are left as they were
