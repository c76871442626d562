"""Failover on a 3-node Apache Kafka cluster: the fault matrix's Kafka scenarios.

Replication factor 3, min.insync.replicas=2, acks=all, idempotence on, 5 in flight;
50,000 records from 20 tasks per scenario, read back with confluent-kafka. For every
acknowledged record: nothing lost, duplicated or reordered, and the offset each future
reported is where the record is (never -1); every future settles within
delivery_timeout_ms + 1 s (benchmarks/_faults_ledger.py decides the verdict).

Slow (about two minutes in all): ``-m "not slow"`` skips it. Each scenario runs on one
event loop, the three loops taking turns, rather than each on all three: a scenario is
20-40 s of real failover, and what differs between loops (the transport) meets the same
faults in the other scenarios and in the whole suite.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from asyncproducer.errors import KafkaTimeoutError, NotEnoughReplicasError
from benchmarks import _faults_kafka as kafka
from benchmarks.faults import BACKENDS, Row, run_scenarios
from tests.integration.brokers import require_kafka_tools

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

SCENARIO_BACKENDS = {
    "kafka-leader-killed": "asyncio",
    "kafka-two-down": "uvloop",
    "kafka-two-down-too-long": "trio",
    "kafka-rolling-restart": "asyncio",
    "kafka-cut-off": "uvloop",
}


@pytest.fixture(scope="module")
def failovers() -> Iterator[dict[str, Row]]:
    """Every scenario on one cluster, each on its event loop (with proxies of its own)."""
    require_kafka_tools()
    seed = random.SystemRandom().randrange(1, 1_000_000)
    rows: dict[str, Row] = {}

    async def run_on_this_loop(cluster: Any, scenario: Any) -> None:
        async with kafka.KafkaBehindProxies(cluster) as session:

            async def runner(*args: Any) -> Any:
                return await kafka.run_kafka(session, *args)

            (row,) = await run_scenarios(
                "Kafka", [scenario], runner, kafka.SETTINGS, seed, injected={}
            )
        row.notes.append(f"replay: python -m benchmarks.faults --seed {seed}")  # in failures
        rows[scenario.name] = row

    with kafka.cluster_for_proxies() as cluster:
        for scenario in kafka.SCENARIOS:
            if scenario.name in SCENARIO_BACKENDS:
                name, options = BACKENDS[SCENARIO_BACKENDS[scenario.name]]
                anyio.run(
                    run_on_this_loop, cluster, scenario, backend=name, backend_options=options
                )
        yield rows


def assert_every_promise_held(row: Row) -> None:
    assert row.violations == [], (row.violations, row.notes)
    assert (row.lost, row.duplicates, row.reorderings) == (0, 0, 0)
    assert (row.offset_mismatches, row.offset_unknown, row.failed_but_stored) == (0, 0, 0)
    assert row.unfinished == 0
    assert row.sent >= 50_000
    assert row.found >= row.acked


@pytest.mark.parametrize(
    "name", ["kafka-leader-killed", "kafka-two-down", "kafka-rolling-restart", "kafka-cut-off"]
)
def test_everything_lands_once_in_order_at_its_offset(failovers: dict[str, Row], name: str) -> None:
    row = failovers[name]
    assert_every_promise_held(row)
    assert row.acked == row.sent  # the faults healed within the delivery timeout
    assert row.max_latency_s < row.delivery_timeout_s + 1
    assert row.retries > 0, "the fault never reached the producer"


def test_not_enough_replicas_is_retried(failovers: dict[str, Row]) -> None:
    notes = " ".join(failovers["kafka-two-down"].notes)
    assert NotEnoughReplicasError.__name__ in notes, notes


def test_two_down_too_long_fails_typed_and_in_time(failovers: dict[str, Row]) -> None:
    row = failovers["kafka-two-down-too-long"]
    assert_every_promise_held(row)  # includes: recovery records acknowledged, none late
    assert row.failed_definite > 0
    assert row.acked + row.failed_definite + row.failed_unknown == row.sent
    summary = " ".join(row.notes)
    cause = f"{KafkaTimeoutError.__name__} (last: {NotEnoughReplicasError.__name__})"
    assert cause in summary, summary
