"""asyncproducer.integrations.opentelemetry on the real brokers: confluent-kafka (a client
this project did not write) reads the records back, and the trace context is extracted
from the headers it returns."""

from __future__ import annotations

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from asyncproducer import Producer, RecordMetadata
from asyncproducer.integrations.opentelemetry import instrument_producer
from tests.integration.independent import consume, create_topic

pytestmark = pytest.mark.anyio

W3C = TraceContextTextMapPropagator()


def carried(headers: tuple[tuple[str, bytes | None], ...]) -> tuple[int, int]:
    """The trace and span id a consumer extracts from a record's headers."""
    carrier = {name: value.decode() for name, value in headers if value is not None}
    context: SpanContext = trace.get_current_span(W3C.extract(carrier)).get_span_context()
    assert context.is_valid
    return context.trace_id, context.span_id


async def test_a_consumer_extracts_each_records_creation_context(
    kafka_bootstrap_servers: str, broker_kind: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 1)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with anyio.fail_after(30):
        async with Producer(kafka_bootstrap_servers, linger_ms=0) as producer:
            instrument_producer(
                producer,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                propagator=W3C,
            )
            metadata = await producer.send_and_wait(
                topic_name, b"one", key=b"k", headers=[("app", b"x")]
            )
            results = await producer.send_batch([(topic_name, b"two"), (topic_name, b"three")])
    tracer_provider.shutdown()
    meter_provider.shutdown()
    assert all(isinstance(r, RecordMetadata) for r in results)
    records = await anyio.to_thread.run_sync(consume, kafka_bootstrap_servers, topic_name, [0], 3)

    send, create_two, create_three, batch = spans.get_finished_spans()
    assert (send.name, batch.name) == (f"send {topic_name}", f"send {topic_name}")
    by_value = {record.value: record for record in records}
    one = by_value[b"one"]
    assert one.offset == metadata.offset
    assert one.headers[0] == ("app", b"x")
    expected = {b"one": send, b"two": create_two, b"three": create_three}
    for value, span in expected.items():
        assert carried(by_value[value].headers) == (span.context.trace_id, span.context.span_id)
    assert send.attributes is not None
    assert send.attributes["messaging.kafka.offset"] == metadata.offset
    assert send.attributes["messaging.destination.partition.id"] == "0"
    host, port = send.attributes["server.address"], send.attributes["server.port"]
    assert isinstance(host, str)
    assert isinstance(port, int)
    address = f"{host}:{port}"
    if broker_kind != "external":  # one local broker: its advertised address is ours
        assert address in kafka_bootstrap_servers.split(",")
