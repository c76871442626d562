"""The adaptive partitioning benchmark (benchmarks/adaptive.py) without a broker: its
accounting of one run, the summary and the ratios against uniform-sticky, the report,
the command line."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import pytest

from asyncproducer.errors import KafkaTimeoutError
from benchmarks import adaptive
from benchmarks.adaptive import BASELINE, Run, Setup

LEADERS = {p: p % 3 for p in range(12)}  # broker 0 is the slow one below


def run(
    variant: str,
    round_: int,
    msgs: float,
    p99: float,
    *,
    failed: int = 0,
    per_broker: dict[int, int] | None = None,
    max_ms: float | None = None,
) -> Run:
    """A finished run of 1,000 records that took 1,000 / ``msgs`` seconds."""
    return Run(
        variant,
        round_,
        1000,
        seconds=1000 / msgs,
        acked=1000 - failed,
        failed=failed,
        first_error="KafkaTimeoutError: expired" if failed else None,
        p50_ms=p99 / 4,
        p99_ms=p99,
        max_ms=max_ms if max_ms is not None else p99 * 2,
        per_broker=per_broker or {0: 200, 1: 400, 2: 400},
        max_ms_per_broker={0: p99 * 2, 1: p99},
    )


def refused(variant: str, round_: int) -> Run:
    return Run(variant, round_, 1000, error="refused at construction: ConfigError: no")


RUNS = [
    run("adaptive", 1, 30_000, 100),
    run(BASELINE, 1, 10_000, 400),
    run("adaptive", 2, 20_000, 300),
    run(BASELINE, 2, 20_000, 200),  # a round where adaptive is no better
    run("adaptive", 3, 45_000, 100),
    run(BASELINE, 3, 15_000, 300),
    run("adaptive-off", 1, 12_000, 350, failed=3),
    refused("availability", 1),
    run(adaptive.REFERENCE, 1, 30_000, 100),
]
VARIANTS = ["adaptive", "adaptive-off", BASELINE, "availability", adaptive.REFERENCE]


def test_summary_takes_medians_of_good_runs_and_the_worst_over_all() -> None:
    rows = {row["variant"]: row for row in adaptive.summarise(RUNS, VARIANTS, slow=0)}
    fast = rows["adaptive"]
    assert (fast["runs"], fast["good_runs"], fast["errors"]) == (3, 3, [])
    assert fast["msgs_per_s"] == pytest.approx(30_000)
    assert fast["p99_ms"] == 100
    assert fast["max_ms"] == 600  # the worst round's, not a median
    assert fast["max_ms_slow_broker"] == 600
    assert fast["max_vs_delivery_timeout"] == pytest.approx(600 / adaptive.DELIVERY_TIMEOUT_MS)
    assert fast["share"] == {0: 0.2, 1: 0.4, 2: 0.4}
    assert rows["adaptive-off"]["failed"] == 3
    not_made = rows["availability"]
    assert (not_made["good_runs"], not_made["msgs_per_s"], not_made["share"]) == (0, None, {})
    assert not_made["errors"] == ["refused at construction: ConfigError: no"]


def test_ratios_are_per_round_against_uniform_sticky_then_the_median() -> None:
    rows = {row["variant"]: row for row in adaptive.versus_baseline(RUNS, VARIANTS)}
    assert BASELINE not in rows
    # msg/s ratios by round 3.0, 1.0, 3.0; p99 ratios 0.25, 1.5, 0.333...
    assert rows["adaptive"]["msgs_per_s_ratio"] == pytest.approx(3.0)
    assert rows["adaptive"]["p99_ratio"] == pytest.approx(1 / 3)
    assert rows["adaptive"]["target_met"] is True
    # Faster and lower, but records failed: the target is not met.
    # msg/s counts the acknowledged records: 997 of 1,000.
    assert rows["adaptive-off"]["msgs_per_s_ratio"] == pytest.approx(1.2 * 0.997)
    assert rows["adaptive-off"]["none_failed_or_late"] is False
    assert rows["adaptive-off"]["target_met"] is False
    assert rows["availability"]["rounds"] == 0
    assert rows["availability"]["target_met"] is None
    # The reference (no broker slowed) is compared, not judged.
    assert rows[adaptive.REFERENCE]["msgs_per_s_ratio"] == pytest.approx(3.0)
    assert rows[adaptive.REFERENCE]["target_met"] is None


def test_the_target_needs_twice_the_throughput_and_a_lower_p99() -> None:
    def verdict(msgs: float, p99: float, max_ms: float | None = None) -> bool | None:
        runs = [run(BASELINE, 1, 10_000, 100), run("adaptive", 1, msgs, p99, max_ms=max_ms)]
        (row,) = adaptive.versus_baseline(runs, ["adaptive", BASELINE])
        met: bool | None = row["target_met"]
        return met

    assert verdict(20_000, 99) is True
    assert verdict(19_999, 50) is False
    assert verdict(30_000, 100) is False  # p99 not lower
    assert verdict(30_000, 50, max_ms=adaptive.DELIVERY_TIMEOUT_MS) is False  # too late


def test_the_proxy_processing_time_makes_the_slow_node_slowdown_times_the_others() -> None:
    measured = {1: 5.0, 2: 3.0, 3: 4.0}  # node 1 is to be slowed; the others' median 3.5
    assert adaptive.processing_ms(measured, slow=1, slowdown=10) == pytest.approx(30.0)
    assert adaptive.processing_ms(measured, slow=1, slowdown=1) == 0.0  # never negative
    # Measured again with 30 ms in place: node 1 at 40 ms, the others' median 5 ms.
    again = {1: 40.0, 2: 5.0, 3: 5.0}
    assert adaptive.processing_ms(again, slow=1, slowdown=10, in_place_ms=30) == pytest.approx(40)


class StubProducer:
    """``send()`` gives a future already done: every 7th failed, the rest acknowledged
    on partition ``i % 12``."""

    def __init__(self) -> None:
        self.sent = 0
        self.flushed = False

    async def send(self, topic: str, value: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.sent % 7 == 6:
            future.set_exception(KafkaTimeoutError("expired in the accumulator"))
        else:
            future.set_result(SimpleNamespace(partition=self.sent % 12))
        self.sent += 1
        return future

    async def flush(self) -> None:
        self.flushed = True


def test_a_run_counts_each_record_once_by_the_broker_that_leads_its_partition() -> None:
    producer = StubProducer()
    result = Run("adaptive", 1, 700)
    asyncio.run(adaptive.produce(producer, "t", 700, LEADERS, result))  # type: ignore[arg-type]
    assert producer.sent == 700
    assert producer.flushed
    assert (result.acked, result.failed) == (600, 100)
    assert result.first_error == "KafkaTimeoutError: expired in the accumulator"
    assert sum(result.per_broker.values()) == 600
    assert set(result.per_broker) == {0, 1, 2}
    assert result.p50_ms is not None
    assert result.max_ms is not None
    assert 0 <= result.p50_ms <= result.max_ms
    assert result.msgs_per_s is not None
    assert result.msgs_per_s > 0


def test_the_report_reads_the_json_document() -> None:
    setup = Setup("b", "t", LEADERS, 0, "FakeCluster", {0: 51.0, 1: 6.0, 2: 6.2})
    document = {
        "settings": {"records": 1000, "value_bytes": 100, "rounds": 3, "loop": "asyncio"},
        "setup": asdict(setup),
        "summary": adaptive.summarise(RUNS, VARIANTS, slow=0),
        "versus_baseline": adaptive.versus_baseline(RUNS, VARIANTS),
    }
    text = adaptive.report(json.loads(json.dumps(document)))  # keys are strings there
    assert "broker 0 (slow) 51.0, broker 1 6.0, broker 2 6.2; the slow one 8.4x the others" in text
    assert (
        "| adaptive | 3/3 | 30,000 | 25.0 | 100.0 | 600 | 600 | 0.020 | 20% / 40% / 40% | 0 |"
        in (text)
    )
    assert "| adaptive | 3 | 3.00x | 0.33x | yes | yes |" in text
    assert "| availability | 0/1 | n/a |" in text
    assert "- availability: refused at construction: ConfigError: no" in text
    assert "- adaptive-off: 3 records failed, the first with KafkaTimeoutError: expired" in text


def test_command_line_defaults_and_refusals() -> None:
    args = adaptive.parse_args([])
    assert (args.broker, args.records, args.rounds, args.slowdown) == ("fake", 100_000, 3, 10.0)
    assert args.variants == list(adaptive.VARIANTS)
    assert BASELINE in adaptive.VARIANTS
    chosen = adaptive.parse_args(["--broker", "kafka", "--variants", "adaptive", BASELINE])
    assert chosen.variants == ["adaptive", BASELINE]
    for wrong in (["--variants", "adaptive"], ["--records", "0"], ["--variants", "nope"]):
        with pytest.raises(SystemExit):
            adaptive.parse_args(wrong)
