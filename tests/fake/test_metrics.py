"""``Producer.metrics()`` after a known workload: one check per Java metric name.

The workload, on a one-broker FakeCluster (10 batches of 100 records, flushed one at a
time; one of them held 0.1 s by the broker; then a batch refused once with a retriable
error, and one refused for good), gives every metric a value the test can work out from
what the fake stored and logged: its batches' bytes, its request log, the clock around
the run. Rates are per second over Java's sampled windows (2 of 30 s by default), whose
span counts as at least one whole window: ``total / (elapsed + 30 s)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import zstandard

from asyncproducer import Metric, Producer
from asyncproducer.errors import KafkaError
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

NOT_LEADER_OR_FOLLOWER = 6
INVALID_RECORD = 87  # not retriable
ROUNDS, PER_ROUND = 10, 100
HELD_S = 0.1
QUEUED_S = 0.05
WINDOW_S = 30.0  # metrics_sample_window_ms's default; 2 samples: at least one window


@dataclass
class Run:
    """What the workload did, and what the fake kept of it."""

    metrics: dict[str, float]
    topics: dict[str, dict[str, float]]
    elapsed_s: float
    """From before the producer was made to after the metrics were read."""
    batches: dict[str, list[bytes]]
    """Per topic, every batch the broker stored (one per request here)."""
    requests: int
    failed_batch_records: int
    retried_batch: bytes
    extra: dict[str, Any] = field(default_factory=dict)


def record_sizes(raw: bytes) -> list[int]:
    """Each record's encoded bytes (its length prefix included), read from an
    uncompressed batch by hand: a signed varint length, then the record."""
    sizes, at = [], BATCH_HEADER_SIZE
    while at < len(raw):
        start, shift, unsigned = at, 0, 0
        while True:
            byte = raw[at]
            at += 1
            unsigned |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        length = (unsigned >> 1) ^ -(unsigned & 1)
        at += length
        sizes.append(at - start)
    return sizes


def compression_ratio(raw: bytes, decompress: Callable[[bytes], bytes] | None) -> float:
    """Encoded bytes over the bytes it would be uncompressed (Java's compressionRatio)."""
    records = raw[BATCH_HEADER_SIZE:]
    plain = records if decompress is None else decompress(records)
    return len(raw) / (BATCH_HEADER_SIZE + len(plain))


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.anyio
async def test_compression_rate_is_compressed_over_uncompressed_bytes() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("zipped", 1)
        async with Producer(
            cluster.bootstrap_servers, linger_ms=60_000, compression_type="zstd"
        ) as producer:
            for round_ in range(3):
                for i in range(200):
                    await producer.send("zipped", b"%d-" % i * (round_ + 5))
                await producer.flush()
            metrics, topic = producer.metrics(), producer.topic_metrics()["zipped"]
        ratios = [compression_ratio(b.raw, zstd) for b in cluster.batches("zipped", 0)]
    assert len(ratios) == 3
    assert max(ratios) < 0.5  # repetitive values: zstd halves them at least
    assert metrics["compression-rate-avg"] == pytest.approx(sum(ratios) / 3)
    assert topic["compression-rate"] == pytest.approx(sum(ratios) / 3)


async def workload() -> Run:
    began = time.monotonic()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("plain", 1)
        cluster.create_topic("squeezed", 1)
        async with Producer(
            cluster.bootstrap_servers,
            linger_ms=60_000,
            batch_size=1 << 20,
            enable_idempotence=False,
            retry_backoff_ms=10,
        ) as producer:
            for round_ in range(ROUNDS):
                if round_ == 3:
                    cluster.delay_responses(ApiKey.PRODUCE, HELD_S, count=1)
                for i in range(PER_ROUND):
                    await producer.send("plain", b"v" * (100 + i % 7), key=b"k%d" % i)
                if round_ == 5:
                    await anyio.sleep(QUEUED_S)  # this batch waits in the queue
                await producer.flush()
            cluster.fail_next(ApiKey.PRODUCE, NOT_LEADER_OR_FOLLOWER)
            retried = [await producer.send("squeezed", b"z" * 300) for _ in range(50)]
            await producer.flush()
            for future in retried:
                await future
            cluster.fail_next(ApiKey.PRODUCE, INVALID_RECORD)
            refused = [await producer.send("squeezed", b"r" * 10) for _ in range(20)]
            await producer.flush()
            for future in refused:
                with pytest.raises(KafkaError):
                    await future
            # The metadata refresh the NOT_LEADER_OR_FOLLOWER asked for runs beside the
            # retry, and may be the last request sent: its answer is awaited too, so that
            # every request the cluster logged has been answered (bounded).
            with anyio.fail_after(5):
                while producer.metrics()["requests-in-flight"]:
                    await anyio.sleep(0.005)
            metrics, topics = producer.metrics(), producer.topic_metrics()
        elapsed = time.monotonic() - began
        return Run(
            metrics,
            topics,
            elapsed,
            {t: [b.raw for b in cluster.batches(t, 0)] for t in ("plain", "squeezed")},
            sum(1 for e in cluster.request_log if e.client_id == producer.config.client_id),
            len(refused),
            cluster.batches("squeezed", 0)[0].raw,
        )


@pytest.fixture(scope="module")
def run() -> Run:
    """The workload, once, on asyncio: its figures do not depend on the loop (the tests
    of reporters, requests in flight and buffer waits below run on every loop)."""
    return anyio.run(workload)


def rate_bounds(total: float, run: Run) -> tuple[float, float]:
    """A windowed rate of ``total`` lies between total over (whole run + one window) and
    total over one window."""
    return total / (run.elapsed_s + WINDOW_S), total / WINDOW_S


def within(value: float, bounds: tuple[float, float]) -> bool:
    low, high = bounds
    return low * (1 - 1e-9) <= value <= high * (1 + 1e-9)


def plain_batches(run: Run) -> list[bytes]:
    return run.batches["plain"]


def sent_batches(run: Run) -> list[bytes]:
    """Every batch that went into a request: the plain ones, the retried one twice, and
    the refused one (its size: its records are not stored; see the test's bounds)."""
    return [*run.batches["plain"], run.retried_batch, run.retried_batch]


RECORDS_SENT = ROUNDS * PER_ROUND + 2 * 50 + 20  # the retried batch went twice


def check_record_send_total(run: Run) -> None:
    assert run.metrics["record-send-total"] == RECORDS_SENT


def check_record_send_rate(run: Run) -> None:
    assert within(run.metrics["record-send-rate"], rate_bounds(RECORDS_SENT, run))


def check_records_per_request_avg(run: Run) -> None:
    # One batch per request: 10 of 100, the retried one's two of 50, the refused 20.
    requests = ROUNDS + 2 + 1
    assert run.metrics["records-per-request-avg"] == pytest.approx(RECORDS_SENT / requests)


def check_record_retry_total(run: Run) -> None:
    assert run.metrics["record-retry-total"] == 50


def check_record_retry_rate(run: Run) -> None:
    assert within(run.metrics["record-retry-rate"], rate_bounds(50, run))


def check_record_error_total(run: Run) -> None:
    assert run.metrics["record-error-total"] == run.failed_batch_records == 20


def check_record_error_rate(run: Run) -> None:
    assert within(run.metrics["record-error-rate"], rate_bounds(20, run))


def per_batch_max_record(run: Run) -> list[int]:
    """Each sent batch's largest record, but the refused one's (not stored)."""
    return [max(record_sizes(raw)) for raw in sent_batches(run)]


def check_record_size_max(run: Run) -> None:
    assert run.metrics["record-size-max"] == max(per_batch_max_record(run))


def check_record_size_avg(run: Run) -> None:
    maxima = per_batch_max_record(run)
    refused_max = run.metrics["record-size-avg"] * (len(maxima) + 1) - sum(maxima)
    # The refused batch's largest record: 10-byte value, no key, small deltas.
    assert 15 <= refused_max <= 20


def check_batch_size_max(run: Run) -> None:
    assert run.metrics["batch-size-max"] == max(len(raw) for raw in sent_batches(run))


def check_batch_size_avg(run: Run) -> None:
    sizes = [len(raw) for raw in sent_batches(run)]
    refused = run.metrics["batch-size-avg"] * (len(sizes) + 1) - sum(sizes)
    assert BATCH_HEADER_SIZE + 20 * 15 <= refused <= BATCH_HEADER_SIZE + 20 * 20


def check_batch_split_total(run: Run) -> None:
    assert run.metrics["batch-split-total"] == 0


def check_batch_split_rate(run: Run) -> None:
    assert run.metrics["batch-split-rate"] == 0


def check_compression_rate_avg(run: Run) -> None:
    assert run.metrics["compression-rate-avg"] == pytest.approx(1.0)  # nothing compressed


def check_record_queue_time_avg(run: Run) -> None:
    avg = run.metrics["record-queue-time-avg"]
    assert QUEUED_S * 1000 / (ROUNDS + 3) <= avg <= run.metrics["record-queue-time-max"]


def check_record_queue_time_max(run: Run) -> None:
    # A batch waits from its first record to its flush: never longer than the run.
    assert QUEUED_S * 1000 <= run.metrics["record-queue-time-max"] < run.elapsed_s * 1000


def check_request_latency_max(run: Run) -> None:
    assert HELD_S * 1000 <= run.metrics["request-latency-max"] < run.elapsed_s * 1000


def check_request_latency_avg(run: Run) -> None:
    produce_requests = ROUNDS + 2 + 1
    avg = run.metrics["request-latency-avg"]
    assert HELD_S * 1000 / produce_requests <= avg <= run.metrics["request-latency-max"]


def check_request_total(run: Run) -> None:
    # Every request of this client the broker logged: ApiVersions, Metadata, Produce.
    assert run.metrics["request-total"] == run.requests


def check_request_rate(run: Run) -> None:
    assert within(run.metrics["request-rate"], rate_bounds(run.requests, run))


def check_response_total(run: Run) -> None:
    assert run.metrics["response-total"] == run.requests  # acks=all: each answered


def check_response_rate(run: Run) -> None:
    assert within(run.metrics["response-rate"], rate_bounds(run.requests, run))


def check_outgoing_byte_total(run: Run) -> None:
    total = run.metrics["outgoing-byte-total"]
    stored = sum(len(raw) for raw in sent_batches(run))
    # The batches, plus the frames' own bytes (headers, topic names, other requests).
    assert stored < total < stored + 200 * run.requests
    avg = run.metrics["request-size-avg"]
    assert avg * run.requests == pytest.approx(total)


def check_outgoing_byte_rate(run: Run) -> None:
    total = run.metrics["outgoing-byte-total"]
    assert within(run.metrics["outgoing-byte-rate"], rate_bounds(total, run))


def check_request_size_avg(run: Run) -> None:
    expected = run.metrics["outgoing-byte-total"] / run.requests
    assert run.metrics["request-size-avg"] == pytest.approx(expected)


def check_request_size_max(run: Run) -> None:
    assert run.metrics["request-size-max"] > max(len(raw) for raw in plain_batches(run))


def check_incoming_byte_total(run: Run) -> None:
    # Each response: at least a size and a correlation id; Metadata ones more.
    assert 8 * run.requests < run.metrics["incoming-byte-total"] < 2_000 * run.requests


def check_incoming_byte_rate(run: Run) -> None:
    total = run.metrics["incoming-byte-total"]
    assert within(run.metrics["incoming-byte-rate"], rate_bounds(total, run))


def check_produce_throttle_time_avg(run: Run) -> None:
    assert run.metrics["produce-throttle-time-avg"] == 0  # no quota (tests/fake/test_throttling)


def check_produce_throttle_time_max(run: Run) -> None:
    assert run.metrics["produce-throttle-time-max"] == 0


def check_buffer_total_bytes(run: Run) -> None:
    assert run.metrics["buffer-total-bytes"] == 33_554_432


def check_buffer_available_bytes(run: Run) -> None:
    assert run.metrics["buffer-available-bytes"] == 33_554_432  # all acknowledged


def check_bufferpool_wait_time_total(run: Run) -> None:
    assert run.metrics["bufferpool-wait-time-total"] == 0  # see the waiting test below


def check_bufferpool_wait_time_ns_total(run: Run) -> None:
    assert run.metrics["bufferpool-wait-time-ns-total"] == 0


def check_waiting_threads(run: Run) -> None:
    assert run.metrics["waiting-threads"] == 0


def check_requests_in_flight(run: Run) -> None:
    assert run.metrics["requests-in-flight"] == 0  # all answered; see the test below


def check_connection_count(run: Run) -> None:
    assert run.metrics["connection-count"] == 1  # one broker: the bootstrap connection


def check_metadata_age(run: Run) -> None:
    assert 0 <= run.metrics["metadata-age"] < run.elapsed_s


def check_epoch_bump_total(run: Run) -> None:
    assert run.metrics["epoch-bump-total"] == 0  # not idempotent


CHECKS = {
    name.removeprefix("check_").replace("_", "-"): check
    for name, check in dict(globals()).items()
    if name.startswith("check_")
}


def test_every_producer_metric_has_a_check(run: Run) -> None:
    assert set(run.metrics) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_producer_metric(run: Run, name: str) -> None:
    CHECKS[name](run)


TOPIC_NAMES = {
    "record-send-total",
    "record-send-rate",
    "byte-total",
    "byte-rate",
    "compression-rate",
    "record-retry-total",
    "record-retry-rate",
    "record-error-total",
    "record-error-rate",
}


def test_topic_metrics(run: Run) -> None:
    plain, squeezed = run.topics["plain"], run.topics["squeezed"]
    assert set(plain) == set(squeezed) == TOPIC_NAMES
    assert plain["record-send-total"] == ROUNDS * PER_ROUND
    assert squeezed["record-send-total"] == 2 * 50 + 20
    plain_bytes = sum(len(raw) for raw in plain_batches(run))
    assert plain["byte-total"] == plain_bytes
    assert within(plain["byte-rate"], rate_bounds(plain_bytes, run))
    assert within(plain["record-send-rate"], rate_bounds(ROUNDS * PER_ROUND, run))
    assert plain["compression-rate"] == pytest.approx(1.0)
    assert (plain["record-retry-total"], squeezed["record-retry-total"]) == (0, 50)
    assert (plain["record-error-total"], squeezed["record-error-total"]) == (0, 20)
    assert within(squeezed["record-error-rate"], rate_bounds(20, run))
    assert within(squeezed["record-retry-rate"], rate_bounds(50, run))
    assert math.isclose(
        run.metrics["record-error-total"],
        sum(t["record-error-total"] for t in run.topics.values()),
    )


class Reporter:
    """Remembers what a producer told it (Java's MetricsReporter calls, snake_case)."""

    instances: list[Reporter] = []

    def __init__(self) -> None:
        self.configs: dict[str, object] = {}
        self.initial: list[str] = []
        self.changed: list[tuple[str, str]] = []
        self.closed = False
        Reporter.instances.append(self)

    def configure(self, configs: dict[str, object]) -> None:
        self.configs = configs

    def init(self, metrics: list[Metric]) -> None:
        self.initial = [m.name for m in metrics]

    def metric_change(self, metric: Metric) -> None:
        self.changed.append((metric.name, metric.tags.get("topic", "")))

    def metric_removal(self, metric: Metric) -> None:
        raise AssertionError("nothing is removed")

    def close(self) -> None:
        self.closed = True


class Broken:
    def metric_change(self, metric: Metric) -> None:
        raise RuntimeError("a reporter bug")

    def close(self) -> None:
        raise RuntimeError("another")


@pytest.mark.anyio
async def test_reporters_are_told_of_every_metric_and_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    given = Reporter()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        producer = Producer(cluster.bootstrap_servers, metric_reporters=[given, Reporter, Broken()])
        async with producer:
            made = Reporter.instances[-1]  # the class, instantiated by the producer
            for reporter in (given, made):
                assert reporter.configs["bootstrap_servers"] == producer.config.bootstrap_servers
                assert set(reporter.initial) == set(producer.metrics())
                assert reporter.changed == []
            await producer.send_and_wait("t", b"v")
            for reporter in (given, made):
                assert ("byte-total", "t") in reporter.changed  # the topic's, when first used
                assert not reporter.closed
        assert given.closed
        assert made.closed
    assert "a reporter bug" in caplog.text  # logged, not raised into the sender
    assert "failed to close" in caplog.text


@pytest.mark.anyio
async def test_requests_in_flight_while_the_broker_holds_the_answer() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(cluster.bootstrap_servers, enable_idempotence=False) as producer:
            await producer.partitions_for("t")
            cluster.delay_responses(ApiKey.PRODUCE, 0.5, count=1)
            future = await producer.send("t", b"held")
            with anyio.fail_after(2):
                while producer.metrics()["requests-in-flight"] != 1:
                    await anyio.sleep(0.01)
            await future
            assert producer.metrics()["requests-in-flight"] == 0


@pytest.mark.anyio
async def test_a_send_waiting_for_buffer_memory_is_counted_and_timed() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(
            cluster.bootstrap_servers, buffer_memory=20_000, batch_size=16_384, linger_ms=0
        ) as producer:
            await producer.partitions_for("t")
            cluster.delay_responses(ApiKey.PRODUCE, 0.3, count=1)
            first = await producer.send("t", b"x" * 15_000)  # holds most of the buffer
            waits: list[float] = []

            async def second() -> None:
                started = time.monotonic()
                await (await producer.send("t", b"y" * 15_000))
                waits.append(time.monotonic() - started)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(second)
                with anyio.fail_after(2):
                    while producer.metrics()["waiting-threads"] != 1:
                        await anyio.sleep(0.005)
            await first
            metrics = producer.metrics()
    assert metrics["waiting-threads"] == 0
    waited_ns = metrics["bufferpool-wait-time-total"]
    assert waited_ns == metrics["bufferpool-wait-time-ns-total"]
    assert 0.1e9 < waited_ns <= waits[0] * 1e9
