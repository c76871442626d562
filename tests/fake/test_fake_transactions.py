"""FakeCluster as Kafka 4's transaction coordinator and partition leaders, driven with raw
protocol requests (kio's message classes, the protocol layer's framing): coordinator
lookup, InitProducerId and fencing, AddPartitionsToTxn, transactional Produce, EndTxn with
markers, read_committed, transaction versions 1 and 2, timeouts, transactional offsets,
and the faults of every new API. Markers are decoded with kafka-python and the records
read back with confluent-kafka, two readers this project did not write.
"""

from __future__ import annotations

import datetime
import struct
import time
import warnings
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from kio.index import load_payload_module, load_response_schema
from kio.serial import entity_reader
from kio.static.constants import EntityType

from asyncproducer.protocol.framing import FrameDecoder, encode_request, response_body
from asyncproducer.protocol.records import RecordBatchBuilder
from asyncproducer.testing.fake import FakeCluster
from asyncproducer.testing.fake._coordinators import java_string_hash, partition_for

pytestmark = pytest.mark.anyio

PRODUCE, FETCH, FIND_COORDINATOR, API_VERSIONS, INIT_PRODUCER_ID = 0, 1, 10, 18, 22
ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = 24, 25, 26, 28

UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
TRANSACTION_ABORTABLE = 120
TS = 1_700_000_000_000


# --------------------------------------------------------------------------- raw client


def _module(api: int, version: int) -> Any:
    return load_payload_module(api, version, EntityType.request)


class Raw:
    """One connection to one broker; ``call`` sends a kio request and decodes the answer."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.correlation_id = 0

    async def call(self, payload: Any) -> Any:
        self.correlation_id += 1
        frame = encode_request(payload, correlation_id=self.correlation_id, client_id="raw")
        await self.stream.send(frame)
        while True:
            frames = self.decoder.feed(await self.stream.receive())
            if frames:
                break
        schema = load_response_schema(payload.__api_key__, payload.__version__)
        body = response_body(memoryview(frames[0]), schema.__header_schema__)
        return entity_reader(schema)(body, 0)[0]


@asynccontextmanager
async def connect(cluster: FakeCluster, broker: int) -> Any:
    port = int(cluster.bootstrap_servers.split(",")[broker].rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        yield Raw(stream)


def init_request(tid: str | None, timeout_ms: int = 60_000, version: int = 5, **more: int) -> Any:
    return _module(INIT_PRODUCER_ID, version).InitProducerIdRequest(
        transactional_id=tid,
        transaction_timeout=datetime.timedelta(milliseconds=timeout_ms),
        **more,
    )


def add_partitions_request(
    tid: str, pid: int, epoch: int, partitions: dict[str, list[int]], version: int = 3
) -> Any:
    module = _module(ADD_PARTITIONS, version)
    return module.AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=tid,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=tuple(
            module.AddPartitionsToTxnTopic(name=t, partitions=tuple(ps))
            for t, ps in partitions.items()
        ),
    )


def add_offsets_request(tid: str, pid: int, epoch: int, group: str, version: int = 4) -> Any:
    return _module(ADD_OFFSETS, version).AddOffsetsToTxnRequest(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, group_id=group
    )


def end_request(tid: str, pid: int, epoch: int, commit: bool, version: int = 4) -> Any:
    return _module(END_TXN, version).EndTxnRequest(
        transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=commit
    )


def offset_commit_request(
    tid: str, group: str, pid: int, epoch: int, offsets: dict[tuple[str, int], int], version: int
) -> Any:
    module = _module(TXN_OFFSET_COMMIT, version)
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append(
            module.TxnOffsetCommitRequestPartition(
                partition_index=partition, committed_offset=offset, committed_metadata="m"
            )
        )
    extra = {"generation_id": 7, "member_id": "member-1"} if version >= 3 else {}
    return module.TxnOffsetCommitRequest(
        transactional_id=tid,
        group_id=group,
        producer_id=pid,
        producer_epoch=epoch,
        topics=tuple(
            module.TxnOffsetCommitRequestTopic(name=t, partitions=tuple(ps))
            for t, ps in by_topic.items()
        ),
        **extra,
    )


def find_request(keys: list[str], key_type: int, version: int) -> Any:
    cls = _module(FIND_COORDINATOR, version).FindCoordinatorRequest
    if version >= 4:
        return cls(key_type=key_type, coordinator_keys=tuple(keys))
    return cls(key=keys[0], key_type=key_type)


def txn_batch(pid: int, epoch: int, sequence: int, values: list[bytes]) -> bytes:
    builder = RecordBatchBuilder(batch_size=16384)
    for value in values:
        assert builder.try_append(TS, None, value) is not None
    return builder.build(
        producer_id=pid, producer_epoch=epoch, base_sequence=sequence, is_transactional=True
    )


def plain_batch(values: list[bytes]) -> bytes:
    builder = RecordBatchBuilder(batch_size=16384)
    for value in values:
        assert builder.try_append(TS, None, value) is not None
    return builder.build()


def produce_request(
    records: bytes, *, tid: str | None, version: int = 11, topic: str = "t", partition: int = 0
) -> Any:
    module = _module(PRODUCE, version)
    return module.ProduceRequest(
        transactional_id=tid,
        acks=-1,
        timeout=datetime.timedelta(seconds=1),
        topic_data=(
            module.TopicProduceData(
                name=topic,
                partition_data=(module.PartitionProduceData(index=partition, records=records),),
            ),
        ),
    )


def fetch_request(isolation: int, offset: int = 0, topic: str = "t") -> Any:
    module = _module(FETCH, 12)
    return module.FetchRequest(
        max_wait=datetime.timedelta(0),
        min_bytes=0,
        isolation_level=isolation,
        topics=(
            module.FetchTopic(
                topic=topic,
                partitions=(
                    module.FetchPartition(
                        partition=0, fetch_offset=offset, partition_max_bytes=1 << 20
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )


def partition_code(response: Any) -> int:
    return int(response.responses[0].partition_responses[0].error_code)


def add_codes(response: Any) -> list[int]:
    return [
        int(p.partition_error_code)
        for topic in response.results_by_topic_v3_and_below
        for p in topic.results_by_partition
    ]


class Session:
    """A transactional producer spoken by hand against the coordinator and leader."""

    def __init__(self, raw: Raw, tid: str) -> None:
        self.raw, self.tid = raw, tid
        self.pid, self.epoch, self.sequence = -1, -1, 0

    async def init(self, timeout_ms: int = 60_000) -> None:
        answer = await self.raw.call(init_request(self.tid, timeout_ms))
        assert int(answer.error_code) == 0
        self.pid, self.epoch, self.sequence = answer.producer_id, answer.producer_epoch, 0

    async def add(self, partitions: dict[str, list[int]]) -> list[int]:
        return add_codes(
            await self.raw.call(add_partitions_request(self.tid, self.pid, self.epoch, partitions))
        )

    async def send(self, values: list[bytes], version: int = 11) -> int:
        records = txn_batch(self.pid, self.epoch, self.sequence, values)
        answer = await self.raw.call(produce_request(records, tid=self.tid, version=version))
        code = partition_code(answer)
        if code == 0:
            self.sequence += len(values)
        return code

    async def end(self, commit: bool, version: int = 4) -> Any:
        answer = await self.raw.call(end_request(self.tid, self.pid, self.epoch, commit, version))
        if int(answer.error_code) == 0 and version >= 5:
            self.pid, self.epoch, self.sequence = answer.producer_id, answer.producer_epoch, 0
        return answer


def coordinated_by(cluster: FakeCluster, broker: int, prefix: str = "txn") -> Iterator[str]:
    """Transactional ids whose coordinator is ``broker``."""
    for i in range(1000):
        tid = f"{prefix}-{i}"
        if cluster.coordinator_of(tid) == broker:
            yield tid


# --------------------------------------------------------------------------- coordinator


async def test_find_coordinator_places_keys_by_kafkas_hash_and_refuses_elsewhere() -> None:
    assert java_string_hash("hello") == 99162322  # Java: "hello".hashCode()
    assert java_string_hash("polygenelubricants") == -(2**31)  # Utils.abs(MIN_VALUE) == 0
    assert partition_for("polygenelubricants", 1) == 0
    with anyio.fail_after(10):
        async with FakeCluster(brokers=3) as cluster:
            tids = ["orders-1", "payments-7", "x"]
            async with connect(cluster, 0) as raw:
                for version in (1, 3):
                    answer = await raw.call(find_request(tids[1:2], 1, version))
                    assert int(answer.error_code) == 0
                    assert answer.node_id == cluster.coordinator_of(tids[1])
                batched = await raw.call(find_request(tids, 1, 4))
                assert [(c.key, c.node_id) for c in batched.coordinators] == [
                    (t, cluster.coordinator_of(t)) for t in tids
                ]
                group = await raw.call(find_request(["group-a"], 0, 4))
                expected = partition_for("group-a", 0) % 3
                assert group.coordinators[0].node_id == expected
                assert cluster.coordinator_of("group-a", key_type="group") == expected
                unknown_type = await raw.call(find_request(["k"], 7, 4))
                assert int(unknown_type.coordinators[0].error_code) == INVALID_REQUEST
            tid = next(coordinated_by(cluster, 1))
            async with connect(cluster, 0) as raw:
                assert int((await raw.call(init_request(tid))).error_code) == NOT_COORDINATOR
                await cluster.stop_broker(1)
                down = await raw.call(find_request([tid], 1, 4))
                assert int(down.coordinators[0].error_code) == COORDINATOR_NOT_AVAILABLE
                cluster.move_coordinator(tid, 0)
                moved = await raw.call(find_request([tid], 1, 4))
                assert (int(moved.coordinators[0].error_code), moved.coordinators[0].node_id) == (
                    0,
                    0,
                )
                assert int((await raw.call(init_request(tid))).error_code) == 0


# --------------------------------------------------------------------------- init and fencing


@pytest.mark.parametrize("tv", [1, 2])
async def test_a_second_instance_fences_the_first_and_aborts_its_transaction(tv: int) -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1, transaction_version=tv) as cluster:
            cluster.create_topic("t", 1)
            async with connect(cluster, 0) as raw:
                too_long = await raw.call(init_request("app", timeout_ms=900_001))
                assert int(too_long.error_code) == INVALID_TRANSACTION_TIMEOUT
                old = Session(raw, "app")
                await old.init()
                assert (old.pid, old.epoch) == (cluster.transaction_state("app").producer_id, 0)
                assert await old.add({"t": [0]}) == [0]
                assert await old.send([b"zombie"]) == 0
                assert cluster.last_stable_offset("t", 0) == 0
                # Kafka: fence (epoch + 1), abort, answer CONCURRENT_TRANSACTIONS; the retry
                # bumps again. Version 2 also bumps at the abort itself.
                busy = await raw.call(init_request("app"))
                assert int(busy.error_code) == CONCURRENT_TRANSACTIONS
                fenced_epoch = 1 if tv == 1 else 2
                marker = cluster.markers("t", 0)[0]
                assert (marker.kind, marker.producer_epoch, marker.offset) == (
                    "abort",
                    fenced_epoch,
                    1,
                )
                new = Session(raw, "app")
                await new.init()
                assert (new.pid, new.epoch) == (old.pid, fenced_epoch + 1)
                assert cluster.records("t", 0, isolation="read_committed") == []
                # The old instance is fenced everywhere, each API with its code.
                ended = await raw.call(end_request("app", old.pid, old.epoch, True))
                assert int(ended.error_code) == PRODUCER_FENCED
                ended_v1 = await raw.call(end_request("app", old.pid, old.epoch, True, version=1))
                assert int(ended_v1.error_code) == INVALID_PRODUCER_EPOCH  # before KIP-588
                assert await old.add({"t": [0]}) == [PRODUCER_FENCED]
                assert await old.send([b"late"]) == INVALID_PRODUCER_EPOCH
                offsets = await raw.call(add_offsets_request("app", old.pid, old.epoch, "g"))
                assert int(offsets.error_code) == PRODUCER_FENCED
                # The new one works.
                assert await new.add({"t": [0]}) == [0]
                assert await new.send([b"fresh"]) == 0
                assert int((await new.end(True)).error_code) == 0
            assert [r.value for r in cluster.records("t", 0)] == [b"zombie", b"fresh"]
            assert [r.value for r in cluster.records("t", 0, isolation="read_committed")] == [
                b"fresh"
            ]


# --------------------------------------------------------------------------- transaction v1


async def test_v1_partitions_must_be_added_and_markers_decode_with_kafka_python() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.record.default_records import DefaultRecordBatch
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1, transaction_version=1) as cluster:
            cluster.create_topic("t", 2)
            async with connect(cluster, 0) as raw:
                producer = Session(raw, "v1")
                await producer.init()
                # KIP-890 part 1: the leader asks the coordinator; not added is refused,
                # as TRANSACTION_ABORTABLE from Produce v11, INVALID_TXN_STATE before.
                assert await producer.send([b"early"]) == TRANSACTION_ABORTABLE
                assert await producer.send([b"early"], version=10) == INVALID_TXN_STATE
                assert await producer.add({"t": [0, 9]}) == [
                    OPERATION_NOT_ATTEMPTED,
                    UNKNOWN_TOPIC_OR_PARTITION,
                ]
                assert await producer.add({"t": [0, 1]}) == [0, 0]
                assert cluster.transaction_state("v1").state == "Ongoing"
                assert await producer.send([b"a", b"b"]) == 0
                assert int((await producer.end(True)).error_code) == 0
                state = cluster.transaction_state("v1")
                assert (state.state, state.producer_epoch, state.partitions) == (
                    "CompleteCommit",
                    0,
                    frozenset(),
                )
                retry = await producer.end(True)
                assert int(retry.error_code) == 0  # a retry of the commit, answered again
                assert int((await producer.end(False)).error_code) == INVALID_TXN_STATE
                # The epoch stays in version 1: the next transaction continues sequences.
                assert await producer.add({"t": [0]}) == [0]
                assert await producer.send([b"c"]) == 0
                assert int((await producer.end(False)).error_code) == 0
            markers = cluster.markers("t", 0)
            assert [(m.offset, m.kind, m.producer_epoch) for m in markers] == [
                (2, "commit", 0),
                (4, "abort", 0),
            ]
            assert [m.kind for m in cluster.markers("t", 1)] == ["commit"]
            decoded = [DefaultRecordBatch(batch.raw) for batch in cluster.batches("t", 0)]
            assert all(batch.validate_crc() for batch in decoded)
            assert [(b.base_offset, b.is_transactional, b.is_control_batch) for b in decoded] == [
                (0, True, False),
                (2, True, True),
                (3, True, False),
                (4, True, True),
            ]
            control = [next(iter(b)) for b in decoded if b.is_control_batch]
            assert [struct.unpack(">hh", r.key) for r in control] == [(0, 1), (0, 0)]
            assert [struct.unpack(">hi", r.value) for r in control] == [(0, 0), (0, 0)]
            assert all(b.producer_id == producer.pid for b in decoded)
            assert [r.sequence for r in cluster.records("t", 0)] == [0, 1, 2]
            assert [r.value for r in cluster.records("t", 0, isolation="read_committed")] == [
                b"a",
                b"b",
            ]


# --------------------------------------------------------------------------- transaction v2


async def test_v2_advertises_the_feature_adds_implicitly_and_bumps_the_epoch() -> None:
    with anyio.fail_after(10):
        async with (
            FakeCluster(brokers=1) as v2,
            FakeCluster(brokers=1, transaction_version=1) as v1,
        ):
            for cluster, produce_max, end_max, level in ((v2, 12, 5, 2), (v1, 11, 4, 1)):
                async with connect(cluster, 0) as raw:
                    versions = await raw.call(
                        _module(API_VERSIONS, 3).ApiVersionsRequest(
                            client_software_name="raw", client_software_version="1"
                        )
                    )
                ranges = {k.api_key: k.max_version for k in versions.api_keys}
                assert (ranges[PRODUCE], ranges[END_TXN]) == (produce_max, end_max)
                assert ranges[ADD_PARTITIONS] == (5 if level == 2 else 3)
                assert [(f.name, f.max_version_level) for f in versions.finalized_features] == [
                    ("transaction.version", level)
                ]
                assert [(f.name, f.max_version) for f in versions.supported_features] == [
                    ("transaction.version", 2)
                ]
            v2.create_topic("t", 1)
            async with connect(v2, 0) as raw:
                producer = Session(raw, "v2")
                await producer.init()
                first_epoch = producer.epoch
                # Produce v12 adds the partition itself (no AddPartitionsToTxn).
                assert await producer.send([b"one"], version=12) == 0
                assert v2.transaction_state("v2").partitions == {("t", 0)}
                stale = (producer.pid, producer.epoch)
                ended = await producer.end(True, version=5)
                assert int(ended.error_code) == 0
                assert (producer.pid, producer.epoch) == (stale[0], first_epoch + 1)
                # The marker carries the bumped epoch: a late batch of the old one is fenced.
                assert v2.markers("t", 0)[0].producer_epoch == first_epoch + 1
                late = txn_batch(stale[0], stale[1], 1, [b"late"])
                answer = await raw.call(produce_request(late, tid="v2", version=12))
                assert partition_code(answer) == INVALID_PRODUCER_EPOCH
                # A retry of the EndTxn that was answered gets the same answer again.
                retry = await raw.call(end_request("v2", stale[0], stale[1], True, version=5))
                assert (int(retry.error_code), retry.producer_epoch) == (0, producer.epoch)
                # New epoch, sequences from 0; abort; an abort with nothing open still bumps.
                assert await producer.send([b"two"], version=12) == 0
                assert int((await producer.end(False, version=5)).error_code) == 0
                assert int((await producer.end(False, version=5)).error_code) == 0
                assert producer.epoch == first_epoch + 3
                commit_nothing = await producer.end(True, version=5)
                assert int(commit_nothing.error_code) == INVALID_TXN_STATE
            stored = v2.records("t", 0)
            assert [(r.value, r.producer_epoch, r.sequence) for r in stored] == [
                (b"one", first_epoch, 0),
                (b"two", first_epoch + 1, 0),
            ]
            assert [r.value for r in v2.records("t", 0, isolation="read_committed")] == [b"one"]
            assert [m.kind for m in v2.markers("t", 0)] == ["commit", "abort"]


# --------------------------------------------------------------------------- read_committed


def _consume(bootstrap_servers: str, isolation: str, expected: int) -> list[tuple[int, bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"verify-{isolation}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    try:
        consumer.assign([TopicPartition("t", 0, 0)])
        seen: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == -191 and len(seen) >= expected:  # end of partition
                    break
                continue
            seen.append((message.offset(), message.value()))
        return seen
    finally:
        consumer.close()


async def test_read_committed_stops_at_the_lso_and_drops_aborted_records() -> None:
    """confluent-kafka (librdkafka) reads the fake's log at both isolation levels."""
    with anyio.fail_after(30):
        async with FakeCluster(brokers=1, transaction_version=1) as cluster:
            cluster.create_topic("t", 1)
            async with connect(cluster, 0) as raw:
                plain = await raw.call(produce_request(plain_batch([b"plain"]), tid=None))
                assert partition_code(plain) == 0  # offset 0
                producer = Session(raw, "reader-test")
                await producer.init()
                for values, commit in (([b"c1", b"c2"], True), ([b"a1"], False)):
                    assert await producer.add({"t": [0]}) == [0]
                    assert await producer.send(values) == 0
                    assert int((await producer.end(commit)).error_code) == 0
                # offsets: 0 plain, 1-2 committed, 3 commit marker, 4 aborted, 5 abort marker
                assert await producer.add({"t": [0]}) == [0]
                assert await producer.send([b"open"]) == 0  # offset 6, still open
                uncommitted = await raw.call(fetch_request(0))
                committed = await raw.call(fetch_request(1))
            assert cluster.last_stable_offset("t", 0) == 6
            part = uncommitted.responses[0].partitions[0]
            assert (part.high_watermark, part.last_stable_offset) == (7, 6)
            assert part.aborted_transactions is None
            part = committed.responses[0].partitions[0]
            assert (part.high_watermark, part.last_stable_offset) == (7, 6)
            assert [(a.producer_id, a.first_offset) for a in part.aborted_transactions] == [
                (producer.pid, 4)
            ]
            assert b"open" not in bytes(part.records)
            read_committed = await anyio.to_thread.run_sync(
                _consume, cluster.bootstrap_servers, "read_committed", 3
            )
            read_uncommitted = await anyio.to_thread.run_sync(
                _consume, cluster.bootstrap_servers, "read_uncommitted", 5
            )
            assert read_committed == [(0, b"plain"), (1, b"c1"), (2, b"c2")]
            assert read_uncommitted == [
                (0, b"plain"), (1, b"c1"), (2, b"c2"), (4, b"a1"), (6, b"open")
            ]  # fmt: skip
            assert [(r.offset, r.value) for r in cluster.records("t", 0)] == read_uncommitted
            view = cluster.records("t", 0, isolation="read_committed")
            assert [(r.offset, r.value) for r in view] == read_committed
            with pytest.raises(ValueError, match="isolation"):
                cluster.records("t", 0, isolation="committed")


# --------------------------------------------------------------------------- timeout


async def test_a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() -> None:
    now = [100.0]
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1, transaction_version=2) as cluster:
            cluster._state.clock = lambda: now[0]
            cluster.create_topic("t", 1)
            async with connect(cluster, 0) as raw:
                producer = Session(raw, "slow")
                await producer.init(timeout_ms=1_000)
                assert await producer.send([b"slow"], version=12) == 0
                now[0] += 0.9
                assert cluster.transaction_state("slow").state == "Ongoing"
                now[0] += 0.2  # 1.1 s after the first partition joined
                state = cluster.transaction_state("slow")
                # Fenced (epoch + 1), then the version 2 abort bumps once more.
                assert (state.state, state.producer_epoch) == ("CompleteAbort", producer.epoch + 2)
                assert [(m.kind, m.producer_epoch) for m in cluster.markers("t", 0)] == [
                    ("abort", producer.epoch + 2)
                ]
                ended = await producer.end(True, version=5)
                assert int(ended.error_code) == PRODUCER_FENCED
                assert await producer.send([b"after"], version=12) == INVALID_PRODUCER_EPOCH
            assert cluster.records("t", 0, isolation="read_committed") == []
            assert cluster.last_stable_offset("t", 0) == 2


# --------------------------------------------------------------------------- offsets


@pytest.mark.parametrize("commit", [True, False])
async def test_transactional_offsets_are_committed_only_with_the_transaction(commit: bool) -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=2, transaction_version=1) as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            group = "consumers"
            group_broker = cluster.coordinator_of(group, key_type="group")
            txn_broker = 1 - group_broker
            cluster.move_leader("t", 0, txn_broker)
            tid = next(coordinated_by(cluster, txn_broker))
            async with (
                connect(cluster, txn_broker) as raw,
                connect(cluster, group_broker) as group_raw,
            ):
                producer = Session(raw, tid)
                await producer.init()
                offsets = {("t", 0): 42}
                args = (tid, group, producer.pid, producer.epoch, offsets)
                # Not yet in the transaction: refused per version.
                for version, code in ((3, INVALID_TXN_STATE), (4, TRANSACTION_ABORTABLE)):
                    answer = await group_raw.call(offset_commit_request(*args, version=version))
                    assert int(answer.topics[0].partitions[0].error_code) == code
                wrong = await raw.call(offset_commit_request(*args, version=3))
                assert int(wrong.topics[0].partitions[0].error_code) == NOT_COORDINATOR
                added = await raw.call(
                    add_offsets_request(tid, producer.pid, producer.epoch, group)
                )
                assert int(added.error_code) == 0
                assert await producer.add({"t": [0]}) == [0]
                assert await producer.send([b"out"]) == 0
                answer = await group_raw.call(offset_commit_request(*args, version=3))
                assert int(answer.topics[0].partitions[0].error_code) == 0
                stale = offset_commit_request(tid, group, producer.pid, 5, offsets, version=3)
                answer = await group_raw.call(stale)
                assert int(answer.topics[0].partitions[0].error_code) == INVALID_PRODUCER_EPOCH
                assert cluster.transaction_state(tid).pending_offsets == {group: {("t", 0): 42}}
                assert cluster.committed_offsets(group) == {}
                assert int((await producer.end(commit)).error_code) == 0
            assert cluster.committed_offsets(group) == ({("t", 0): 42} if commit else {})
            assert cluster.transaction_state(tid).pending_offsets == {}
            assert [m.kind for m in cluster.markers("t", 0)] == ["commit" if commit else "abort"]


async def test_txn_offset_commit_v5_adds_the_group_implicitly() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with connect(cluster, 0) as raw:
                producer = Session(raw, "eos")
                await producer.init()
                request = offset_commit_request(
                    "eos", "g", producer.pid, producer.epoch, {("t", 0): 7}, version=5
                )
                answer = await raw.call(request)
                assert int(answer.topics[0].partitions[0].error_code) == 0
                assert cluster.transaction_state("eos").state == "Ongoing"
                assert int((await producer.end(True, version=5)).error_code) == 0
            assert cluster.committed_offsets("g") == {("t", 0): 7}


# --------------------------------------------------------------------------- faults


def _fault_request(api: int, tid: str, pid: int, epoch: int) -> tuple[Any, Any]:
    """A request of ``api`` that would succeed, and how to read its error code."""
    if api == ADD_PARTITIONS:
        return add_partitions_request(tid, pid, epoch, {"t": [0]}), lambda r: add_codes(r)[0]
    if api == ADD_OFFSETS:
        return add_offsets_request(tid, pid, epoch, "g"), lambda r: int(r.error_code)
    if api == END_TXN:
        return end_request(tid, pid, epoch, False, version=5), lambda r: int(r.error_code)
    if api == TXN_OFFSET_COMMIT:
        request = offset_commit_request(tid, "g", pid, epoch, {("t", 0): 1}, version=5)
        return request, lambda r: int(r.topics[0].partitions[0].error_code)
    if api == FIND_COORDINATOR:
        return find_request([tid], 1, 4), lambda r: int(r.coordinators[0].error_code)
    return init_request(tid), lambda r: int(r.error_code)


@pytest.mark.parametrize(
    "api",
    [ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT, FIND_COORDINATOR, INIT_PRODUCER_ID],
)
async def test_every_transaction_api_takes_the_three_faults(api: int) -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with connect(cluster, 0) as raw:
                producer = Session(raw, "faulty")
                await producer.init()
                before = cluster.transaction_state("faulty")
                request, code_of = _fault_request(api, "faulty", producer.pid, producer.epoch)
                # An armed error is answered and nothing is applied (CONCURRENT_TRANSACTIONS
                # is how a test makes a commit look still in progress).
                cluster.fail_next(api, CONCURRENT_TRANSACTIONS)
                assert code_of(await raw.call(request)) == CONCURRENT_TRANSACTIONS
                assert cluster.transaction_state("faulty") == before
                cluster.delay_responses(api, 0.2, count=1)
                started = time.monotonic()
                assert code_of(await raw.call(request)) == 0
                assert time.monotonic() - started >= 0.15  # loop timers may fire early
            async with connect(cluster, 0) as raw:
                cluster.drop_connection(api)
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await raw.call(request)


# --------------------------------------------------------------------------- librdkafka


def _transactional_librdkafka(bootstrap_servers: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "transactional.id": "rdkafka"})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce("t", b"committed", partition=0)
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce("t", b"aborted", partition=0)
    producer.flush(10)  # sent, so the abort has something to abort
    producer.abort_transaction(10)


@pytest.mark.parametrize("tv", [1, 2])
async def test_librdkafkas_transactional_producer_commits_and_aborts(tv: int) -> None:
    """A transactional client this project did not write (it speaks transaction version
    1, which a version 2 cluster still serves, as Kafka does)."""
    with anyio.fail_after(30):
        async with FakeCluster(brokers=3, transaction_version=tv) as cluster:
            cluster.create_topic("t", 1)
            await anyio.to_thread.run_sync(_transactional_librdkafka, cluster.bootstrap_servers)
            assert [(r.offset, r.value) for r in cluster.records("t", 0)] == [
                (0, b"committed"),
                (2, b"aborted"),
            ]
            assert [(m.offset, m.kind) for m in cluster.markers("t", 0)] == [
                (1, "commit"),
                (3, "abort"),
            ]
            assert [r.value for r in cluster.records("t", 0, isolation="read_committed")] == [
                b"committed"
            ]
            state = cluster.transaction_state("rdkafka")
            assert (state.state, state.partitions) == ("CompleteAbort", frozenset())
            coordinator = cluster.coordinator_of("rdkafka")
            assert cluster.request_count(END_TXN, broker=coordinator) == 2
            assert cluster.request_count(END_TXN) == 2
