"""Turn a ``ScenarioResult`` into the files a reader opens: JSON, markdown, PNG.

The markdown table and the summary line are pure functions of the result (so
they are unit-tested); the writers put ``<scenario>-<date>.{json,md,png}``
side by side in the output directory. Every file names the command that
produced it and the machine it ran on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench.model import PeerSummary, ScenarioResult, ratio

__all__ = [
    "fmt_num",
    "fmt_ratio",
    "markdown",
    "peer_rows",
    "summary_line",
    "to_json",
    "write_all",
]

MISSING = "—"


def fmt_num(value: float | None) -> str:
    """Three significant digits, no exponent for the magnitudes benchmarks produce."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def peer_rows(result: ScenarioResult) -> list[list[str]]:
    """One row per peer: medians, peak RSS, ratios against reference and baseline."""
    by_peer = result.by_peer()
    ref = by_peer.get(result.reference, PeerSummary(result.reference))
    base = by_peer.get(result.baseline, PeerSummary(result.baseline))
    rows = []
    for peer in result.peers:
        status = peer.status if peer.status != "ok" else ("ok" if not peer.reason else "partial")
        rows.append(
            [
                peer.peer,
                fmt_num(peer.rate),
                fmt_num(peer.cost),
                fmt_num(peer.peak_rss_mib),
                fmt_ratio(ratio(peer.rate, ref.rate)),
                fmt_ratio(ratio(peer.cost, ref.cost)),
                fmt_ratio(ratio(peer.rate, base.rate)),
                str(peer.errors),
                fmt_num(peer.other_load_pct),
                f"{peer.used}/{len(peer.samples)}",
                status,
            ]
        )
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def markdown(result: ScenarioResult) -> str:
    units = result.units
    settings = result.settings
    header = [
        "peer",
        f"{units.rate_name} ({units.rate_unit})",
        f"CPU ({units.cost_unit})",
        "peak RSS (MiB)",
        f"{units.rate_name} / {result.reference}",
        f"CPU / {result.reference}",
        f"{units.rate_name} / {result.baseline}",
        "errors",
        "other load % (max)",
        "runs used",
        "status",
    ]
    lines = [
        f"# {result.scenario}: {result.title}",
        "",
        f"Command: `{result.command}`",
        "",
        f"Ran {result.started} to {result.finished}. Each peer: {settings['rounds']} "
        f"interleaved round(s) of {settings['seconds_per_run']:g} s after a "
        f"{settings['warmup_s']:g} s warm-up; numbers are the median over the rounds "
        "other work did not disturb (over all rounds when every one was; every run is "
        "in the JSON file). CPU is the proxy's process tree, "
        "user + system, read from /proc/PID/stat around each run. Other load is the "
        "largest share of the machine's CPU that processes outside this run took "
        "during any of the peer's kept runs"
        + (
            f"; a run above {settings['disturbed_above_other_load_pct']:g}% was taken again "
            f"up to {settings['retries_when_disturbed']} time(s), keeping the least disturbed."
            if settings.get("retries_when_disturbed")
            else "."
        ),
        "",
        *_table(header, peer_rows(result)),
        "",
    ]
    if result.targets:
        lines += [f"## Targets ({result.subject} against its peers)", ""]
        target_rows = [
            [t.label, fmt_ratio(t.measured), t.wanted, _verdict(t.passed)] for t in result.targets
        ]
        lines += [*_table(["target", "measured", "wanted", "result"], target_rows), ""]
    problems = [p for p in result.peers if p.reason]
    if problems:
        lines += ["## Peers with problems", ""]
        lines += [f"- {p.peer} ({p.status}): {p.reason.splitlines()[0]}" for p in problems]
        lines.append("")
    lines += ["## Machine and settings", ""]
    lines += [f"- {key}: {value}" for key, value in result.machine.items()]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    if result.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def summary_line(result: ScenarioResult) -> str:
    """One line for the end of a run: the subject's standing and the targets' tally."""
    by_peer = result.by_peer()
    units = result.units
    subject = by_peer.get(result.subject)
    if subject is None or subject.rate is None:
        head = f"{result.scenario}: {result.subject} not measured"
    else:
        ref = by_peer.get(result.reference, PeerSummary(result.reference))
        base = by_peer.get(result.baseline, PeerSummary(result.baseline))
        head = (
            f"{result.scenario}: {result.subject} {fmt_num(subject.rate)} {units.rate_unit} "
            f"({fmt_ratio(ratio(subject.rate, ref.rate))} {result.reference}, "
            f"{fmt_ratio(ratio(subject.rate, base.rate))} {result.baseline}), "
            f"CPU {fmt_num(subject.cost)} {units.cost_unit} "
            f"({fmt_ratio(ratio(subject.cost, ref.cost))} {result.reference})"
        )
    passed = sum(1 for t in result.targets if t.passed)
    measured = sum(1 for t in result.targets if t.passed is not None)
    return f"{head}; targets met {passed}/{len(result.targets)} ({measured} measured)"


def to_json(result: ScenarioResult) -> str:
    data: dict[str, Any] = dataclasses.asdict(result)
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _chart(result: ScenarioResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [p for p in result.peers if p.rate is not None]
    names = [p.peer for p in measured]
    colours = ["tab:orange" if n == result.subject else "tab:blue" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [p.rate or 0.0 for p in measured], color=colours)
    left.set_title(f"{result.units.rate_name} ({result.units.rate_unit}, higher is better)")
    right.bar(names, [p.cost or 0.0 for p in measured], color=colours)
    right.set_title(f"CPU ({result.units.cost_unit}, lower is better)")
    fig.suptitle(f"{result.scenario}: {result.title}\n{result.command}", fontsize=9)
    fig.text(
        0.01, 0.01,
        f"{result.started}  nproc={result.machine.get('nproc')}  "
        f"kernel={result.machine.get('kernel')}  python={result.machine.get('python')}",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_all(result: ScenarioResult, out_dir: Path) -> list[Path]:
    """Write the JSON, markdown and (when matplotlib is installed) PNG files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{result.scenario}-{result.started[:10]}"
    written = []
    json_path = stem.with_suffix(".json")
    json_path.write_text(to_json(result))
    written.append(json_path)
    md_path = stem.with_suffix(".md")
    md_path.write_text(markdown(result))
    written.append(md_path)
    try:
        png_path = stem.with_suffix(".png")
        _chart(result, png_path)
        written.append(png_path)
    except ImportError:
        pass  # matplotlib is the optional `bench` extra; JSON and markdown suffice
    return written
