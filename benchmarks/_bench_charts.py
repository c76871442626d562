"""PNG charts of the peer benchmark (matplotlib: ``pip install asyncproducer[bench]``).

Grouped bars, one group per scenario and one bar per client; the bar is the median over
rounds and the whisker the spread (min-max).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks._bench_report import Stat, Summary

DPI = 80
"""Small files: the charts are committed under docs/benchmarks/."""


def write_charts(summaries: Sequence[Summary], directory: Path) -> list[Path]:
    """Write the charts that have data; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    directory.mkdir(parents=True, exist_ok=True)
    throughput = [s for s in summaries if s.p50_ms is None]
    latency = [s for s in summaries if s.p50_ms is not None]
    written = []
    if throughput:
        written.append(
            _grouped(
                throughput,
                lambda s: s.msgs_per_s,
                "records per second (median; whiskers: min-max) — higher is better",
                directory / "throughput.png",
            )
        )
        written.append(
            _grouped(
                throughput,
                lambda s: s.cpu_s_per_million,
                "client CPU seconds per million records — lower is better",
                directory / "cpu.png",
            )
        )
    if latency:
        written.append(_latency(latency, directory / "latency.png"))
    return written


def _grouped(
    summaries: Sequence[Summary],
    value: Callable[[Summary], Stat | None],
    title: str,
    path: Path,
) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    scenarios = list(dict.fromkeys(s.scenario for s in summaries))
    clients = list(dict.fromkeys(s.client for s in summaries))
    width = 0.8 / len(clients)
    max_height = 0.0
    figure, axes = plt.subplots(figsize=(11, 4.2))
    for n, client in enumerate(clients):
        xs, heights, low, high = [], [], [], []
        for x, scenario in enumerate(scenarios):
            stat = next(
                (value(s) for s in summaries if (s.scenario, s.client) == (scenario, client)),
                None,
            )
            if stat is None:
                continue
            xs.append(x + (n - (len(clients) - 1) / 2) * width)
            heights.append(stat.median)
            low.append(stat.median - stat.low)
            high.append(stat.high - stat.median)
        axes.bar(xs, heights, width, yerr=[low, high], capsize=2, label=client)
        max_height = max([max_height, *heights])
    axes.set_xticks(range(len(scenarios)), scenarios, rotation=20, ha="right")
    axes.set_title(title, fontsize=10)
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}" if max_height >= 100 else "{x:g}"))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, ncols=min(len(clients), 5))
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _latency(summaries: Sequence[Summary], path: Path) -> Path:
    import matplotlib.pyplot as plt

    clients = [s.client for s in summaries]
    percentiles = [("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")]
    width = 0.8 / len(percentiles)
    figure, axes = plt.subplots(figsize=(8, 4))
    for n, (label, attribute) in enumerate(percentiles):
        xs, heights = [], []
        for x, summary in enumerate(summaries):
            stat: Stat | None = getattr(summary, attribute)
            if stat is not None:
                xs.append(x + (n - 1) * width)
                heights.append(stat.median)
        axes.bar(xs, heights, width, label=label)
    axes.set_xticks(range(len(clients)), clients, rotation=15, ha="right")
    axes.set_yscale("log")
    axes.set_ylabel("ms (log scale)")
    axes.set_title("ack latency at a fixed offered rate (median of rounds) — lower is better")
    axes.grid(axis="y", alpha=0.3, which="both")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
