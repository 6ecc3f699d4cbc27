"""``python -m bench [SCENARIO ...] [--quick] [--out DIR]``: run, write, summarise.

Progress goes to stderr as it happens; the files written and one summary line
per scenario go to stdout at the end. The exit status is 0 when every
scenario ran (targets missed are reported, not failures) and 1 otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.peers import REPO
from bench.reporting import summary_line, write_all
from bench.runner import RunOptions, run_scenario
from bench.scenarios import DEFAULT, SCENARIOS

__all__ = ["main"]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Side-by-side benchmarks of pointsman against HAProxy, nginx and direct.",
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO",
        help=f"scenarios to run (default: {' '.join(DEFAULT)}; one of {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--quick", action="store_true", help="one short round per peer (<1 min)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results",
        help="directory for <scenario>-<date>.{json,md,png} (default: bench/results)",
    )
    parser.add_argument("--seconds", type=float, help="override seconds per load run")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--peers", help="comma-separated subset of peers to run")
    parser.add_argument(
        "--retries", type=int,
        help="times to take a disturbed run again (default 1, 0 with --quick)",
    )
    parser.add_argument(
        "--max-other-load", type=float, default=20.0, metavar="PCT",
        help="a run is disturbed when other work took more than PCT%% of the machine "
             "(default 20)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS",
        help="before each scenario, wait up to SECONDS for the machine to be under "
             "--quiet-pct busy for 3 s (default: do not wait)",
    )
    parser.add_argument("--quiet-pct", type=float, default=15.0,
                        help="what --wait-quiet calls quiet, in %% of all cores (default 15)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    if args.list:
        for name, scenario in SCENARIOS.items():
            print(f"{name:<12} {scenario.title}")
        return 0
    names = args.scenarios or list(DEFAULT)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        _parser().error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.seconds is not None and not 0 < args.seconds <= 60:
        _parser().error("--seconds must be in (0, 60]")
    if args.rounds is not None and not 1 <= args.rounds <= 10:
        _parser().error("--rounds must be in [1, 10]")
    options = RunOptions(
        command=" ".join(["python -m bench", shlex.join(args_list)]).strip(),
        quick=args.quick,
        seconds=args.seconds,
        rounds=args.rounds,
        only_peers=frozenset(args.peers.split(",")) if args.peers else None,
        keep=args.keep,
        wait_quiet_s=min(max(args.wait_quiet, 0.0), 600.0),
        quiet_pct=args.quiet_pct,
        retries=None if args.retries is None else min(max(args.retries, 0), 5),
        max_other_load_pct=args.max_other_load,
    )
    began = time.monotonic()
    summaries: list[str] = []
    failed = False
    for name in names:
        try:
            result = run_scenario(SCENARIOS[name], options, _log)
        except Exception as exc:  # one broken scenario must not hide the others' results
            _log(f"[{name}] failed: {type(exc).__name__}: {exc}")
            summaries.append(f"{name}: FAILED ({exc})")
            failed = True
            continue
        for path in write_all(result, args.out):
            print(f"wrote {path}")
        summaries.append(summary_line(result))
    print(f"bench: {len(names)} scenario(s) in {time.monotonic() - began:.0f}s")
    for line in summaries:
        print(line)
    return 1 if failed else 0
