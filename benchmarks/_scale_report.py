"""The scale benchmark's numbers: medians over rounds, one Markdown table per group.

Pure functions of the runs' results (one dict per client process, as it printed it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks._bench_report import Stat, machine_lines
from benchmarks._scale_cases import (
    MIB,
    PARTITIONS,
    STALL,
    TARGET,
    TARGET_BASE,
    TARGET_RATIO,
    TASKS,
    TOPICS,
    WINDOW,
    Case,
)

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


def against_base(
    runs: Sequence[Mapping[str, Any]], base: Sequence[Mapping[str, Any]], key: str
) -> Stat | None:
    """``key`` of each run over that of the base run of the same round: the ratio's
    median and spread (the rounds interleave, so a round's runs share the machine's mood)."""
    by_round = {run["round"]: run[key] for run in base if run.get("ok")}
    return Stat.of(run[key] / by_round[run["round"]] for run in runs if run["round"] in by_round)


def summarise(cases: Sequence[Case], runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per throughput case: medians and spread of its successful runs (the target group's
    also against its base); stall cases as run."""
    summary: list[dict[str, Any]] = []
    base = [run for run in runs if run["case"] == TARGET_BASE]
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
            growth = [
                r["peak_rss_mib"] - r["rss_before_mib"] for r in good if "rss_before_mib" in r
            ]
            row["rss_growth_mib"] = Stat.of(growth)
            if case.group == TARGET:
                row["msgs_per_s_vs_base"] = against_base(good, base, "msgs_per_s")
                row["cpu_us_per_record_vs_base"] = against_base(good, base, "cpu_us_per_record")
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


LAYOUT_DEFAULTS = (("topics", 1), ("partitions", 6), ("tasks", 100))
"""A stall row's layout when it does not say (rows from before it was recorded)."""


def layout(case: Case | Mapping[str, Any]) -> str:
    """Topics x partitions per topic, tasks: of a case, or of a stall run's row (rows
    from before the stall recorded them were 1 x 6, 100)."""
    if isinstance(case, Case):
        topics, partitions, tasks = case.topics, case.partitions, case.tasks
    else:
        topics, partitions, tasks = (case.get(k, d) for k, d in LAYOUT_DEFAULTS)
    return f"{topics:,} x {partitions:,}, {tasks:,}"


def ratio(stat: Stat | None) -> str:
    if stat is None:
        return "-"
    if round(stat.low, 2) == round(stat.high, 2):
        return f"{stat.median:.2f}x"
    return f"{stat.median:.2f}x ({stat.low:.2f}-{stat.high:.2f})"


def target_table(cases: Sequence[Case], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Issue 23's cases against their base: msg/s within 20 %, and RSS growth against
    buffer_memory."""
    lines = [
        "| topics x partitions, tasks | msg/s median (min-max) | msg/s x base "
        "| CPU µs per record | CPU x base | peak RSS MiB | RSS growth MiB "
        "| growth / buffer_memory | records per batch | records per request | ok runs "
        f"| msg/s >= {TARGET_RATIO:.2f}x base |",
        "|---" * 12 + "|",
    ]
    by_name = {row["case"]: row for row in rows}
    for case in cases:
        row = by_name[case.name]
        versus, growth = row["msgs_per_s_vs_base"], row["rss_growth_mib"]
        per_batch, per_request = row["records_per_batch"], row["records_per_request"]
        verdict = "-"
        if case.name != TARGET_BASE and versus is not None:
            # Three decimals: a median of 0.798 shows as 0.80x in its own column.
            met = "met" if versus.median >= TARGET_RATIO else "not met"
            verdict = f"{met} ({versus.median:.3f}x)"
        lines.append(
            f"| {layout(case)} | {spread(row['msgs_per_s'])} | {ratio(versus)} "
            f"| {spread(row['cpu_us_per_record'])} | {ratio(row['cpu_us_per_record_vs_base'])} "
            f"| {median(row['peak_rss_mib'])} | {median(growth)} "
            f"| {'-' if growth is None else f'{growth.median / (case.buffer_memory / MIB):.2f}'} "
            f"| {'-' if per_batch is None else num(per_batch)} "
            f"| {'-' if per_request is None else num(per_request)} "
            f"| {row['ok_runs']}/{row['runs']} | {verdict} |"
        )
    return lines


def stall_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| topics x partitions, tasks | record B | buffer_memory MiB | RSS before MiB "
        "| max RSS during stall MiB "
        "| growth MiB | growth - buffer_memory MiB | growth / buffer_memory "
        "| growth per record accepted, B | RSS at end of stall MiB | growth stopped after s "
        "| min buffer_available | accepted | acknowledged | failed | refused (timed out) |",
        "|---" * 16 + "|",
    ]
    for row in rows:
        if "rss_growth_mib" not in row:
            lines.append(f"| {row['case']}: {'; '.join(row['errors']) or 'no result'} |")
            continue
        growth, memory = row["rss_growth_mib"], row["buffer_memory_mib"]
        per_record = growth * MIB / max(row["accepted_during_stall"], 1)
        plateau = row.get("rss_plateau_s")
        lines.append(
            f"| {layout(row)} | {row['value_size']:,} | {memory:g} | {num(row['rss_before_mib'])} "
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
    stall_heading = (
        f"Broker stalled (SIGSTOP) for {settings['stall_seconds']:g} s: {settings['stall']}."
    )
    stalls = [row for row in rows if row["group"] == STALL]
    if stalls:
        parts += ["", stall_heading, "", *stall_table(stalls)]
    target = [case for case in cases if case.group == TARGET and not case.is_stall]
    if target:
        target_rows = [row for row in rows if row["group"] == TARGET]
        stall_names = {case.name for case in cases if case.group == TARGET and case.is_stall}
        parts += [
            "",
            "Against issue 23's target (msg/s within 20 % of base; x base: the median, "
            "and the spread, of each round's run over that round's base run; RSS growth: "
            "peak RSS over RSS once warmed up, tasks included):",
            "",
            *target_table(target, target_rows),
        ]
        target_stalls = [row for row in target_rows if row["case"] in stall_names]
        if target_stalls:
            parts += ["", stall_heading, "", *stall_table(target_stalls)]
    errors = [f"- {row['case']}: {'; '.join(row['errors'])}" for row in rows if row["errors"]]
    if errors:
        parts += ["", "Errors:", "", *errors]
    return "\n".join(parts) + "\n"
