"""Exactly once: consume -> transform -> produce.

A service that reads topic ``in`` with confluent-kafka's consumer, upper-cases each
record's value (the key stays), and writes the result to topic ``out`` with a
transactional ``asyncproducer.Producer``. Every input record ends up in ``out`` exactly
once, as seen by ``read_committed`` consumers, however often the service is killed and
restarted. Three things make it so:

1. **The input position is committed in the same transaction as the output.** Each
   polled chunk is one transaction: its output records *and* the consumer group's
   offsets (last consumed + 1 per partition, ``send_offsets_to_transaction``) commit
   together or not at all. A crash before the commit loses both, and the restarted
   service reads the chunk again from the old offsets; after the commit, both are there
   and the chunk is never read again. Offsets are never committed any other way
   (``enable.auto.commit=False``).
2. **Fencing by transactional id.** A restarted instance starts its producer with the
   same ``--transactional-id``: ``Producer.start()`` (InitProducerId) makes the
   coordinator abort the transaction the dead instance left open and fences that
   instance (``ProducerFencedError`` from then on), so a zombie (say, one paused rather
   than dead) can no longer commit anything. The producer starts *before* the consumer
   joins its group, so the offsets the consumer starts from are those of the last
   committed transaction.
3. **read_committed.** This consumer, and whoever reads ``out``, see only committed
   transactions: the records of aborted ones (the half-done chunk of a killed instance)
   stay in the log but are skipped. Reading offsets under ``read_committed``, librdkafka
   also waits for offsets still pending in an open transaction (KIP-447).

Run one instance per transactional id (``--transactional-id`` names *this* instance and
must be the same after a restart); with static group membership (``group.instance.id``,
the transactional id here) a restarted instance takes its partitions back at once instead
of waiting for the dead one's session to time out.

    python examples/exactly_once/transform.py --bootstrap-servers localhost:9092 \\
        --transactional-id transform-1 --group transform

It stops after ``--idle-seconds`` without input, or on SIGTERM / Ctrl-C (aborting the
open transaction, then closing the producer and the consumer). Needs
``pip install asyncproducer confluent-kafka``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer import Producer, TopicPartition
from asyncproducer.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    ProducerStateError,
    TransactionalIdAuthorizationFailedError,
    UnsupportedVersionError,
)

log = logging.getLogger("transform")

FATAL = (
    ProducerFencedError,  # another instance took our transactional id: stop
    InvalidProducerEpochError,
    TransactionalIdAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnsupportedVersionError,
    ProducerStateError,  # closed, or a commit that timed out and was never finished
)
"""Errors after which the producer cannot go on: the service exits (and a restart, with
the same transactional id, resumes from the last committed transaction)."""

MAX_FAILED_IN_A_ROW = 5


def transform(value: bytes | None) -> bytes | None:
    """The business logic: here, upper-case the value."""
    return None if value is None else value.upper()


@dataclass
class Progress:
    records: int = 0
    transactions: int = 0
    aborted: int = 0
    last_activity: float = 0.0  # monotonic: last input, or last (re)assignment


def new_consumer(args: argparse.Namespace) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group,
            # Static membership: one instance per transactional id, so the id names the
            # member too. A restart takes the dead member's place (and its partitions) at
            # once, with no wait for its session to expire.
            "group.instance.id": args.transactional_id,
            # Only committed transactions' records (and stable committed offsets).
            "isolation.level": "read_committed",
            # Offsets are committed by the producer's transactions, never by the consumer.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A partition the group never committed is read from its beginning.
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )


def consume_chunk(consumer: Consumer, max_records: int, timeout_s: float) -> list[Message]:
    """Up to ``max_records`` records (in a worker thread: librdkafka's calls block). The
    rebalance callbacks run in here too, so always *between* two transactions."""
    records = []
    for message in consumer.consume(num_messages=max_records, timeout=timeout_s):
        error = message.error()
        if error is None:
            records.append(message)
        elif error.fatal():
            raise RuntimeError(f"the consumer failed: {error}")
        else:
            log.warning("consumer: %s", error)
    return records


def next_offsets(records: Sequence[Message]) -> dict[TopicPartition, int]:
    """What the transaction commits for the group: per partition, the offset of the next
    record to read (the last consumed + 1)."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if topic is None or partition is None or offset is None:
            raise ValueError(f"a consumed record without a position: {record!r}")
        where = TopicPartition(topic, partition)
        offsets[where] = max(offsets.get(where, 0), offset + 1)
    return offsets


async def transform_in_one_transaction(
    producer: Producer, consumer: Consumer, records: Sequence[Message], out_topic: str
) -> None:
    """One chunk, one transaction: the transformed records and the input offsets."""
    futures: list[Any] = []
    await producer.begin_transaction()
    try:
        for record in records:
            where = f"{record.topic()}/{record.partition()}/{record.offset()}"
            futures.append(
                await producer.send(
                    out_topic,
                    transform(record.value()),
                    key=record.key(),  # same key: same output partition, order kept
                    headers=[("source", where.encode())],
                )
            )
        # The group metadata carries the consumer's generation and member id: if the
        # group rebalanced since these records were read, the coordinator refuses the
        # offsets (KIP-447) and the transaction aborts instead of committing a position
        # another member may be reading from.
        await producer.send_offsets_to_transaction(
            next_offsets(records), consumer.consumer_group_metadata()
        )
        # Sends what is still buffered, waits for every record, then commits: the output
        # and the offsets become visible together. Shielded: a commit under way when
        # SIGTERM comes is finished (within max_block_ms) rather than left in doubt.
        with anyio.CancelScope(shield=True):
            await producer.commit_transaction()
    except BaseException:
        # A record or the offsets failed, or we were told to stop: nothing of this chunk
        # becomes visible. (Shielded: a SIGTERM's cancellation must not skip the abort.)
        with anyio.CancelScope(shield=True):
            await abort(producer, futures)
        raise


async def abort(producer: Producer, futures: list[Any]) -> None:
    try:
        await producer.abort_transaction()
        log.info("transaction aborted: %d records thrown away", len(futures))
    except KafkaError as exc:
        # A fatal error (fenced) or no transaction left to abort: the next
        # begin_transaction() raises it, and the service exits.
        log.warning("aborting the transaction failed: %r", exc)
    for future in futures:  # failed with the abort: retrieve, so asyncio does not report them
        if future.done() and not future.cancelled():
            future.exception()


def rewind_to_committed(consumer: Consumer) -> None:
    """After an abort the consumer's position is past records whose output was thrown
    away: go back to the group's committed offsets (what the last committed transaction
    wrote), as a restart would."""
    assigned = consumer.assignment()
    if not assigned:
        return
    for committed in consumer.committed(assigned, timeout=30):
        offset = committed.offset if committed.offset >= 0 else OFFSET_BEGINNING
        consumer.seek(CkTopicPartition(committed.topic, committed.partition, offset))
    log.info("rewound to the committed offsets of %d partitions", len(assigned))


async def transform_until_idle(
    producer: Producer, consumer: Consumer, args: argparse.Namespace, progress: Progress
) -> None:
    def on_assign(_: Consumer, partitions: list[CkTopicPartition]) -> None:
        # librdkafka starts each partition at the group's committed offset (read
        # when this returns): where the last committed transaction left it.
        progress.last_activity = time.monotonic()
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def on_revoke(_: Consumer, partitions: list[CkTopicPartition]) -> None:
        # Called from consume(), between two transactions: every record read from these
        # partitions is in a committed transaction (offsets included) or an aborted one.
        log.info("revoked %s", sorted(p.partition for p in partitions))

    consumer.subscribe([args.input_topic], on_assign=on_assign, on_revoke=on_revoke)
    progress.last_activity = time.monotonic()
    failed_in_a_row = 0
    while True:
        records = await anyio.to_thread.run_sync(
            consume_chunk, consumer, args.max_records, args.poll_timeout
        )
        if not records:
            if time.monotonic() - progress.last_activity >= args.idle_seconds:
                return
            continue
        progress.last_activity = time.monotonic()
        try:
            await transform_in_one_transaction(producer, consumer, records, args.output_topic)
        except FATAL:
            raise
        except KafkaError as exc:  # the transaction was aborted; the next one may commit
            failed_in_a_row += 1
            progress.aborted += 1
            log.warning("transaction aborted (%d in a row): %r", failed_in_a_row, exc)
            if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                raise
            await anyio.to_thread.run_sync(rewind_to_committed, consumer)
            continue
        failed_in_a_row = 0
        progress.records += len(records)
        progress.transactions += 1
        log.info(
            "transaction %d committed: %d records (%d in all)",
            progress.transactions,
            len(records),
            progress.records,
        )


async def stop_on_signal(scope: anyio.CancelScope, stopped_by: list[str]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            stopped_by.append(signal.Signals(signum).name)
            scope.cancel()  # the open transaction aborts (see transform_in_one_transaction)
            return


async def run(args: argparse.Namespace) -> None:
    progress = Progress()
    stopped_by: list[str] = []
    async with Producer(
        args.bootstrap_servers,
        transactional_id=args.transactional_id,
        transaction_timeout_ms=60_000,
        max_block_ms=30_000,
    ) as producer:
        # start() has run InitProducerId: an earlier instance with this transactional id
        # is fenced and its open transaction aborted. Only now does the consumer join,
        # so it reads from the offsets of the last *committed* transaction.
        log.info("producer ready: transactional id %r", args.transactional_id)
        consumer = new_consumer(args)
        try:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(stop_on_signal, scope, stopped_by)
                    await transform_until_idle(producer, consumer, args, progress)
                    tasks.cancel_scope.cancel()
        finally:
            # Leaving the producer's block closes it (aborting a transaction still
            # open); the consumer closes first, in a thread (it blocks).
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(consumer.close)
    how = f"stopped by {stopped_by[0]}" if stopped_by else f"idle for {args.idle_seconds:g} s"
    log.info(
        "done (%s): %d records in %d transactions, %d aborted",
        how,
        progress.records,
        progress.transactions,
        progress.aborted,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument(
        "--transactional-id", required=True, help="unique to this instance, same after restarts"
    )
    parser.add_argument("--group", required=True, help="the consumer group id")
    parser.add_argument("--input-topic", default="in")
    parser.add_argument("--output-topic", default="out")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="stop without input")
    parser.add_argument("--max-records", type=int, default=500, help="records per transaction")
    parser.add_argument("--poll-timeout", type=float, default=0.5, help="seconds per consume()")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    status = 0
    try:
        anyio.run(run, args)
    except* FATAL as failures:  # raised through the task group: an exception group
        log.error(
            "stopping: %r (a restart with the same transactional id resumes)",
            failures.exceptions[0],
        )
        status = 1
    return status


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop is running
        sys.exit(main())
