"""What the kernel says a process tree costs: CPU ticks, peak RSS, listening sockets.

The parsers are pure (text in, numbers out) so they are unit-tested on captured
lines; the readers walk ``/proc`` and are only a few lines on top.

CPU is counted over a proxy's whole process tree (nginx's master and worker,
pointsman's workers): each live process's utime+stime plus its cutime+cstime,
which hold what its already-reaped children spent. The resolution is one clock
tick (usually 10 ms), so load runs last seconds, not milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLOCK_TICKS",
    "ProcStat",
    "listening_ports",
    "machine_busy_seconds",
    "parse_cpu_busy_ticks",
    "parse_listening",
    "parse_stat",
    "parse_vm_hwm_kib",
    "peak_rss_kib",
    "process_tree",
    "tree_cpu_seconds",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
TCP_LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the harness uses; times are in clock ticks."""

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def ticks(self) -> int:
        """Everything this process and its reaped children ran, user plus system."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(line: str) -> ProcStat:
    """Read one ``/proc/PID/stat`` line.

    ``comm`` may hold spaces and parentheses, so the fixed fields are found
    after the last ``)``; field N of proc(5) is then ``rest[N - 3]``.
    """
    head, sep, tail = line.rpartition(")")
    if not sep:
        raise ValueError(f"not a /proc/PID/stat line: {line[:80]!r}")
    pid_text, _, comm = head.partition(" (")
    rest = tail.split()
    if len(rest) < 15:
        raise ValueError(f"short /proc/PID/stat line: {line[:80]!r}")
    return ProcStat(
        pid=int(pid_text),
        comm=comm,
        state=rest[0],
        ppid=int(rest[1]),
        utime=int(rest[11]),
        stime=int(rest[12]),
        cutime=int(rest[13]),
        cstime=int(rest[14]),
    )


def parse_vm_hwm_kib(status: str) -> int:
    """Peak resident set size in KiB from a ``/proc/PID/status`` text (0 if absent)."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def parse_listening(table: str) -> set[tuple[str, int]]:
    """The (IPv4 address, port) pairs in LISTEN state in a ``/proc/net/tcp`` text.

    Checking this table tells that a proxy is listening without connecting to
    it, so no half-made connection reaches a backend (iperf3 logs an error for
    a control connection that never sends its cookie).
    """
    found: set[tuple[str, int]] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != TCP_LISTEN:
            continue
        addr_hex, _, port_hex = fields[1].partition(":")
        raw = bytes.fromhex(addr_hex)[::-1]  # stored in host (little-endian) order
        found.add((".".join(str(b) for b in raw), int(port_hex, 16)))
    return found


def parse_cpu_busy_ticks(proc_stat: str) -> int:
    """Ticks all CPUs spent running tasks, from the ``cpu`` line of ``/proc/stat``.

    That is user, nice, system and steal (guest time is already inside user).
    irq and softirq are left out on purpose: with IRQ time accounting the
    kernel charges loopback's packet processing to softirq, not to any task,
    so counting it would make a run's own traffic look like someone else's.
    """
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            user, nice, system, _idle, _iowait, _irq, _softirq, *rest = (
                int(f) for f in fields[1:]
            )
            steal = rest[0] if rest else 0
            return user + nice + system + steal
    raise ValueError("no aggregate cpu line in /proc/stat")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot, all cores together."""
    return parse_cpu_busy_ticks((PROC / "stat").read_text()) / CLOCK_TICKS


def listening_ports() -> set[tuple[str, int]]:
    """IPv4 sockets listening on this machine right now."""
    return parse_listening((PROC / "net" / "tcp").read_text())


def _read_stat(pid: int) -> ProcStat | None:
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


def process_tree(root: int) -> list[ProcStat]:
    """``root`` and all its live descendants (empty when ``root`` is gone)."""
    stats: dict[int, ProcStat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                stats[stat.pid] = stat
    if root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    tree: list[ProcStat] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        tree.append(stats[pid])
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) the tree under ``root`` has spent so far."""
    return sum(stat.ticks for stat in process_tree(root)) / CLOCK_TICKS


def peak_rss_kib(root: int) -> int:
    """The sum of every live process's VmHWM in the tree under ``root``."""
    total = 0
    for stat in process_tree(root):
        try:
            total += parse_vm_hwm_kib((PROC / str(stat.pid) / "status").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
