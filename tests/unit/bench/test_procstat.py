"""Parsing /proc: stat lines, status peaks, listening sockets; and reading our own."""

from __future__ import annotations

import os

import pytest
from bench.procstat import (
    machine_busy_seconds,
    parse_cpu_busy_ticks,
    parse_listening,
    parse_stat,
    parse_vm_hwm_kib,
    peak_rss_kib,
    process_tree,
    tree_cpu_seconds,
)

STAT = (
    "7132 (cat) R 7130 7130 5419 0 -1 4194304 100 0 0 0 12 34 56 78 20 0 1 0 220703 "
    "3133440 360 18446744073709551615 94236959432704 94236959452585 140723529113872 0 0 0 0 "
    "0 0 0 0 0 17 1 0 0 0 0 0"
)


def test_stat_fields() -> None:
    stat = parse_stat(STAT)
    assert (stat.pid, stat.comm, stat.state, stat.ppid) == (7132, "cat", "R", 7130)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (12, 34, 56, 78)
    assert stat.ticks == 12 + 34 + 56 + 78


def test_stat_comm_with_spaces_and_parens() -> None:
    line = STAT.replace("(cat)", "(nginx: worker (1))")
    stat = parse_stat(line)
    assert stat.comm == "nginx: worker (1)"
    assert stat.ppid == 7130
    assert stat.utime == 12


@pytest.mark.parametrize("line", ["", "garbage", "12 (x) R 1 2"])
def test_stat_rejects_short_lines(line: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(line)


def test_vm_hwm() -> None:
    status = "Name:\tnginx\nVmPeak:\t  9000 kB\nVmHWM:\t    1956 kB\nVmRSS:\t    1900 kB\n"
    assert parse_vm_hwm_kib(status) == 1956
    assert parse_vm_hwm_kib("Name:\tkthreadd\n") == 0


NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1567 1
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1568 1
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1569 1
"""


def test_listening_sockets_only() -> None:
    assert parse_listening(NET_TCP) == {("127.0.0.1", 8080), ("0.0.0.0", 2024)}


def test_reading_our_own_process() -> None:
    tree = process_tree(os.getpid())
    assert tree[0].pid == os.getpid()
    assert tree_cpu_seconds(os.getpid()) > 0
    assert peak_rss_kib(os.getpid()) > 1024


def test_a_gone_process_has_no_tree() -> None:
    assert process_tree(2**22 + 1) == []
    assert tree_cpu_seconds(2**22 + 1) == 0


PROC_STAT = """\
cpu  100 5 50 1000 20 3 2 7 0 0
cpu0 50 2 25 500 10 1 1 3 0 0
cpu1 50 3 25 500 10 2 1 4 0 0
intr 12345
"""


def test_machine_busy_counts_task_time_only() -> None:
    assert parse_cpu_busy_ticks(PROC_STAT) == 100 + 5 + 50 + 7
    with pytest.raises(ValueError):
        parse_cpu_busy_ticks("intr 1\n")
    assert machine_busy_seconds() > 0
