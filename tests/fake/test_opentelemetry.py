"""asyncproducer.integrations.opentelemetry on the fake cluster: spans that last until the
acknowledgement, trace context in the records' headers, send_batch, the metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from asyncproducer import Producer, ProducerRecord, RecordMetadata
from asyncproducer.errors import SerializationError, TopicAuthorizationFailedError
from asyncproducer.integrations.opentelemetry import (
    extract_context,
    instrument_producer,
    uninstrument_producer,
)
from asyncproducer.interceptors import ProducerInterceptor
from asyncproducer.testing.fake import FakeCluster
from asyncproducer.testing.mock import MockProducer

pytestmark = pytest.mark.anyio

PRODUCE = 0
TOPIC_AUTHORIZATION_FAILED = 29  # not retriable: the record fails at once
W3C = TraceContextTextMapPropagator()


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def instrument(self, producer: Any, **options: Any) -> None:
        instrument_producer(
            producer,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            propagator=W3C,
            **options,
        )

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = self.spans.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(tracer_provider, meter_provider, spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    async with FakeCluster(brokers=3) as cluster:
        cluster.create_topic("orders", 3)
        yield cluster


def broker_address(cluster: FakeCluster, topic: str, partition: int) -> tuple[str, int]:
    leader = cluster.leader_of(topic, partition)
    host, port = cluster.bootstrap_servers.split(",")[cluster.broker_ids.index(leader)].split(":")
    return host, int(port)


def carried_context(headers: Any) -> SpanContext:
    """What a consumer extracts from a stored record's headers, with the W3C propagator
    itself (not this project's getter)."""
    carrier = {name: value.decode() for name, value in headers if value is not None}
    return trace.get_current_span(W3C.extract(carrier)).get_span_context()


def same_span(a: SpanContext, b: SpanContext | None) -> bool:
    assert b is not None
    return (a.trace_id, a.span_id) == (b.trace_id, b.span_id)


async def test_a_records_span_has_its_partition_offset_and_leader(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers, client_id="orders-api") as producer:
            telemetry.instrument(producer)
            with tracer.start_as_current_span("handle request") as parent:
                future = await producer.send("orders", b"v", key=b"customer-42")
            metadata: RecordMetadata = await future
            await producer.send_and_wait("orders", b"second", key=b"customer-42")
    first, second = telemetry.finished("send orders")  # send_and_wait: one span, not two
    assert first.kind is SpanKind.PRODUCER
    assert first.parent is not None
    assert first.parent.span_id == parent.get_span_context().span_id
    assert first.status.status_code is StatusCode.UNSET
    host, port = broker_address(cluster, "orders", metadata.partition)
    assert dict(first.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": "orders",
        "messaging.client.id": "orders-api",
        "messaging.kafka.message.key": "customer-42",
        "messaging.destination.partition.id": str(metadata.partition),
        "messaging.kafka.offset": metadata.offset,
        "server.address": host,
        "server.port": port,
        "messaging.kafka.cluster.id": "fake-cluster",
    }
    assert second.attributes is not None
    assert second.attributes["messaging.kafka.offset"] == metadata.offset + 1


async def test_the_span_ends_after_the_acknowledgement(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    delivered: list[tuple[int, int, RecordMetadata | None]] = []

    def on_delivery(metadata: RecordMetadata | None, error: BaseException | None) -> None:
        # The caller's own callback still runs, after the span has ended.
        delivered.append((time.time_ns(), len(telemetry.finished()), metadata))

    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers, linger_ms=0) as producer:
            telemetry.instrument(producer)
            await producer.send_and_wait("orders", b"warm up")  # metadata, connections
            telemetry.spans.clear()
            cluster.delay_responses(PRODUCE, 0.3)
            future = await producer.send("orders", b"v", on_delivery=on_delivery)
            returned = time.time_ns()
            assert telemetry.finished() == []  # send() returned; the record is not acknowledged
            assert not future.done()
            metadata = await future
    [span] = telemetry.finished()
    assert span.end_time is not None
    [(called, spans_then, reported)] = delivered
    assert reported == metadata
    assert spans_then == 1  # ended when the acknowledgement came, before the callback
    assert span.end_time <= called
    # The broker held the response 0.3 s from the request's arrival, after send() returned:
    # the span lasted that long (span times are wall-clock: a little less, if NTP slews it).
    assert span.end_time - returned >= 0.29e9
    assert span.end_time - (span.start_time or 0) >= 0.29e9


async def test_a_wait_cancelled_does_not_end_the_span(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    """On asyncio, cancelling the wait cancels the future itself, and the record is still
    sent: the span must end with the record's own outcome, not the future's."""
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            telemetry.instrument(producer)
            await producer.send_and_wait("orders", b"warm up")
            telemetry.spans.clear()
            cluster.delay_responses(PRODUCE, 0.2)
            future = await producer.send("orders", b"v", partition=2)
            with anyio.move_on_after(0.05):
                await future
            assert telemetry.finished() == []
            await producer.flush()
    [span] = telemetry.finished()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["messaging.kafka.offset"] == cluster.records("orders", 2)[-1].offset


async def test_a_failed_record_and_a_refused_one(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            telemetry.instrument(producer)
            await producer.send_and_wait("orders", b"warm up")
            cluster.fail_next(PRODUCE, TOPIC_AUTHORIZATION_FAILED)
            future = await producer.send("orders", b"v", partition=1)
            with pytest.raises(TopicAuthorizationFailedError):
                await future
            with pytest.raises(SerializationError):
                await producer.send("orders", 12345)  # not bytes: send() refuses it
    _, failed, refused = telemetry.finished()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "TOPIC_AUTHORIZATION_FAILED"
    assert failed.attributes["messaging.destination.partition.id"] == "1"
    assert "messaging.kafka.offset" not in failed.attributes
    assert [event.name for event in failed.events] == ["exception"]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "asyncproducer.errors.SerializationError"
    # Sent and failed: counted; refused by send(): never sent, not counted.
    counts = {
        p.attributes.get("error.type"): p.value
        for p in telemetry.points("messaging.client.sent.messages")
    }
    assert counts == {None: 1, "TOPIC_AUTHORIZATION_FAILED": 1}


async def test_headers_carry_the_span_context_and_the_callers_are_kept(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    headers = [("trace", b"abc"), ("none", None)]
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            telemetry.instrument(producer)
            metadata = await producer.send_and_wait("orders", b"v", headers=headers)
            # A creation context of the caller's own is kept, and linked to.
            own = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
            linked = await producer.send_and_wait("orders", b"w", headers=own)
    assert headers == [("trace", b"abc"), ("none", None)]  # not mutated
    stored = {r.offset: r for r in cluster.records("orders", metadata.partition)}
    record = stored[metadata.offset]
    assert record.headers[:2] == (("trace", b"abc"), ("none", None))
    assert [name for name, _ in record.headers[2:]] == ["traceparent"]
    span, with_own = telemetry.finished()
    assert same_span(span.context, carried_context(record.headers))
    assert same_span(
        span.context, trace.get_current_span(extract_context(record.headers)).get_span_context()
    )
    stored = {r.offset: r for r in cluster.records("orders", linked.partition)}
    assert stored[linked.offset].headers == tuple(own)  # not replaced
    assert with_own.kind is SpanKind.CLIENT  # its context is not the message's
    [link] = with_own.links
    assert same_span(link.context, carried_context(own))


class Upper(ProducerInterceptor):
    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        return ProducerRecord(
            record.topic, (record.value or b"").upper(), record.key, None, None, record.headers
        )


@pytest.mark.parametrize("interceptors", [False, True], ids=["plain", "interceptors"])
async def test_send_batch_one_send_span_and_a_create_span_per_record(
    cluster: FakeCluster, telemetry: Telemetry, interceptors: bool
) -> None:
    records: list[Any] = [
        ("orders", b"a", b"k1"),
        ProducerRecord("orders", b"b", headers=[("trace", b"abc")]),
        ("orders", b"c", None, 2),
        ProducerRecord("orders", 42),  # not bytes: fails alone
    ]
    config: dict[str, Any] = {"interceptors": [Upper()]} if interceptors else {}
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers, **config) as producer:
            telemetry.instrument(producer)
            results = await producer.send_batch(records)
    assert [type(r) for r in results] == [RecordMetadata] * 3 + [SerializationError]
    creates = telemetry.finished("create orders")
    [send] = telemetry.finished("send orders")  # through send() with interceptors: still one
    assert len(telemetry.finished()) == 5
    assert [c.kind for c in creates] == [SpanKind.PRODUCER] * 4
    assert send.kind is SpanKind.CLIENT
    assert send.attributes is not None
    assert send.attributes["messaging.batch.message_count"] == 4
    assert send.attributes["error.type"] == "asyncproducer.errors.SerializationError"
    assert send.status.status_code is StatusCode.ERROR
    assert [link.context.span_id for link in send.links] == [c.context.span_id for c in creates]
    for create, link, result in zip(creates, send.links, results, strict=False):
        assert link.attributes is not None
        if isinstance(result, RecordMetadata):
            assert link.attributes["messaging.kafka.offset"] == result.offset
            stored = {r.offset: r for r in cluster.records("orders", result.partition)}
            assert same_span(create.context, carried_context(stored[result.offset].headers))
    assert results[1].offset >= 0  # type: ignore[union-attr]
    stored = {r.offset: r for r in cluster.records("orders", results[1].partition)}  # type: ignore[union-attr]
    assert stored[results[1].offset].headers[0] == ("trace", b"abc")  # type: ignore[union-attr]
    assert records[1].headers == [("trace", b"abc")]
    assert sum(p.value for p in telemetry.points("messaging.client.sent.messages")) == 3


async def test_send_batch_without_create_spans(cluster: FakeCluster, telemetry: Telemetry) -> None:
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            telemetry.instrument(producer, batch_create_spans=False)
            results = await producer.send_batch(
                [("orders", b"a", None, 0), ("orders", b"b", None, 0)]
            )
    [send] = telemetry.finished()
    assert send.kind is SpanKind.PRODUCER
    assert send.attributes is not None
    assert send.attributes["messaging.batch.message_count"] == 2
    assert send.attributes["messaging.destination.partition.id"] == "0"
    assert "error.type" not in send.attributes
    for result in results:
        assert isinstance(result, RecordMetadata)
        stored = {r.offset: r for r in cluster.records("orders", 0)}
        assert same_span(send.context, carried_context(stored[result.offset].headers))


async def test_metrics_after_a_known_workload(cluster: FakeCluster, telemetry: Telemetry) -> None:
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            telemetry.instrument(producer)
            for _ in range(5):
                await producer.send_and_wait("orders", b"v", partition=0)
            cluster.fail_next(PRODUCE, TOPIC_AUTHORIZATION_FAILED)
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait("orders", b"v", partition=0)
            await producer.send_batch([("orders", b"a", None, 0)] * 3)
    host, port = broker_address(cluster, "orders", 0)
    sent = {
        p.attributes.get("error.type"): (p.value, dict(p.attributes))
        for p in telemetry.points("messaging.client.sent.messages")
    }
    assert isinstance(
        next(iter(telemetry.points("messaging.client.sent.messages"))), NumberDataPoint
    )
    common = {
        "messaging.system": "kafka",
        "messaging.operation.name": "send",
        "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "0",
        "server.address": host,
        "server.port": port,
    }
    assert sent == {
        None: (8, common),
        "TOPIC_AUTHORIZATION_FAILED": (1, {**common, "error.type": "TOPIC_AUTHORIZATION_FAILED"}),
    }
    durations: list[HistogramDataPoint] = telemetry.points("messaging.client.operation.duration")
    by_error = {(p.attributes or {}).get("error.type"): p.count for p in durations}
    # 5 send()s and one send_batch() succeeded, one send() failed.
    assert by_error == {None: 6, "TOPIC_AUTHORIZATION_FAILED": 1}
    for point in durations:
        assert dict(point.attributes or {}) == {
            **common,
            "messaging.operation.type": "send",
            **({"error.type": "TOPIC_AUTHORIZATION_FAILED"} if point.count == 1 else {}),
        }
    assert list(durations[0].explicit_bounds)[:3] == [0.005, 0.01, 0.025]
    spans = {s.context.span_id: s for s in telemetry.finished("send orders")}
    span_total = sum((s.end_time or 0) - (s.start_time or 0) for s in spans.values()) / 1e9
    assert sum(p.sum for p in durations) == pytest.approx(span_total)


async def test_uninstrument_restores_the_plain_methods(
    cluster: FakeCluster, telemetry: Telemetry
) -> None:
    with anyio.fail_after(10):
        async with Producer(cluster.bootstrap_servers) as producer:
            before = {
                name: vars(producer).get(name) for name in ("send", "send_and_wait", "send_batch")
            }
            plain = (producer.send, producer.send_and_wait, producer.send_batch)
            telemetry.instrument(producer)
            assert producer.send != plain[0]
            with pytest.raises(RuntimeError, match="instrumented already"):
                telemetry.instrument(producer)
            future = await producer.send("orders", b"sent while instrumented")
            uninstrument_producer(producer)
            uninstrument_producer(producer)  # a second time: nothing to do
            after = {
                name: vars(producer).get(name) for name in ("send", "send_and_wait", "send_batch")
            }
            assert after == before
            assert all(a is b for a, b in zip(before.values(), after.values(), strict=True))
            assert (producer.send, producer.send_and_wait, producer.send_batch) == plain
            await producer.send_and_wait("orders", b"plain")
            await producer.send_batch([("orders", b"plain")])
            await future
            stored = [r for p in range(3) for r in cluster.records("orders", p)]
    # Only the record sent while instrumented has a span (ended on its delivery) or headers.
    assert len(telemetry.finished()) == 1
    assert sorted(len(r.headers) for r in stored) == [0, 0, 1]


async def test_a_mock_producer_can_be_instrumented(telemetry: Telemetry) -> None:
    """Applications test their tracing with MockProducer: the same spans, without a
    leader broker (server.address is left out)."""
    async with MockProducer(key_serializer="str") as producer:
        telemetry.instrument(producer)
        metadata = await producer.send_and_wait("orders", b"v", key="customer-42")
        await producer.send_batch([("orders", b"a"), ("orders", b"b")])
        [sent, *_] = producer.history()
    send, create_a, create_b, batch = telemetry.finished()
    assert (send.name, create_a.name, create_b.name, batch.name) == (
        "send orders",
        "create orders",
        "create orders",
        "send orders",
    )
    assert send.attributes is not None
    assert send.attributes["messaging.kafka.offset"] == metadata.offset
    assert send.attributes["messaging.kafka.message.key"] == "customer-42"
    assert "server.address" not in send.attributes
    assert same_span(send.context, carried_context(sent.headers))


async def test_the_key_attribute_is_the_keys_text_or_left_out(telemetry: Telemetry) -> None:
    async with MockProducer() as producer:
        telemetry.instrument(producer)
        for key in (b"k-1", bytearray(b"k-2"), b"\xff\xfe", None):  # not UTF-8: no text form
            await producer.send_and_wait("orders", None, key=key)
    keys = [(s.attributes or {}).get("messaging.kafka.message.key") for s in telemetry.finished()]
    assert keys == ["k-1", "k-2", None, None]
    tombstones = [
        (s.attributes or {}).get("messaging.kafka.message.tombstone") for s in telemetry.finished()
    ]
    assert tombstones == [True] * 4  # a None value
