"""``pointsman routes`` tables, provisioned backends included."""

from __future__ import annotations

from pointsman.control.routes_cli import render_tables

POOL = {
    "provider": "process", "waiting": 1,
    "counts": {"starting": 1, "ready": 1, "busy": 1, "stopping": 0},
    "backends": [
        {"id": "pm-term-a1-1", "phase": "busy", "host": "127.0.0.1", "port": 4100,
         "ref": "31337", "age": 12.34, "leased_for": 3.2},
        {"id": "pm-term-a1-2", "phase": "ready", "host": "", "port": 0, "ref": "31338",
         "age": 1.0, "leased_for": None},
    ],
}


def test_provisioned_backends_are_listed_with_their_phase() -> None:
    text = render_tables({}, {}, {"term": POOL})
    lines = text.splitlines()
    at = lines.index("PROVISIONED (2)")
    assert lines[at + 1] == "  term (process): 1 starting, 1 ready, 1 busy, 0 stopping, 1 waiting"
    assert lines[at + 4].split() == ["term", "pm-term-a1-1", "busy", "127.0.0.1:4100", "31337",
                                     "12.3s", "3.2s"]
    assert lines[at + 5].split() == ["term", "pm-term-a1-2", "ready", "-", "31338", "1.0s", "-"]


def test_without_provision_upstreams_there_is_no_section() -> None:
    assert "PROVISIONED" not in render_tables({}, {}, {})
