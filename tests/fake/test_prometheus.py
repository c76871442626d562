"""The Prometheus collector, scraped from a registry of its own after a known workload."""

from __future__ import annotations

import math
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from asyncproducer import Producer
from asyncproducer.integrations.prometheus import ProducerCollector, prometheus_name
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the text exposition, as a Prometheus server reads it."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_scrape_shows_the_producers_metrics_in_base_units() -> None:
    registry = CollectorRegistry()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("orders", 1)
        one = Producer(cluster.bootstrap_servers, client_id="one", linger_ms=60_000)
        two = Producer(cluster.bootstrap_servers, client_id="two")
        collector = ProducerCollector(one, registry=registry)
        collector.add(two)
        async with one, two:
            for _ in range(3):
                for i in range(100):
                    await one.send("orders", b"v" * 50, key=b"customer-%d" % i)
                await one.flush()
            await two.send_and_wait("orders", b"w")
            java = one.metrics()
            samples = scrape(registry)
    one_ = (("client_id", "one"),)
    assert samples["kafka_producer_record_send_total", one_] == 300
    assert samples["kafka_producer_record_send_total", (("client_id", "two"),)] == 1
    topic = (("client_id", "one"), ("topic", "orders"))
    assert samples["kafka_producer_topic_record_send_total", topic] == 300
    assert (
        samples["kafka_producer_topic_bytes_total", topic]
        == one.topic_metrics()["orders"]["byte-total"]
    )
    # Base units: milliseconds become seconds, nanoseconds too; sizes say bytes.
    assert samples["kafka_producer_request_latency_max_seconds", one_] == pytest.approx(
        java["request-latency-max"] / 1000
    )
    assert samples["kafka_producer_batch_size_avg_bytes", one_] == java["batch-size-avg"]
    assert samples["kafka_producer_buffer_total_bytes", one_] == one.config.buffer_memory
    assert ("kafka_producer_bufferpool_wait_time_seconds_total", one_) in samples
    # Labels: client id and topic only; never a key.
    label_names = {name for _, labels in samples for name, _ in labels}
    assert label_names == {"client_id", "topic"}
    assert not any("customer" in value for _, labels in samples for _, value in labels)
    for name, _ in samples:
        assert NAME.fullmatch(name)
    collector.unregister()
    assert scrape(registry) == {}


async def test_nothing_is_registered_unless_asked() -> None:
    registry = CollectorRegistry()
    async with FakeCluster(brokers=1) as cluster:
        producer = Producer(cluster.bootstrap_servers)
        collector = ProducerCollector(producer)
        assert scrape(registry) == {}
        collector.register(registry)
        async with producer:
            assert scrape(registry)


@pytest.mark.parametrize(
    ("group", "name", "expected"),
    [
        ("producer-metrics", "record-send-total", ("kafka_producer_record_send", 1.0)),
        (
            "producer-metrics",
            "record-queue-time-avg",
            ("kafka_producer_record_queue_time_avg_seconds", 1e-3),
        ),
        (
            "producer-metrics",
            "bufferpool-wait-time-ns-total",
            ("kafka_producer_bufferpool_wait_time_seconds", 1e-9),
        ),
        ("producer-metrics", "bufferpool-wait-time-total", None),
        ("producer-metrics", "outgoing-byte-rate", ("kafka_producer_outgoing_bytes_rate", 1.0)),
        ("producer-metrics", "metadata-age", ("kafka_producer_metadata_age_seconds", 1.0)),
        ("producer-topic-metrics", "byte-total", ("kafka_producer_topic_bytes", 1.0)),
        ("producer-node-metrics", "request-rate", None),
    ],
)
def test_names(group: str, name: str, expected: tuple[str, float] | None) -> None:
    assert prometheus_name(group, name) == expected


def test_no_two_java_names_share_a_prometheus_name() -> None:
    from asyncproducer._producer_metrics import ProducerMetrics

    metrics = ProducerMetrics("c")
    metrics.topic("t")
    names = [prometheus_name(m.group, m.name) for m in metrics.registry]
    exported = [n for n in names if n is not None]
    assert len(set(exported)) == len(exported)
    assert not any(math.isnan(scale) for _, scale in exported)
