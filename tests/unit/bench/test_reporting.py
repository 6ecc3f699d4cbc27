"""Tables, summary line and files, from a hand-made result."""

from __future__ import annotations

import json
from pathlib import Path

from bench.model import PeerSummary, Sample, ScenarioResult, Target, Units
from bench.reporting import fmt_num, fmt_ratio, markdown, peer_rows, summary_line, write_all

UNITS = Units("throughput", "Gbit/s", "CPU-s/GiB", "GiB")


def _result() -> ScenarioResult:
    peers = {
        "pointsman": PeerSummary(
            "pointsman", rate=12.0, cost=0.2, best_rate=13.0, peak_rss_mib=30.0, other_load_pct=3,
            used=1,
            samples=[Sample("pointsman", 1, 12.0, 10.0, 2.0)],
        ),
        "haproxy": PeerSummary(
            "haproxy", rate=10.0, cost=0.4, peak_rss_mib=14.0,
            samples=[Sample("haproxy", 1, 10.0, 10.0, 4.0)],
        ),
        "direct": PeerSummary("direct", rate=24.0, samples=[Sample("direct", 1, 24.0, 10, None)]),
        "nginx": PeerSummary("nginx", status="unavailable", reason="nginx not installed\nmore"),
    }
    targets = [
        Target("rate", "haproxy", ">=", 1.5).evaluate("pointsman", peers, UNITS),
        Target("cost", "haproxy", "<=", 0.5).evaluate("pointsman", peers, UNITS),
        Target("rate", "nginx", ">=", 1.0).evaluate("pointsman", peers, UNITS),
    ]
    return ScenarioResult(
        scenario="tcp_bulk",
        title="bulk TCP",
        command="python -m bench tcp_bulk --quick",
        started="2026-11-23T10:00:00Z",
        finished="2026-11-23T10:00:30Z",
        machine={"nproc": 2, "kernel": "6.1", "python": "3.11.7"},
        settings={"rounds": 3, "seconds_per_run": 5.0, "warmup_s": 1.0},
        units=UNITS,
        subject="pointsman",
        reference="haproxy",
        baseline="direct",
        peers=list(peers.values()),
        targets=targets,
        notes=["a note"],
    )


def test_number_formats() -> None:
    assert fmt_num(None) == "—"
    assert fmt_num(0) == "0"
    assert fmt_num(0.30412) == "0.304"
    assert fmt_num(12.345) == "12.3"
    assert fmt_num(12345.6) == "12,346"
    assert fmt_ratio(1.5) == "1.50x"
    assert fmt_ratio(None) == "—"


def test_peer_rows_have_ratios_against_reference_and_baseline() -> None:
    rows = {row[0]: row for row in peer_rows(_result())}
    assert rows["pointsman"] == [
        "pointsman", "12", "0.2", "30", "1.20x", "0.50x", "0.50x", "0", "3", "1/1", "ok",
    ]
    assert rows["haproxy"][4:7] == ["1.00x", "1.00x", "0.42x"]
    assert rows["direct"][2] == "—"
    assert rows["nginx"][-1] == "unavailable"


def test_markdown_names_command_targets_machine_and_problems() -> None:
    text = markdown(_result())
    assert "Command: `python -m bench tcp_bulk --quick`" in text
    assert "| pointsman throughput / haproxy | 1.20x | >= 1.5x | FAIL |" in text
    assert "| pointsman CPU-s/GiB / haproxy | 0.50x | <= 0.5x | PASS |" in text
    assert "| pointsman throughput / nginx | — | >= 1x | n/a |" in text
    assert "- nginx (unavailable): nginx not installed" in text
    assert "- nproc: 2" in text
    assert "- a note" in text


def test_summary_line() -> None:
    line = summary_line(_result())
    assert line == (
        "tcp_bulk: pointsman 12 Gbit/s (1.20x haproxy, 0.50x direct), "
        "CPU 0.2 CPU-s/GiB (0.50x haproxy); targets met 1/3 (2 measured)"
    )


def test_write_all_names_files_by_scenario_and_date(tmp_path: Path) -> None:
    written = write_all(_result(), tmp_path)
    names = sorted(path.name for path in written)
    assert names[:2] == ["tcp_bulk-2026-11-23.json", "tcp_bulk-2026-11-23.md"]
    data = json.loads((tmp_path / "tcp_bulk-2026-11-23.json").read_text())
    assert data["command"] == "python -m bench tcp_bulk --quick"
    assert data["peers"][0]["samples"][0]["cpu_s"] == 2.0
    assert data["machine"]["nproc"] == 2
