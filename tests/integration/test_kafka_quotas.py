"""Client quotas on Apache Kafka (KIP-13, KIP-219): a producer over its producer_byte_rate
is throttled, reports it, waits, and still delivers everything.

Quotas are an Apache Kafka feature: Tansu has no AlterClientQuotas, so its runs skip, and
so do runs against a broker of the user's (KAFKA_BOOTSTRAP_SERVERS: this test would
change its quotas). The quota is set and removed with Kafka's Admin API requests
(AlterClientQuotas, DescribeClientQuotas) sent directly: neither confluent-kafka nor
kafka-python has them.
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import anyio
import pytest
from kio.schema.alter_client_quotas.v1 import request as alter
from kio.schema.alter_client_quotas.v1.response import AlterClientQuotasResponse
from kio.schema.describe_client_quotas.v1 import request as describe
from kio.schema.describe_client_quotas.v1.response import DescribeClientQuotasResponse
from kio.serial import entity_reader
from kio.static.primitive import f64, i8
from kio.static.protocol import RequestPayload

from asyncproducer import Producer
from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer.protocol.framing import FrameDecoder, encode_request
from tests.integration.brokers import KAFKA
from tests.integration.independent import consume, create_topic

pytestmark = pytest.mark.anyio

QUOTA = 32 * 1024  # producer_byte_rate, bytes per second
WINDOWS = 11  # Kafka's quota.window.num default, of quota.window.size.seconds=1
FIRST_BURST = QUOTA * (WINDOWS - 1)
"""What a new client may send at once: Kafka measures its rate as if the 10 windows before
its first were empty."""
RECORD = 1024
RECORDS = (FIRST_BURST + QUOTA // 2) // RECORD
"""Half a second's quota beyond the first burst: enough to be throttled, and (as Kafka
keeps the measured span under 11 s until 10 windows have passed) little enough to get
through before the first burst's window expires."""
PRODUCER_BYTE_RATE = "producer_byte_rate"


def _call(bootstrap_servers: str, payload: RequestPayload, response_cls: type[Any]) -> Any:
    address = parse_bootstrap_servers(bootstrap_servers)[0]
    decoder = FrameDecoder()
    with socket.create_connection((address.host, address.port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(encode_request(payload, correlation_id=1, client_id="quota-admin"))
        frames: list[bytes] = []
        while not frames:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError(f"{address} closed the connection")
            frames = decoder.feed(data)
    view = memoryview(frames[0])
    _, size = entity_reader(response_cls.__header_schema__)(view, 0)
    return entity_reader(response_cls)(view, size)[0]


def alter_quota(bootstrap_servers: str, client_id: str, rate: float | None) -> None:
    """Set (or, with None, remove) ``client_id``'s producer_byte_rate."""
    request = alter.AlterClientQuotasRequest(
        entries=(
            alter.EntryData(
                entity=(alter.EntityData(entity_type="client-id", entity_name=client_id),),
                ops=(
                    alter.OpData(key=PRODUCER_BYTE_RATE, value=f64(rate or 0.0), remove=not rate),
                ),
            ),
        ),
        validate_only=False,
    )
    response = _call(bootstrap_servers, request, AlterClientQuotasResponse)
    [entry] = response.entries
    assert int(entry.error_code) == 0, entry.error_message


def quota_of(bootstrap_servers: str, client_id: str) -> float | None:
    """``client_id``'s producer_byte_rate as the broker describes it."""
    request = describe.DescribeClientQuotasRequest(
        components=(
            describe.ComponentData(entity_type="client-id", match_type=i8(0), match=client_id),
        ),
        strict=True,
    )
    response = _call(bootstrap_servers, request, DescribeClientQuotasResponse)
    assert int(response.error_code) == 0, response.error_message
    for entry in response.entries or ():
        for value in entry.values:
            if value.key == PRODUCER_BYTE_RATE:
                return float(value.value)
    return None


def set_quota_and_wait(bootstrap_servers: str, client_id: str, rate: float | None) -> None:
    alter_quota(bootstrap_servers, client_id, rate)
    deadline = time.monotonic() + 10
    while quota_of(bootstrap_servers, client_id) != rate:  # the controller commits it first
        assert time.monotonic() < deadline, f"the broker did not apply the quota {rate}"
        time.sleep(0.05)


async def test_a_producer_over_its_kafka_quota_is_throttled_and_delivers_everything(
    kafka_bootstrap_servers: str, broker_kind: str, topic_name: str
) -> None:
    if broker_kind != KAFKA:
        pytest.skip(
            "client quotas are an Apache Kafka feature (Tansu has no AlterClientQuotas), "
            "and an external broker's quotas are not this test's to change"
        )
    servers = kafka_bootstrap_servers
    client_id = f"quota-{uuid.uuid4().hex[:12]}"
    await anyio.to_thread.run_sync(create_topic, servers, topic_name, 1)
    await anyio.to_thread.run_sync(set_quota_and_wait, servers, client_id, float(QUOTA))
    values = [b"%06d" % i + b"q" * (RECORD - 6) for i in range(RECORDS)]
    try:
        with anyio.fail_after(20):
            async with Producer(servers, client_id=client_id, linger_ms=5) as producer:
                started = anyio.current_time()
                for value in values:
                    await producer.send(topic_name, value)
                await producer.flush()
                elapsed = anyio.current_time() - started
                metrics = producer.metrics()
    finally:
        await anyio.to_thread.run_sync(set_quota_and_wait, servers, client_id, None)

    # Kafka told the producer to wait, and the producer's metrics say so.
    assert metrics["produce-throttle-time-max"] > 0
    assert metrics["produce-throttle-time-avg"] > 0
    # Every record arrived, in order (read back by librdkafka).
    consumed = await anyio.to_thread.run_sync(consume, servers, topic_name, [0], RECORDS)
    assert [r.value for r in consumed] == values
    # What went beyond the first burst went at about the quota (unthrottled, the whole
    # produce takes a few tens of milliseconds here).
    beyond = RECORDS * RECORD - FIRST_BURST
    assert beyond / elapsed <= 2 * QUOTA, f"{beyond} bytes over the first burst in {elapsed:.2f} s"
    assert elapsed < 5
