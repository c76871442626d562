"""The same scenario against a real broker (Tansu, Apache Kafka) and the FakeCluster: same
offsets, same records.

Our Producer, then confluent-kafka's (an independent client; its ``murmur2_random``
partitioner is Java's), write keyed records; what each target stores — read back by
confluent-kafka's consumer from both — and the offsets each client was told must agree.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from confluent_kafka import Producer as ConfluentProducer

from asyncproducer import Producer
from asyncproducer.testing.fake import FakeCluster
from tests.integration.independent import ConsumedRecord, consume, create_topic

pytestmark = pytest.mark.anyio

PARTITIONS = 3
BASE_TS = 1_700_000_000_000


async def run_scenario(
    bootstrap_servers: str, topic: str
) -> tuple[list[Any], list[ConsumedRecord]]:
    told: list[Any] = []
    async with Producer(bootstrap_servers, linger_ms=0) as producer:
        for i in range(60):
            metadata = await producer.send_and_wait(
                topic, f"ours-{i}".encode(), key=f"k{i % 7}".encode(),
                headers=[("n", str(i).encode())], timestamp_ms=BASE_TS + i,
            )  # fmt: skip
            told.append(("ours", i, metadata.partition, metadata.offset))

    def confluent_side() -> None:
        client = ConfluentProducer(
            {
                "bootstrap.servers": bootstrap_servers,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 0,
            }
        )
        for i in range(60):

            def report(err: Any, msg: Any, i: int = i) -> None:
                assert err is None, err
                told.append(("confluent", i, msg.partition(), msg.offset()))

            client.produce(
                topic, f"theirs-{i}".encode(), key=f"k{i % 7}".encode(),
                headers=[("n", str(i).encode())], timestamp=BASE_TS + i, on_delivery=report,
            )  # fmt: skip
            client.flush(10)  # one at a time: the offsets are then deterministic

    await anyio.to_thread.run_sync(confluent_side)
    stored = await anyio.to_thread.run_sync(
        consume, bootstrap_servers, topic, list(range(PARTITIONS)), 120
    )
    return sorted(told), stored


async def test_fake_and_real_broker_agree(kafka_bootstrap_servers: str, topic_name: str) -> None:
    with anyio.fail_after(60):
        await anyio.to_thread.run_sync(
            create_topic, kafka_bootstrap_servers, topic_name, PARTITIONS
        )
        on_real = await run_scenario(kafka_bootstrap_servers, topic_name)
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic(topic_name, PARTITIONS)
            on_fake = await run_scenario(cluster.bootstrap_servers, topic_name)
            fake_records = {
                p: [(r.offset, r.key, r.value) for r in cluster.records(topic_name, p)]
                for p in range(PARTITIONS)
            }
    assert on_fake[0] == on_real[0]  # every client was told the same partition and offset
    assert on_fake[1] == on_real[1]  # and the same records are stored there
    assert len(on_fake[1]) == 120
    consumed = {
        p: [(r.offset, r.key, r.value) for r in on_fake[1] if r.partition == p]
        for p in range(PARTITIONS)
    }
    assert consumed == fake_records  # the fake's inspection API shows what was consumed
