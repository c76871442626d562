"""The scale benchmark's numbers: medians over rounds, one Markdown table per group.

Pure functions of the runs' results (one dict per client process, as it printed it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks._bench_report import Stat, machine_lines
from benchmarks._scale_cases import MIB, PARTITIONS, STALL, TASKS, TOPICS, WINDOW, Case

FIRST_COLUMN = {
    PARTITIONS: "partitions (one topic) | keys",
    TOPICS: "topics (1 partition each, round-robin)",
    TASKS: "concurrent tasks (one 6-partition topic)",
    WINDOW: "records in flight, at most (one task)",
}
TITLES = {
    PARTITIONS: "Partitions",
    TOPICS: "Topics",
    TASKS: "Concurrent tasks",
    WINDOW: "Records in flight",
}


def num(value: float) -> str:
    """Whole numbers from 100 up (thousands separated), else three significant figures."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{round(value):,}"
    digits = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{max(digits, 0)}f}"


def spread(stat: Stat | None) -> str:
    if stat is None:
        return "-"
    if stat.low == stat.high:
        return num(stat.median)
    return f"{num(stat.median)} ({num(stat.low)}-{num(stat.high)})"


def median(stat: Stat | None) -> str:
    return "-" if stat is None else num(stat.median)


def summarise(cases: Sequence[Case], runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per throughput case: medians and spread of its successful runs; stall cases as run."""
    summary: list[dict[str, Any]] = []
    for case in cases:
        mine = [run for run in runs if run["case"] == case.name]
        good = [run for run in mine if run.get("ok")]
        row: dict[str, Any] = {
            "group": case.group,
            "case": case.name,
            "runs": len(mine),
            "ok_runs": len(good),
            "errors": sorted({run["error"] for run in mine if run.get("error")}),
        }
        if case.is_stall:
            row |= {k: v for k, v in (good or mine or [{}])[-1].items() if k != "rss_series"}
        else:
            row["records"] = case.records
            for key in ("msgs_per_s", "cpu_us_per_record", "peak_rss_mib"):
                row[key] = Stat.of(run[key] for run in good)
            for key in ("records_per_batch", "records_per_request"):
                values = [run[key] for run in good]
                row[key] = statistics.median(values) if values else None
        summary.append(row)
    return summary


def label(case: Case) -> str:
    if case.group == PARTITIONS:
        return f"{case.partitions:,} | {'10,000 keys' if case.keyed else 'none'}"
    if case.group == TOPICS:
        return f"{case.topics:,}"
    if case.group == TASKS:
        return f"{case.tasks:,}"
    return f"{case.window:,}"


def throughput_table(
    group: str, cases: Sequence[Case], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    lines = [
        f"| {FIRST_COLUMN[group]} | msg/s median (min-max) | CPU µs per record "
        "| peak RSS MiB | records per batch | records per request | ok runs |",
        "|---" * (8 if group == PARTITIONS else 7) + "|",
    ]
    by_name = {row["case"]: row for row in rows}
    for case in cases:
        row = by_name[case.name]
        per_batch, per_request = row["records_per_batch"], row["records_per_request"]
        lines.append(
            f"| {label(case)} | {spread(row['msgs_per_s'])} | {spread(row['cpu_us_per_record'])} "
            f"| {median(row['peak_rss_mib'])} | {'-' if per_batch is None else num(per_batch)} "
            f"| {'-' if per_request is None else num(per_request)} "
            f"| {row['ok_runs']}/{row['runs']} |"
        )
    return lines


def stall_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| record B | buffer_memory MiB | RSS before MiB | max RSS during stall MiB "
        "| growth MiB | growth - buffer_memory MiB | growth / buffer_memory "
        "| growth per record accepted, B | RSS at end of stall MiB | growth stopped after s "
        "| min buffer_available | accepted | acknowledged | failed | refused (timed out) |",
        "|---" * 15 + "|",
    ]
    for row in rows:
        if "rss_growth_mib" not in row:
            lines.append(f"| {row['case']}: {'; '.join(row['errors']) or 'no result'} |")
            continue
        growth, memory = row["rss_growth_mib"], row["buffer_memory_mib"]
        per_record = growth * MIB / max(row["accepted_during_stall"], 1)
        plateau = row.get("rss_plateau_s")
        lines.append(
            f"| {row['value_size']:,} | {memory:g} | {num(row['rss_before_mib'])} "
            f"| {num(row['rss_max_during_mib'])} | {num(growth)} | {growth - memory:.1f} "
            f"| {growth / memory:.2f} | {per_record:,.0f} "
            f"| {num(row['rss_end_of_stall_mib'])} | {'-' if plateau is None else plateau} "
            f"| {row['min_buffer_available']:,} | {row['accepted']:,} | {row['acked']:,} "
            f"| {row['failed']:,} | {row['refused']:,} |"
        )
    return lines


def markdown(document: Mapping[str, Any], cases: Sequence[Case]) -> str:
    """The whole report: settings, machine, one table per group, errors."""
    settings = document["settings"]
    rows = document["summary"]
    parts = [
        f"Median of {settings['rounds']} round(s) (spread: min-max), one process per run; "
        f"{settings['records']:,} records of {settings['value_size']} B per throughput run "
        f"({settings['producer']}). Took {document['duration_s'] / 60:.1f} min.",
        "",
        *machine_lines(document["machine"]),
    ]
    for group in (PARTITIONS, TOPICS, TASKS, WINDOW):
        mine = [case for case in cases if case.group == group]
        if mine:
            table = throughput_table(group, mine, [r for r in rows if r["group"] == group])
            parts += ["", f"{TITLES[group]}:", "", *table]
    stalls = [row for row in rows if row["group"] == STALL]
    if stalls:
        parts += [
            "",
            f"Broker stalled (SIGSTOP) for {settings['stall_seconds']:g} s: {settings['stall']}.",
            "",
            *stall_table(stalls),
        ]
    errors = [f"- {row['case']}: {'; '.join(row['errors'])}" for row in rows if row["errors"]]
    if errors:
        parts += ["", "Errors:", "", *errors]
    return "\n".join(parts) + "\n"
