"""Run one scenario: all peers side by side, interleaved rounds, CPU per run.

Every peer is started before any load runs and stays up for the whole
scenario, so they share the machine's state (page cache, other users' load)
as evenly as one run allows. Each round loads every peer once, in an order
rotated per round, reading the peer's process-tree CPU time just before and
just after its load run. A peer that cannot start or dies is reported with
its reason; the others go on.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import machine, procstat
from bench.loadgen import LoadError
from bench.model import PeerSummary, Sample, ScenarioResult, summarise
from bench.peerconf import Addr
from bench.peers import Peer
from bench.procs import Managed, ProcessSet, StartError, free_port
from bench.reporting import fmt_num
from bench.scenario import Plan, Scenario

__all__ = ["RunOptions", "run_scenario"]

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line asked for."""

    command: str
    quick: bool = False
    seconds: float | None = None
    rounds: int | None = None
    only_peers: frozenset[str] | None = None
    keep: bool = False
    wait_quiet_s: float = 0.0
    quiet_pct: float = 15.0
    retries: int | None = None
    max_other_load_pct: float = 20.0


@dataclass
class _Running:
    peer: Peer
    addr: Addr
    process: Managed | None
    samples: list[Sample] = field(default_factory=list)
    failure: str = ""


def _plan(scenario: Scenario, options: RunOptions) -> Plan:
    plan = scenario.quick if options.quick else scenario.full
    return Plan(
        seconds=options.seconds or plan.seconds,
        rounds=options.rounds or plan.rounds,
        warmup_s=plan.warmup_s,
        retries=plan.retries if options.retries is None else options.retries,
        max_other_load_pct=options.max_other_load_pct,
    )


def _start_peers(
    scenario: Scenario, procs: ProcessSet, target: Addr, options: RunOptions, log: Log
) -> tuple[list[_Running], list[PeerSummary]]:
    running: list[_Running] = []
    absent: list[PeerSummary] = []
    for peer in scenario.peers():
        if options.only_peers is not None and peer.name not in options.only_peers:
            continue
        if reason := peer.missing():
            log(f"  {peer.name}: unavailable: {reason}")
            absent.append(PeerSummary(peer.name, status="unavailable", reason=reason))
            continue
        listen = Addr("127.0.0.1", free_port())
        try:
            process = peer.start(procs, listen, target)
            if process is not None:
                process.wait_listening(listen.port)
        except (StartError, OSError) as exc:
            reason = str(exc).strip()
            log(f"  {peer.name}: failed to start: {reason.splitlines()[0]}")
            absent.append(PeerSummary(peer.name, status="unavailable", reason=reason))
            continue
        addr = peer.address(listen, target)
        log(f"  {peer.name}: listening on {addr}")
        running.append(_Running(peer, addr, process))
    return running, absent


@dataclass(frozen=True, slots=True)
class _Meter:
    """A reading of the clock, the machine's busy CPU and the CPU of what we run.

    Between two readings, busy CPU not spent by this run's processes (the
    harness, its load generators, backends and peers) is someone else's: the
    share of the machine it took is recorded with each sample as
    ``other_load_pct``, so a run disturbed by other work can be told apart.
    """

    wall: float
    busy: float
    ours: float

    @classmethod
    def read(cls, procs: ProcessSet) -> _Meter:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished load generators
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return cls(time.monotonic(), procstat.machine_busy_seconds(), ours + procs.cpu_seconds())

    def other_load_pct(self, later: _Meter) -> float:
        wall = later.wall - self.wall
        if wall <= 0:
            return 0.0
        foreign = (later.busy - self.busy) - (later.ours - self.ours)
        return max(0.0, 100.0 * foreign / (wall * (os.cpu_count() or 1)))


def _measure(
    scenario: Scenario, procs: ProcessSet, entry: _Running, seconds: float, round_no: int
) -> Sample:
    """One load run with the peer's CPU and the other load around it; raises LoadError."""
    process = entry.process
    meter = _Meter.read(procs)
    before = process.cpu_seconds() if process is not None else None
    result = scenario.load(entry.addr, seconds)
    cpu = None
    if process is not None and before is not None:
        cpu = process.cpu_seconds() - before
    other_load = meter.other_load_pct(_Meter.read(procs))
    if process is not None and not process.alive():
        raise LoadError(f"exited during the run:\n{process.log_tail()}")
    details = {**result.details, "other_load_pct": round(other_load, 1)}
    return Sample(entry.peer.name, round_no, result.rate, result.work, cpu, result.errors, details)


def _one_run(
    scenario: Scenario,
    procs: ProcessSet,
    entry: _Running,
    plan: Plan,
    round_no: int,
    log: Log,
) -> None:
    """Measure one run; a run that other work disturbed is taken again (bounded).

    When every attempt was disturbed, the least disturbed one is kept; its
    ``other_load_pct`` shows in the report.
    """
    attempts: list[Sample] = []
    for attempt in range(1 + plan.retries):
        try:
            sample = _measure(scenario, procs, entry, plan.seconds, round_no)
        except LoadError as exc:
            entry.failure = str(exc)
            log(f"  round {round_no} {entry.peer.name}: failed: {str(exc).splitlines()[0]}")
            return
        attempts.append(sample)
        other_load = sample.details["other_load_pct"]
        if other_load <= plan.max_other_load_pct or attempt == plan.retries:
            break
        log(f"  round {round_no} {entry.peer.name}: other load {other_load:.0f}%, again")
        time.sleep(0.5)
    sample = min(attempts, key=lambda s: s.details["other_load_pct"])
    entry.samples.append(sample)
    units = scenario.units
    cost = sample.cost(units)
    cost_text = f"{fmt_num(cost)} {units.cost_unit}" if cost is not None else "no proxy CPU"
    log(
        f"  round {round_no} {entry.peer.name:<15} {fmt_num(sample.rate):>8} {units.rate_unit}"
        f"  {cost_text}  errors {sample.errors}"
        f"  other load {sample.details['other_load_pct']:.0f}%"
    )


def _warm_up(scenario: Scenario, running: list[_Running], plan: Plan, log: Log) -> None:
    """One short unmeasured run per peer: JITs, caches and pools settle first."""
    if plan.warmup_s <= 0:
        return
    for entry in running:
        try:
            scenario.load(entry.addr, plan.warmup_s)
        except LoadError as exc:
            log(f"  warm-up {entry.peer.name}: {exc}")


def _rounds(
    scenario: Scenario, procs: ProcessSet, running: list[_Running], plan: Plan, log: Log
) -> None:
    """Load every live peer once per round, starting one peer later each round."""
    for round_no in range(1, plan.rounds + 1):
        shift = (round_no - 1) % max(len(running), 1)
        for entry in running[shift:] + running[:shift]:
            if entry.failure and entry.process is not None and not entry.process.alive():
                continue
            _one_run(scenario, procs, entry, plan, round_no, log)
            time.sleep(0.2)  # let sockets and the scheduler settle between runs


def _summaries(
    scenario: Scenario, running: list[_Running], absent: list[PeerSummary], plan: Plan
) -> list[PeerSummary]:
    """Medians per peer (peak RSS read now, before the processes stop), in peer order."""
    summaries = list(absent)
    for entry in running:
        rss = entry.process.peak_rss_mib() if entry.process is not None else None
        summary = summarise(
            entry.peer.name, entry.samples, scenario.units, rss, plan.max_other_load_pct
        )
        if entry.failure and not entry.samples:
            summary.status, summary.reason = "failed", entry.failure
        elif entry.failure:
            summary.reason = entry.failure
        summaries.append(summary)
    order = [peer.name for peer in scenario.peers()]
    summaries.sort(key=lambda summary: order.index(summary.peer))
    return summaries


def run_scenario(scenario: Scenario, options: RunOptions, log: Log) -> ScenarioResult:
    """Start the backend and every peer, load each in turn, and summarise."""
    plan = _plan(scenario, options)
    quiet = None
    if options.wait_quiet_s > 0:
        quiet = machine.wait_for_quiet(options.wait_quiet_s, options.quiet_pct, log)
    started = machine.utc_now()
    facts = machine.describe()
    if quiet is not None:
        facts["busy_pct_before"] = round(quiet, 1)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.name}-"))
    log(f"[{scenario.name}] {scenario.title}: {plan.rounds} round(s) of {plan.seconds:g}s "
        f"per peer, work dir {workdir}")
    summaries: list[PeerSummary] = []
    try:
        with ProcessSet(workdir) as procs:
            target = scenario.start_backend(procs)
            log(f"  backend listening on {target}")
            running, absent = _start_peers(scenario, procs, target, options, log)
            _warm_up(scenario, running, plan, log)
            _rounds(scenario, procs, running, plan, log)
            summaries = _summaries(scenario, running, absent, plan)
    finally:
        if options.keep:
            log(f"  kept work dir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    by_peer = {summary.peer: summary for summary in summaries}
    targets = [
        target.evaluate(scenario.subject, by_peer, scenario.units) for target in scenario.targets
    ]
    settings = {
        "seconds_per_run": plan.seconds,
        "rounds": plan.rounds,
        "warmup_s": plan.warmup_s,
        "retries_when_disturbed": plan.retries,
        "disturbed_above_other_load_pct": plan.max_other_load_pct,
        "quick": options.quick,
        "aggregate": "median over undisturbed rounds (all rounds if none was)",
        **scenario.settings(),
    }
    facts["loadavg_after"] = machine.loadavg()
    return ScenarioResult(
        scenario=scenario.name,
        title=scenario.title,
        command=options.command,
        started=started,
        finished=machine.utc_now(),
        machine=facts,
        settings=settings,
        units=scenario.units,
        subject=scenario.subject,
        reference=scenario.reference,
        baseline=scenario.baseline,
        peers=summaries,
        targets=targets,
        notes=list(scenario.notes),
    )
