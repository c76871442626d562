"""Against a real broker, on asyncio and trio: versions, metadata, Produce read back by
confluent-kafka (librdkafka), compared field by field."""

from __future__ import annotations

import anyio
import pytest

from asyncproducer._cluster import BrokerAddress, parse_bootstrap_servers
from asyncproducer._connection import ConnectionSettings
from asyncproducer._metadata import MetadataManager
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import UnknownTopicOrPartitionError
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.messages import produce_request
from asyncproducer.protocol.records import RecordBatchBuilder
from asyncproducer.protocol.versions import ApiKey
from tests.integration.independent import ConsumedRecord, consume, create_topic
from tests.network.servers import closed_port

pytestmark = pytest.mark.anyio

SETTINGS = ConnectionSettings(client_id="asyncproducer-tests", request_timeout_ms=10_000)


async def test_negotiates_versions(kafka_bootstrap_servers: str) -> None:
    address = parse_bootstrap_servers(kafka_bootstrap_servers)[0]
    async with ConnectionPool(SETTINGS) as pool:
        with anyio.fail_after(10):
            connection = await pool.get(address)
        versions = connection.versions
        assert versions.version_for(ApiKey.PRODUCE) >= 3
        assert versions.version_for(ApiKey.METADATA) >= 4
        for api in (ApiKey.PRODUCE, ApiKey.METADATA, ApiKey.API_VERSIONS):
            low, high = versions.broker_ranges[int(api)]
            assert low <= versions.version_for(api) <= high


async def test_metadata_of_a_new_six_partition_topic(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 6)
    # A dead address first: bootstrap addresses are tried in turn.
    bootstrap = [f"127.0.0.1:{closed_port()}", *kafka_bootstrap_servers.split(",")]
    async with ConnectionPool(SETTINGS) as pool:
        manager = MetadataManager(pool, parse_bootstrap_servers(bootstrap))
        with anyio.fail_after(20):
            topic = await manager.wait_for_topic(topic_name, max_block_ms=15_000)
        assert [p.partition for p in topic.partitions] == list(range(6))
        snapshot = manager.snapshot
        for partition in topic.partitions:
            leader = snapshot.leader_for(topic_name, partition.partition)
            assert leader is not None
            assert leader.node_id == partition.leader
            assert partition.leader in partition.replicas
            assert partition.leader in partition.isr
        assert snapshot.brokers
        assert snapshot.cluster_id


async def test_unknown_topic_fails_after_max_block_ms(kafka_bootstrap_servers: str) -> None:
    async with ConnectionPool(SETTINGS) as pool:
        manager = MetadataManager(
            pool,
            parse_bootstrap_servers(kafka_bootstrap_servers),
            allow_auto_topic_creation=False,
            retry_backoff_ms=50,
        )
        started = anyio.current_time()
        with (
            anyio.fail_after(10),
            pytest.raises(UnknownTopicOrPartitionError, match="'no-such-topic'"),
        ):
            await manager.wait_for_topic("no-such-topic", max_block_ms=500)
        assert 0.45 <= anyio.current_time() - started < 3


async def test_metadata_refreshes_by_age_and_on_demand(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 2)
    async with ConnectionPool(SETTINGS) as pool, anyio.create_task_group() as tg:
        manager = MetadataManager(
            pool, parse_bootstrap_servers(kafka_bootstrap_servers), metadata_max_age_ms=300
        )
        await manager.wait_for_topic(topic_name, max_block_ms=10_000)
        tg.start_soon(manager.run)
        with anyio.fail_after(5):
            first = manager.snapshot.fetched_at
            while manager.snapshot.fetched_at == first:  # refreshed by age
                await anyio.sleep(0.02)
            assert manager.snapshot.fetched_at - first >= 0.25
            aged = manager.snapshot.fetched_at
            manager.request_update()
            while manager.snapshot.fetched_at == aged:  # refreshed on demand, well before 300 ms
                await anyio.sleep(0.005)
            assert manager.snapshot.fetched_at - aged < 0.25
        assert manager.snapshot.topic(topic_name) is not None
        tg.cancel_scope.cancel()


def _records_for(
    partition: int, base_timestamp: int
) -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    """Records of every shape: null key, null value, empty bytes, headers with null values."""
    return [
        (base_timestamp, f"key-{partition}".encode(), b"value-" * (partition + 1), [("h", b"1")]),
        (base_timestamp + 5, None, b"no key", []),
        (base_timestamp - 3, b"tombstone", None, [("a", None), ("\u00e9", b"")]),
        (base_timestamp + 1000, b"", b"x" * 2000, [("trace", b"abc"), ("trace", b"def")]),
    ]


@pytest.mark.parametrize("codec", list(CompressionType), ids=lambda c: c.name.lower())
async def test_produce_to_three_partitions_read_back_by_confluent(
    kafka_bootstrap_servers: str, topic_name: str, codec: CompressionType
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 6)
    base_timestamp = 1_700_000_000_000
    partitions = [0, 2, 5]
    expected_by_partition = {p: _records_for(p, base_timestamp + p) for p in partitions}
    batches: dict[int, bytes] = {}
    for partition, records in expected_by_partition.items():
        builder = RecordBatchBuilder(batch_size=16384, compression=codec)
        for timestamp, key, value, headers in records:
            assert builder.try_append(timestamp, key, value, headers) is not None
        batches[partition] = builder.build()

    async with ConnectionPool(SETTINGS) as pool:
        manager = MetadataManager(pool, parse_bootstrap_servers(kafka_bootstrap_servers))
        with anyio.fail_after(30):
            topic = await manager.wait_for_topic(topic_name, max_block_ms=15_000)
            leaders = {topic.partitions[p].leader for p in partitions}
            assert len(leaders) == 1, "one Produce request needs one leader for all 3 partitions"
            broker = manager.snapshot.brokers[leaders.pop()]
            connection = await pool.get(BrokerAddress(broker.host, broker.port, broker.node_id))
            version = connection.versions.version_for(ApiKey.PRODUCE)
            response = await connection.send(
                produce_request(
                    version, acks=-1, timeout_ms=10_000, topic_data={topic_name: batches}
                )
            )
    assert response is not None
    (topic_response,) = response.responses  # type: ignore[attr-defined]
    base_offsets = {}
    for partition_response in topic_response.partition_responses:
        assert partition_response.error_code == 0, partition_response
        base_offsets[int(partition_response.index)] = int(partition_response.base_offset)
    assert sorted(base_offsets) == partitions

    expected = [
        ConsumedRecord(
            partition=partition,
            offset=base_offsets[partition] + index,
            key=key,
            value=value,
            headers=tuple(headers),
            timestamp=timestamp,
            timestamp_type=1,  # CreateTime
        )
        for partition, records in expected_by_partition.items()
        for index, (timestamp, key, value, headers) in enumerate(records)
    ]
    consumed = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, partitions, len(expected)
    )
    assert consumed == sorted(expected, key=lambda r: (r.partition, r.offset))


async def test_acks_zero_gets_no_response_and_is_still_written(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 1)
    builder = RecordBatchBuilder(batch_size=16384)
    builder.try_append(1_700_000_000_000, b"k", b"fire-and-forget", [])
    async with ConnectionPool(SETTINGS) as pool:
        manager = MetadataManager(pool, parse_bootstrap_servers(kafka_bootstrap_servers))
        with anyio.fail_after(30):
            topic = await manager.wait_for_topic(topic_name, max_block_ms=15_000)
            leader = manager.snapshot.brokers[topic.partitions[0].leader]
            connection = await pool.get(leader.address)
            version = connection.versions.version_for(ApiKey.PRODUCE)
            response = await connection.send(
                produce_request(
                    version, acks=0, timeout_ms=1000, topic_data={topic_name: {0: builder.build()}}
                ),
                expect_response=False,
            )
            assert response is None
            assert connection.pending_count == 0
    (record,) = await anyio.to_thread.run_sync(consume, kafka_bootstrap_servers, topic_name, [0], 1)
    assert (record.offset, record.key, record.value) == (0, b"k", b"fire-and-forget")
