"""What a run reports: machine facts, the console and Markdown tables, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.children import ROOT
from bench.rss import RssResult
from bench.scenarios import Cell
from bench.storm import StormResult

HEADERS = (
    "scenario",
    "conns",
    "direct req/s",
    "gateway req/s",
    "ratio",
    "direct p50/p99 ms",
    "gateway p50/p99 ms",
    "added p50 ms",
    "redis cmds/req",
    "flags",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    """Read-only git: the output of ``git <args>``, or None without git."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision() -> str | None:
    revision = _git("rev-parse", "--short", "HEAD")
    if revision is None:
        return None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "service")
    return f"{revision} + uncommitted changes in service/" if changed else revision


def machine_info(wrk_version: str | None) -> dict[str, Any]:
    info = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    return {k: v for k, v in info.items() if v is not None}


def _row(cell: Cell) -> tuple[str, ...]:
    d, g = cell.direct, cell.gateway
    return (
        cell.title,
        str(cell.connections),
        f"{d.rps:,.0f}",
        f"{g.rps:,.0f}",
        f"{cell.ratio:.2f}",
        f"{d.p50_ms:.2f} / {d.p99_ms:.2f}",
        f"{g.p50_ms:.2f} / {g.p99_ms:.2f}",
        f"{cell.added_p50_ms:+.2f}",
        f"{cell.redis_per_request.get('total', 0):.1f}",
        f"**{cell.flags}**" if cell.flags else "",
    )


def markdown_table(cells: list[Cell]) -> str:
    rows = [HEADERS, *(_row(c) for c in cells)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    numeric = {1, 2, 3, 4, 7, 8}

    def line(row: tuple[str, ...]) -> str:
        cells_text = [
            v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells_text) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(HEADERS), rule, *(line(r) for r in rows[1:])])


def storm_markdown(storm: StormResult) -> str:
    title = (
        f"polling storm ({storm.jobs} jobs, {storm.queue_seconds:g} s queue + {storm.processing_seconds:g} s "
        f"processing, {storm.connections} connections)"
    )
    polls = f"{storm.client_polls:,} ({storm.client_poll_rps:,.0f}/s for {storm.storm_seconds:.1f} s)"
    status = f"{storm.upstream_status_calls_per_job:.2f} (max {storm.upstream_status_calls_max_job})"
    rows = [
        (title, "value"),
        ("client status polls", polls),
        ("client polls per job", f"{storm.client_polls_per_job:,.1f}"),
        ("upstream status calls per job", status),
        ("upstream result calls per job", f"{storm.upstream_result_calls_per_job:.2f}"),
        ("all jobs completed", "yes" if storm.all_completed else "**no**"),
    ]
    lines = [f"| {a} | {b} |" for a, b in rows]
    lines.insert(1, "|---|---:|")
    return "\n".join(lines)


def rss_markdown(rss: RssResult) -> str:
    lines = [
        "| jobs in flight | gateway RSS MB | submits/s | simulator RSS MB | Redis used MB |",
        "|---:|---:|---:|---:|---:|",
        f"| 0 (fresh gateway) | {rss.baseline_gateway_rss_mb:.1f} | | | |",
    ]
    lines += [
        f"| {lv.jobs_in_flight:,} | {lv.gateway_rss_mb:.1f} | {lv.submit_rps:,.0f} | {lv.simulator_rss_mb:.1f} | "
        f"{lv.redis_used_mb:.1f} |"
        for lv in rss.levels
    ]
    lines.append(
        f"\nBefore the restart for this measurement, after the earlier phases: {rss.gateway_rss_after_load_mb:.1f} MB."
    )
    if rss.note:
        lines.append(f"\n{rss.note}")
    return "\n".join(lines)


def full_markdown(cells: list[Cell], storm: StormResult | None, rss: RssResult | None, machine: dict[str, Any]) -> str:
    header = (
        f"{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, {machine['wrk']}; "
        "wrk, the simulator and the gateway share the cores."
    )
    parts = [header, "", markdown_table(cells)]
    if storm is not None:
        parts += ["", storm_markdown(storm)]
    if rss is not None:
        parts += ["", rss_markdown(rss)]
    return "\n".join(parts)


def log_summary(log: Path) -> dict[str, int]:
    """Counts of the gateway's warning and error log lines by level and event."""
    counts: Counter[str] = Counter()
    if not log.exists():
        return {}
    with log.open(errors="replace") as lines:
        for raw in lines:
            try:
                entry = json.loads(raw)
            except ValueError:
                if raw.strip():
                    counts["(not JSON)"] += 1
                continue
            if isinstance(entry, dict):
                counts[f"{entry.get('level', '?')}: {entry.get('event', '?')}"] += 1
    return dict(counts.most_common())


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
