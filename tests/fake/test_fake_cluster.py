"""FakeCluster's core: the real Producer, an independent client, and raw protocol checks."""

from __future__ import annotations

import struct
import warnings
from typing import Any

import anyio
import pytest
from confluent_kafka import Producer as ConfluentProducer

from asyncproducer import Producer
from asyncproducer.errors import KafkaError
from asyncproducer.protocol.framing import FrameDecoder, encode_request
from asyncproducer.protocol.messages import (
    api_versions_request,
    create_topics_request,
    metadata_request,
    produce_request,
    response_decoder,
)
from asyncproducer.protocol.records import RecordBatchBuilder
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio


async def test_producer_writes_to_all_three_brokers_exactly_once() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("orders", 6, leaders=[0, 1, 2, 0, 1, 2])
            async with Producer(cluster.bootstrap_servers, linger_ms=2) as producer:
                futures = [
                    await producer.send(
                        "orders",
                        b"value-%d" % i,
                        key=b"key-%d" % i,
                        partition=i % 6,
                        timestamp_ms=1_700_000_000_000 + i,
                        headers=[("n", b"%d" % i), ("empty", None)],
                    )
                    for i in range(60)
                ]
                sent = [await future for future in futures]
            for partition in range(6):
                stored = cluster.records("orders", partition)
                expected = [i for i in range(60) if i % 6 == partition]
                assert [r.offset for r in stored] == list(range(10))
                assert [r.key for r in stored] == [b"key-%d" % i for i in expected]
                assert [r.value for r in stored] == [b"value-%d" % i for i in expected]
                assert [r.timestamp for r in stored] == [1_700_000_000_000 + i for i in expected]
                assert [r.headers for r in stored] == [
                    (("n", b"%d" % i), ("empty", None)) for i in expected
                ]
                # idempotent by default: one producer id, sequences from 0
                assert {r.producer_id for r in stored} == {stored[0].producer_id}
                assert [r.sequence for r in stored] == list(range(10))
            for i, metadata in enumerate(sent):
                assert (metadata.partition, metadata.offset) == (i % 6, i // 6)
            for broker in cluster.broker_ids:
                assert cluster.request_count(ApiKey.PRODUCE, broker=broker) > 0


@pytest.mark.parametrize("idempotent", [False, True])
async def test_independent_client_gets_the_offsets_the_fake_stored(idempotent: bool) -> None:
    def produce(bootstrap_servers: str) -> list[tuple[Any, int, int, bytes, bytes]]:
        producer = ConfluentProducer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": idempotent,
                "linger.ms": 5,
                "message.timeout.ms": 10_000,
            }
        )
        reports: list[tuple[Any, int, int, bytes, bytes]] = []
        for i in range(30):
            producer.produce(
                "t",
                value=b"v%d" % i,
                key=b"k%d" % i,
                partition=i % 3,
                headers=[("h", b"%d" % i)],
                timestamp=1_700_000_000_000 + i,
                on_delivery=lambda err, msg: reports.append(
                    (err, msg.partition(), msg.offset(), msg.key(), msg.value())
                ),
            )
        assert producer.flush(15) == 0
        return reports

    with anyio.fail_after(30):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 3)
            reports = await anyio.to_thread.run_sync(produce, cluster.bootstrap_servers)
    assert len(reports) == 30
    assert all(err is None for err, *_ in reports)
    for _err, partition, offset, key, value in reports:
        stored = cluster.records("t", partition)[offset]
        assert (stored.key, stored.value) == (key, value)
        i = int(key[1:])
        assert stored.headers == (("h", b"%d" % i),)
        assert stored.timestamp == 1_700_000_000_000 + i
        assert (stored.producer_id >= 0) is idempotent
    assert sum(len(cluster.records("t", p)) for p in range(3)) == 30


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_stored_batches_decode_the_same_with_kafka_python(compression: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.record.default_records import DefaultRecordBatch
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=20, compression_type=compression
            ) as producer:
                futures = [
                    await producer.send("t", b"v%d" % i, key=b"k%d" % i, headers=[("h", b"x")])
                    for i in range(20)
                ]
                for future in futures:
                    await future
    stored = cluster.records("t", 0)
    independent = []
    for batch in cluster.batches("t", 0):
        decoded = DefaultRecordBatch(batch.raw)
        assert decoded.validate_crc()
        assert decoded.base_offset == batch.base_offset
        assert decoded.producer_id == stored[0].producer_id
        for record in decoded:
            independent.append(
                (record.offset, record.key, record.value, tuple(record.headers), record.timestamp)
            )
    assert independent == [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in stored]


async def test_metadata_auto_creates_topics_with_default_partitions() -> None:
    with anyio.fail_after(10):
        async with (
            FakeCluster(default_partitions=4) as cluster,
            Producer(cluster.bootstrap_servers) as producer,
        ):
            assert [p.partition for p in await producer.partitions_for("fresh")] == [0, 1, 2, 3]
            assert {cluster.leader_of("fresh", p) for p in range(4)} == {0, 1, 2}


async def test_without_auto_create_unknown_topics_are_unknown() -> None:
    with anyio.fail_after(10):
        async with (
            FakeCluster(auto_create_topics=False) as cluster,
            Producer(cluster.bootstrap_servers, max_block_ms=500) as producer,
        ):
            with pytest.raises(KafkaError):
                await producer.send_and_wait("missing", b"v")
            assert "missing" not in cluster._state.topics


# ----------------------------------------------------------------- raw protocol checks


class RawClient:
    """One connection speaking requests built by the protocol layer (no producer logic)."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.correlation_id = 0

    async def send(self, payload: Any) -> None:
        self.correlation_id += 1
        await self.stream.send(
            encode_request(payload, correlation_id=self.correlation_id, client_id="raw")
        )

    async def call(self, payload: Any, api: ApiKey, version: int) -> Any:
        await self.send(payload)
        return response_decoder(api, version)(memoryview(await self.frame()))

    async def frame(self) -> bytes:
        while True:
            frames = self.decoder.feed(await self.stream.receive())
            if frames:
                assert len(frames) == 1
                return frames[0]


def batch(count: int = 1, *, producer_id: int = -1, epoch: int = -1, sequence: int = -1) -> bytes:
    builder = RecordBatchBuilder(batch_size=16384)
    for i in range(count):
        assert builder.try_append(1_700_000_000_000, b"k", b"v%d" % i) is not None
    return builder.build(producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


async def produce(client: RawClient, records: bytes, partition: int = 0, topic: str = "t") -> Any:
    request = produce_request(
        11, acks=-1, timeout_ms=1000, topic_data={topic: {partition: records}}
    )
    response = await client.call(request, ApiKey.PRODUCE, 11)
    result = response.responses[0].partition_responses[0]
    return int(result.error_code), int(result.base_offset)


async def test_idempotence_rules_and_validation_over_the_wire() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("t", 2, leaders=[0, 1])
            port = int(cluster.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = RawClient(stream)
                pid = 7
                assert await produce(client, batch(3, producer_id=pid, epoch=0, sequence=0)) == (
                    0,
                    0,
                )
                assert await produce(client, batch(2, producer_id=pid, epoch=0, sequence=3)) == (
                    0,
                    3,
                )
                # the same batch again: DUPLICATE with the original offset, nothing stored
                assert await produce(client, batch(3, producer_id=pid, epoch=0, sequence=0)) == (
                    46,
                    0,
                )
                assert len(cluster.records("t", 0)) == 5
                # a gap
                assert (await produce(client, batch(1, producer_id=pid, epoch=0, sequence=9)))[
                    0
                ] == 45
                # an unknown producer id not starting at 0
                assert (await produce(client, batch(1, producer_id=8, epoch=0, sequence=4)))[
                    0
                ] == 59
                # a new epoch starts at 0; then the old epoch is stale
                assert await produce(client, batch(1, producer_id=pid, epoch=1, sequence=0)) == (
                    0,
                    5,
                )
                assert (await produce(client, batch(1, producer_id=pid, epoch=0, sequence=5)))[
                    0
                ] == 47
                # corruption: flip a record byte, the CRC no longer matches
                damaged = bytearray(batch(1))
                damaged[-1] ^= 0xFF
                assert (await produce(client, bytes(damaged)))[0] == 2
                # not the leader; unknown topic; unknown partition
                assert (await produce(client, batch(1), partition=1))[0] == 6
                assert (await produce(client, batch(1), topic="nope"))[0] == 3
                assert (await produce(client, batch(1), partition=5))[0] == 3
                # acks=0: stored, no response (the next request's answer comes first)
                await client.send(
                    produce_request(11, acks=0, timeout_ms=1000, topic_data={"t": {0: batch(1)}})
                )
                versions = await client.call(api_versions_request(3, "x"), ApiKey.API_VERSIONS, 3)
                assert int(versions.error_code) == 0
                assert len(cluster.records("t", 0)) == 7
            stored = cluster.records("t", 0)
            assert [(r.producer_id, r.producer_epoch, r.sequence) for r in stored[:6]] == [
                (7, 0, 0), (7, 0, 1), (7, 0, 2), (7, 0, 3), (7, 0, 4), (7, 1, 0)
            ]  # fmt: skip


@pytest.mark.parametrize("name", ["", "bad topic!", "..", "a" * 250, "caf\u00e9"])
async def test_an_illegal_topic_name_gets_invalid_topic_and_is_never_created(name: str) -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            port = int(cluster.bootstrap_servers.rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                client = RawClient(stream)
                request = metadata_request(12, [name, "ok"], allow_auto_topic_creation=True)
                metadata = await client.call(request, ApiKey.METADATA, 12)
                assert [(t.name, int(t.error_code)) for t in metadata.topics] == [
                    (name, 17),
                    ("ok", 0),
                ]
                request = create_topics_request(5, [(name, 1, 1)], timeout_ms=1000)
                created = await client.call(request, ApiKey.CREATE_TOPICS, 5)
                assert int(created.topics[0].error_code) == 17
                assert "not a legal name" in str(created.topics[0].error_message)
            assert set(cluster._state.topics) == {"ok"}
            with pytest.raises(ValueError, match="not a legal name"):
                cluster.create_topic(name, 1)


async def test_api_versions_too_new_gets_the_kip_511_answer() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            port = int(cluster.bootstrap_servers.rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                # ApiVersions v9 (unknown to kio and the fake): header v2, empty tagged fields
                client_id = b"future"
                header = struct.pack(">hhih", 18, 9, 42, len(client_id)) + client_id + b"\0"
                body = b"\x01\x01\0"  # whatever a future version sends
                frame = header + body
                await stream.send(struct.pack(">i", len(frame)) + frame)
                client = RawClient(stream)
                response = response_decoder(ApiKey.API_VERSIONS, 3)(
                    memoryview(await client.frame())
                )
            assert int(response.error_code) == 35
            assert [(k.api_key, k.min_version, k.max_version) for k in response.api_keys] == [
                (18, 0, 4)
            ]
