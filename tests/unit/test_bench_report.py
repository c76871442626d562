"""The peer benchmark's report (benchmarks/_bench_report.py): medians, spread, ratios
against aiokafka, the tables and the JSON document, on hand-made run results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _bench_report as report
from benchmarks._bench_scenarios import SCENARIOS, Payloads, RunSpec


def run(
    client: str, msgs: float, cpu: float, *, scenario: str = "base", **extra: Any
) -> dict[str, Any]:
    return {
        "client": client,
        "scenario": scenario,
        "ok": True,
        "msgs_per_s": msgs,
        "mb_per_s": msgs / 10_000,
        "cpu_s_per_million": cpu,
        "peak_rss_mb": 40.0,
        **extra,
    }


@pytest.mark.parametrize(
    ("percent", "expected"), [(50, 5.0), (99, 10.0), (100, 10.0), (1, 1.0), (0, 1.0)]
)
def test_percentile_is_nearest_rank(percent: float, expected: float) -> None:
    assert report.percentile([float(x) for x in range(1, 11)], percent) == expected


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        report.percentile([], 50)


def test_stat_is_median_and_spread() -> None:
    assert report.Stat.of([3.0, 1.0, 2.0]) == report.Stat(2.0, 1.0, 3.0)
    assert report.Stat.of([1.0, 4.0]) == report.Stat(2.5, 1.0, 4.0)
    assert report.Stat.of([]) is None


def test_summary_per_scenario_and_client_with_ratios_against_aiokafka() -> None:
    runs = [
        run("asyncproducer", 120.0, 4.0),
        run("aiokafka", 100.0, 8.0),
        run("asyncproducer", 150.0, 5.0),
        run("aiokafka", 90.0, 6.0),
        run("asyncproducer", 130.0, 6.0),
        run("aiokafka", 110.0, 7.0),
    ]
    ours, theirs = report.summarise(runs)
    assert (ours.client, theirs.client) == ("asyncproducer", "aiokafka")
    assert ours.msgs_per_s == report.Stat(130.0, 120.0, 150.0)
    assert (ours.runs, ours.failed_runs) == (3, 0)
    assert ours.throughput_vs_reference == pytest.approx(1.3)
    assert ours.cpu_vs_reference == pytest.approx(5.0 / 7.0)
    assert theirs.throughput_vs_reference == pytest.approx(1.0)


def test_failed_runs_are_counted_not_averaged_and_their_error_kept() -> None:
    runs = [
        run("asyncproducer", 100.0, 5.0),
        {"client": "asyncproducer", "scenario": "base", "ok": False, "error": "timed out"},
        run("asyncproducer", 300.0, 5.0, ok=False, error="2 records failed"),
    ]
    (summary,) = report.summarise(runs)
    assert (summary.runs, summary.failed_runs) == (3, 2)
    assert summary.msgs_per_s == report.Stat(100.0, 100.0, 100.0)
    assert summary.notes == ["failed: timed out", "failed: 2 records failed"]
    assert summary.throughput_vs_reference is None  # no aiokafka in this scenario


def test_no_ratio_when_the_reference_failed_every_round() -> None:
    runs = [run("asyncproducer", 100.0, 5.0), {"client": "aiokafka", "scenario": "base"}]
    ours, _ = report.summarise(runs)
    assert ours.throughput_vs_reference is None


def test_latency_summary() -> None:
    runs = [
        run("aiokafka", 5000.0, 150.0, scenario="latency", p50_ms=p50, p99_ms=3.0, max_ms=9.0)
        for p50 in (0.5, 0.4, 0.6)
    ]
    (summary,) = report.summarise(runs)
    assert summary.p50_ms == report.Stat(0.5, 0.4, 0.6)


@pytest.mark.parametrize(
    ("value", "text"),
    [(148_321.7, "148,322"), (312.4, "312"), (4.071, "4.07"), (0.05123, "0.0512"), (0, "0")],
)
def test_numbers_have_three_significant_figures(value: float, text: str) -> None:
    assert report._num(value) == text


def document() -> dict[str, Any]:
    runs = [
        run("asyncproducer", 120.0, 4.0, round=1),
        run("aiokafka", 100.0, 8.0, round=1),
        run("confluent-kafka", 400.0, 2.0, round=1, note="synchronous client"),
        run("aiokafka", 5000.0, 150.0, scenario="latency", p50_ms=0.5, p99_ms=3.0, max_ms=9.0),
    ]
    return report.document(
        runs=runs,
        skipped=[{"scenario": "base", "client": "asyncproducer-batch", "reason": "no send_batch"}],
        settings={"records": 1000, "rounds": 1, "rate": 5000, "latency_seconds": 5.0},
        machine={"cpu": "Test CPU", "cores": 2, "packages": {"aiokafka": "0.14.0"}},
        duration_s=90.0,
    )


def test_markdown_has_both_tables_the_machine_and_the_notes() -> None:
    text = report.markdown(document())
    assert (
        "| base | asyncproducer | 120 (120-120) | 0.0120 | 4.00 (4.00-4.00) | 40.0 | 1.20x " in text
    )
    assert "| latency | aiokafka | 0.500 (0.500-0.500) | 3.00 (3.00-3.00) | 9.00 |" in text
    assert "- cpu: Test CPU" in text
    assert "- packages: aiokafka 0.14.0" in text
    assert "- base / confluent-kafka: synchronous client" in text
    assert "- asyncproducer-batch: skipped in base: no send_batch" in text
    assert "Took 1.5 min" in text


def test_plain_aligns_the_table_columns() -> None:
    text = report.plain("intro\n\n| a | bb |\n|---|---|\n| ccc | d |\nafter\n")
    assert text == "intro\n\na    bb\nccc  d\nafter\n"


def test_json_document_round_trips_the_summary() -> None:
    doc = json.loads(report.dumps(document()))
    assert len(doc["runs"]) == 4
    summaries = [report.summary_from_dict(raw) for raw in doc["summary"]]
    assert summaries == report.summarise(document()["runs"])
    assert doc["machine"]["cores"] == 2
    assert doc["skipped"][0]["client"] == "asyncproducer-batch"


def test_run_spec_round_trips_as_json() -> None:
    spec = RunSpec(SCENARIOS["keyed"], "127.0.0.1:9092", "topic", 1000, 60.0)
    assert RunSpec.from_json(spec.to_json()) == spec


def test_payloads_are_the_same_in_every_process_and_sized() -> None:
    first, second = Payloads(100, keyed=True), Payloads(100, keyed=True)
    assert [first.value(i) for i in range(5)] == [second.value(i) for i in range(5)]
    assert {len(first.value(i)) for i in range(2000)} == {100}
    assert len({first.key(i) for i in range(10_000)}) > 9000  # spread over many keys
    assert Payloads(100, keyed=False).key(3) is None
    assert first.size(0) == 100 + len(first.key(0) or b"")


def test_scenarios_vary_one_factor_of_the_base() -> None:
    base = SCENARIOS["base"]
    fields = ["value_size", "keyed", "acks", "linger_ms", "compression", "partitions", "tasks"]
    for scenario in SCENARIOS.values():
        changed = [f for f in fields if getattr(scenario, f) != getattr(base, f)]
        assert len(changed) <= 2, (scenario.name, changed)


def test_charts_are_written_where_there_is_data(tmp_path: Path) -> None:
    from benchmarks._bench_charts import write_charts  # matplotlib: the bench extra, in dev

    summaries = [report.summary_from_dict(raw) for raw in document()["summary"]]
    written = write_charts(summaries, tmp_path / "charts")
    assert [p.name for p in written] == ["throughput.png", "cpu.png", "latency.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
