"""The peer benchmark's numbers: medians and spread over rounds, ratios, Markdown, JSON.

Pure functions of the runs' results (one dict per client process, as it printed it), so
they are tested on their own (tests/unit/test_bench_report.py).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks._bench_scenarios import PLAINTEXT_SUFFIX

REFERENCE = "aiokafka"
"""Ratios are against this client: the asyncio producer most users would migrate from."""
JAVA = "java"
"""The Java producer: when it ran, every client's ratios against it get a table too."""


def percentile(ordered: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values (the value at rank ceil(p% of n))."""
    if not ordered:
        raise ValueError("no values")
    rank = max(math.ceil(percent / 100 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Stat:
    """A median and the spread (min-max) around it, over rounds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat | None:
        seen = sorted(values)
        if not seen:
            return None
        return cls(statistics.median(seen), seen[0], seen[-1])


@dataclass
class Summary:
    """One client in one scenario, over its rounds."""

    scenario: str
    client: str
    runs: int = 0
    failed_runs: int = 0
    msgs_per_s: Stat | None = None
    mb_per_s: Stat | None = None
    cpu_s_per_million: Stat | None = None
    peak_rss_mb: Stat | None = None
    p50_ms: Stat | None = None
    p99_ms: Stat | None = None
    max_ms: Stat | None = None
    throughput_vs_reference: float | None = None
    """Median msg/s divided by the reference client's (above 1: faster)."""
    cpu_vs_reference: float | None = None
    """Median CPU per record divided by the reference client's (below 1: cheaper)."""
    throughput_vs_plaintext: float | None = None
    """A TLS scenario: median msg/s divided by the same client's in the plaintext twin,
    on the same broker (below 1: what TLS costs in throughput)."""
    cpu_vs_plaintext: float | None = None
    """A TLS scenario: median CPU per record divided by the same client's in the
    plaintext twin (above 1: what TLS costs the client in CPU)."""
    throughput_vs_java: float | None = None
    """Median msg/s divided by the Java producer's in the same scenario."""
    cpu_vs_java: float | None = None
    """Median CPU per record divided by the Java producer's in the same scenario."""
    process_cpu_s: Stat | None = None
    """The Java producer: its whole JVM's CPU seconds per run, start-up to exit (the
    CPU per record counts the measured window only)."""
    notes: list[str] = field(default_factory=list)


def summarise(runs: Sequence[Mapping[str, Any]]) -> list[Summary]:
    """One Summary per (scenario, client), in the order they first ran.

    Only successful runs count towards the numbers; failed ones are counted, and their
    first error is kept as a note.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["scenario"], run["client"]), []).append(run)
    summaries = [_summary(scenario, client, group) for (scenario, client), group in groups.items()]
    _add_ratios(summaries)
    return summaries


def _summary(scenario: str, client: str, group: Sequence[Mapping[str, Any]]) -> Summary:
    good = [run for run in group if run.get("ok")]
    summary = Summary(scenario, client, runs=len(group), failed_runs=len(group) - len(good))

    def stat(key: str) -> Stat | None:
        return Stat.of(run[key] for run in good if run.get(key) is not None)

    summary.msgs_per_s = stat("msgs_per_s")
    summary.mb_per_s = stat("mb_per_s")
    summary.cpu_s_per_million = stat("cpu_s_per_million")
    summary.peak_rss_mb = stat("peak_rss_mb")
    summary.process_cpu_s = stat("process_cpu_s")
    summary.p50_ms, summary.p99_ms, summary.max_ms = stat("p50_ms"), stat("p99_ms"), stat("max_ms")
    for run in group:
        for text in (run.get("note"), run.get("error") and f"failed: {run['error']}"):
            if text and text not in summary.notes:
                summary.notes.append(text)
    return summary


def _add_ratios(summaries: Sequence[Summary]) -> None:
    reference = {s.scenario: s for s in summaries if s.client == REFERENCE}
    java = {s.scenario: s for s in summaries if s.client == JAVA}
    by_key = {(s.scenario, s.client): s for s in summaries}
    for summary in summaries:
        twin = by_key.get((summary.scenario + PLAINTEXT_SUFFIX, summary.client))
        if twin is not None:
            summary.throughput_vs_plaintext = _ratio(summary.msgs_per_s, twin.msgs_per_s)
            summary.cpu_vs_plaintext = _ratio(summary.cpu_s_per_million, twin.cpu_s_per_million)
        peer = java.get(summary.scenario)
        if peer is not None:
            summary.throughput_vs_java = _ratio(summary.msgs_per_s, peer.msgs_per_s)
            summary.cpu_vs_java = _ratio(summary.cpu_s_per_million, peer.cpu_s_per_million)
        ref = reference.get(summary.scenario)
        if ref is None:
            continue
        summary.throughput_vs_reference = _ratio(summary.msgs_per_s, ref.msgs_per_s)
        summary.cpu_vs_reference = _ratio(summary.cpu_s_per_million, ref.cpu_s_per_million)


def _ratio(ours: Stat | None, theirs: Stat | None) -> float | None:
    if ours is None or theirs is None or theirs.median <= 0:
        return None
    return ours.median / theirs.median


# --------------------------------------------------------------------------- Markdown


def _num(value: float) -> str:
    """Whole numbers from 100 up (thousands separated), else three significant figures:
    148,322 / 312 / 4.07 / 0.0512."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{round(value):,}"
    digits = 2 - math.floor(math.log10(abs(value)))
    return f"{value:.{digits}f}"


def _spread(stat: Stat | None) -> str:
    if stat is None:
        return "-"
    return f"{_num(stat.median)} ({_num(stat.low)}-{_num(stat.high)})"


def _median(stat: Stat | None) -> str:
    return "-" if stat is None else _num(stat.median)


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _runs(summary: Summary) -> str:
    ok = summary.runs - summary.failed_runs
    return f"{ok}/{summary.runs}"


def throughput_table(summaries: Sequence[Summary]) -> list[str]:
    lines = [
        f"| scenario | client | msg/s median (min-max) | MB/s | CPU s per M records "
        f"| peak RSS MB | msg/s x {REFERENCE} | CPU x {REFERENCE} | ok runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if s.p50_ms is not None:
            continue
        lines.append(
            f"| {s.scenario} | {s.client} | {_spread(s.msgs_per_s)} | {_median(s.mb_per_s)} "
            f"| {_spread(s.cpu_s_per_million)} | {_median(s.peak_rss_mb)} "
            f"| {_times(s.throughput_vs_reference)} | {_times(s.cpu_vs_reference)} | {_runs(s)} |"
        )
    return lines


def latency_table(summaries: Sequence[Summary]) -> list[str]:
    lines = [
        "| scenario | client | p50 ms (min-max) | p99 ms (min-max) | max ms "
        "| CPU s per M records | CPU x aiokafka | ok runs |".replace("aiokafka", REFERENCE),
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if s.p50_ms is None:
            continue
        lines.append(
            f"| {s.scenario} | {s.client} | {_spread(s.p50_ms)} | {_spread(s.p99_ms)} "
            f"| {_median(s.max_ms)} | {_median(s.cpu_s_per_million)} "
            f"| {_times(s.cpu_vs_reference)} | {_runs(s)} |"
        )
    return lines


def tls_table(summaries: Sequence[Summary]) -> list[str]:
    """Each client's TLS figures against its plaintext ones on the same broker."""
    by_key = {(s.scenario, s.client): s for s in summaries}
    lines = [
        "| scenario | client | msg/s TLS | msg/s plaintext | msg/s TLS / plaintext "
        "| CPU s per M TLS | CPU s per M plaintext | CPU TLS / plaintext |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        twin = by_key.get((s.scenario + PLAINTEXT_SUFFIX, s.client))
        if twin is None:
            continue
        lines.append(
            f"| {s.scenario} | {s.client} | {_median(s.msgs_per_s)} | {_median(twin.msgs_per_s)} "
            f"| {_times(s.throughput_vs_plaintext)} | {_median(s.cpu_s_per_million)} "
            f"| {_median(twin.cpu_s_per_million)} | {_times(s.cpu_vs_plaintext)} |"
        )
    return lines if len(lines) > 2 else []


def java_table(summaries: Sequence[Summary]) -> list[str]:
    """Every client's medians against the Java producer's in the same scenario (none if
    it did not run): msg/s (above 1: faster), CPU per record (below 1: cheaper) and,
    for latency, p50 and p99 (below 1: quicker)."""
    java = {s.scenario: s for s in summaries if s.client == JAVA}
    lines = [
        f"| scenario | client | msg/s x {JAVA} | CPU x {JAVA} | p50 x {JAVA} | p99 x {JAVA} |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        peer = java.get(s.scenario)
        if peer is None or s.client == JAVA:
            continue
        # At a fixed offered rate every client's msg/s is that rate: no ratio to show.
        throughput = None if s.p50_ms is not None else s.throughput_vs_java
        lines.append(
            f"| {s.scenario} | {s.client} | {_times(throughput)} "
            f"| {_times(s.cpu_vs_java)} | {_times(_ratio(s.p50_ms, peer.p50_ms))} "
            f"| {_times(_ratio(s.p99_ms, peer.p99_ms))} |"
        )
    return lines if len(lines) > 2 else []


def notes_lines(summaries: Sequence[Summary], skipped: Sequence[Mapping[str, str]]) -> list[str]:
    lines = [f"- {s.scenario} / {s.client}: {'; '.join(s.notes)}" for s in summaries if s.notes]
    lines += [
        f"- {s.scenario} / {s.client}: the whole process, start-up to exit, used "
        f"{_spread(s.process_cpu_s)} CPU s per run (the tables count the measured window)"
        for s in summaries
        if s.process_cpu_s is not None
    ]
    # One line per client and reason, not one per scenario.
    reasons: dict[tuple[str, str], list[str]] = {}
    for skip in skipped:
        reasons.setdefault((skip["client"], skip["reason"]), []).append(skip["scenario"])
    for (client, reason), scenarios in reasons.items():
        lines.append(f"- {client}: skipped in {', '.join(scenarios)}: {reason}")
    return lines


def machine_lines(machine: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in machine.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"- {key.replace('_', ' ')}: {value}")
    return lines


def markdown(document: Mapping[str, Any]) -> str:
    """The whole report: settings, machine, both tables, notes."""
    summaries = [summary_from_dict(s) for s in document["summary"]]
    settings = document["settings"]
    latency = any(s.p50_ms is not None for s in summaries)
    offered = (
        f"; latency at {settings['rate']:,} msg/s offered for {settings['latency_seconds']:g} s"
        if latency
        else ""
    )
    parts = [
        f"{settings['records']:,} records per throughput run, median of {settings['rounds']} "
        f"interleaved rounds (spread: min-max){offered}. "
        f"Took {document['duration_s'] / 60:.1f} min.",
        "",
        *machine_lines(document["machine"]),
    ]
    if any(s.p50_ms is None for s in summaries):
        parts += ["", "Throughput:", "", *throughput_table(summaries)]
    tls = tls_table(summaries)
    if tls:
        parts += ["", "TLS against plaintext (each client, the same broker):", "", *tls]
    if latency:
        parts += ["", "Latency (due → acknowledged):", "", *latency_table(summaries)]
    java = java_table(summaries)
    if java:
        parts += ["", "Against the Java producer (medians, the same scenario):", "", *java]
    notes = notes_lines(summaries, document.get("skipped", []))
    if notes:
        parts += ["", "Notes:", "", *notes]
    return "\n".join(parts) + "\n"


def plain(text: str) -> str:
    """The Markdown report with its tables as aligned columns, for a terminal."""
    out: list[str] = []
    table: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if table:
            widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
            out += [
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in table
            ]
            table = []
        out.append(line)
    return "\n".join(out[:-1]) + "\n"


# --------------------------------------------------------------------------- JSON


def document(
    *,
    runs: Sequence[Mapping[str, Any]],
    skipped: Sequence[Mapping[str, str]],
    settings: Mapping[str, Any],
    machine: Mapping[str, Any],
    duration_s: float,
) -> dict[str, Any]:
    """Everything about a benchmark run, as the JSON file holds it."""
    return {
        "settings": dict(settings),
        "machine": dict(machine),
        "duration_s": round(duration_s, 1),
        "summary": [asdict(s) for s in summarise(runs)],
        "skipped": list(skipped),
        "runs": list(runs),
    }


def summary_from_dict(raw: Mapping[str, Any]) -> Summary:
    """A Summary back from its JSON form (``asdict``)."""
    stats: dict[str, Any] = {
        key: Stat(**value) if isinstance(value, Mapping) else value for key, value in raw.items()
    }
    return Summary(**stats)


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
