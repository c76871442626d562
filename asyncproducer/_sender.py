"""The sender task: moves batches from the accumulator to partition leaders.

One loop per producer. Each turn it fails batches past ``delivery_timeout_ms`` (queued
or in flight), asks the accumulator which brokers are ready, drains batches for those
with fewer than ``max_in_flight_requests_per_connection`` requests in flight, and writes
one Produce request per broker, there and then (a task only when the connection must be
opened first); the response comes back through a callback from the connection. Then it
sleeps until something changes: a new or full batch, a response, a metadata refresh, a
flush, or the next linger/backoff/expiry deadline. The accumulator decides; this module
does the awaiting.

What becomes of each batch after its answer (complete, retry, refresh metadata and
retry, split, fail, stop the producer, expire) is decided by ``_outcome.decide``, whose
docstring holds the rules as a table; ``_settle`` carries the decision out.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._batch import BatchState, ProducerBatch
from asyncproducer._connection import BrokerConnection
from asyncproducer._futures import event_factory, timed_wait_factory
from asyncproducer._host import background_task
from asyncproducer._idempotence import (
    IdempotenceState,
    ProducerIdAndEpoch,
    ProducerIdState,
    SequenceVerdict,
)
from asyncproducer._memory import BufferPool
from asyncproducer._metadata import MetadataManager
from asyncproducer._outcome import FATAL_ERRORS, MAYBE_APPENDED, BatchFacts, Outcome, decide
from asyncproducer._pool import ConnectionPool
from asyncproducer._producer_metrics import ProducerMetrics
from asyncproducer._sticky_switch import BrokerAvailability
from asyncproducer._transactions import TransactionState
from asyncproducer._types import TopicPartition
from asyncproducer._value import Value
from asyncproducer.errors import (
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotLeaderOrFollowerError,
    TransactionAbortedError,
    error_for_code,
)
from asyncproducer.interceptors import InterceptorChain
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE
from asyncproducer.protocol.produce import ProduceRequest
from asyncproducer.protocol.requests import InitProducerIdRequest
from asyncproducer.protocol.responses import PartitionProduceResponse, ProduceResponse
from asyncproducer.protocol.versions import ApiKey

if TYPE_CHECKING:
    from asyncproducer._transactional import TransactionalCalls

logger = logging.getLogger("asyncproducer.sender")


def monotonic_ms() -> float:
    return time.monotonic() * 1000


class SenderSettings(Value):
    __slots__ = (
        "acks",
        "max_in_flight_requests_per_connection",
        "max_request_size",
        "request_timeout_ms",
        "retries",
        "transactional_id",
    )
    _fields = (
        "acks",
        "request_timeout_ms",
        "max_request_size",
        "max_in_flight_requests_per_connection",
        "retries",
        "transactional_id",
    )

    acks: int
    request_timeout_ms: int
    max_request_size: int
    max_in_flight_requests_per_connection: int
    retries: int
    transactional_id: str | None

    def __init__(
        self,
        acks: int,
        request_timeout_ms: int,
        max_request_size: int,
        max_in_flight_requests_per_connection: int,
        retries: int,
        transactional_id: str | None = None,
    ) -> None:
        self.acks = acks
        self.request_timeout_ms = request_timeout_ms
        self.max_request_size = max_request_size
        self.max_in_flight_requests_per_connection = max_in_flight_requests_per_connection
        self.retries = retries
        self.transactional_id = transactional_id


# Java's idempotent (non-transactional) producer asks for the longest transaction timeout:
# it has no transactions to time out.
_NO_TRANSACTION_TIMEOUT_MS = 2**31 - 1


class Sender:
    def __init__(
        self,
        settings: SenderSettings,
        accumulator: RecordAccumulator,
        metadata: MetadataManager,
        pool: ConnectionPool,
        memory: BufferPool,
        interceptors: InterceptorChain,
        idempotence: IdempotenceState | None = None,
        clock: Callable[[], float] = monotonic_ms,
        metrics: ProducerMetrics | None = None,
        availability: BrokerAvailability | None = None,
    ) -> None:
        self._settings = settings
        self._accumulator = accumulator
        self._metadata = metadata
        self._pool = pool
        self._memory = memory
        self._interceptors = interceptors
        self._clock = clock
        self._wakeup_event = anyio.Event()
        self._wake_at_ms = 0.0
        """When the sleeping loop wakes by itself (the clock's milliseconds)."""
        self._in_flight_requests: dict[int, int] = {}
        self._awaiting_connection: dict[int, list[list[ProducerBatch]]] = {}
        """Per broker being connected to, the requests (their batches) to write once it
        is, in order."""
        self._in_flight_batches: dict[ProducerBatch, None] = {}
        self._partition_errors: dict[TopicPartition, KafkaError] = {}
        """A partition's last error answer, until one of its batches succeeds: it says why
        a batch that never left the queue (it waited behind retries) ran out of time."""
        self.metrics = ProducerMetrics("") if metrics is None else metrics
        self._throttled_until: dict[int, float] = {}
        """Per broker that asked for it (a Produce response's throttle time, KIP-219):
        when it may have requests again (the clock's milliseconds)."""
        self._idempotence = idempotence
        self.producer_id_error: KafkaError | None = None
        """Why the last InitProducerId failed, while records wait for a producer id."""
        self.fatal_error: KafkaError | None = None
        """The fatal error that stopped the sender, if one did."""
        self.transactions: TransactionalCalls | None = None
        """A transactional producer's calls (set by the producer): the sender adds each
        partition to the transaction before it drains it, and reports failed records."""
        self._crash: BaseException | None = None
        """A bug met in a response callback: the loop stops and raises it."""
        self._availability = availability
        """Told each turn which brokers with batches ready could take a request
        (``partitioner_availability_timeout_ms``, see ``_sticky_switch``)."""
        metadata.add_listener(lambda _: self.wakeup())

    def wakeup(self) -> None:
        self._wakeup_event.set()

    def batch_opened(self, created_ms: float, behind_another: bool) -> None:
        """``send()`` opened a batch: wake the loop unless it wakes by itself before the
        batch is due. Waking it for every new batch would cost a pass over every
        partition per batch: with many partitions and few records each, per record."""
        if (
            behind_another  # the batch before it is full: sendable now
            or self._accumulator.in_a_hurry
            or created_ms + self._accumulator.linger_ms < self._wake_at_ms
        ):
            self.wakeup()

    # ------------------------------------------------------------------ the loop

    @background_task
    async def run(self) -> None:
        """Send until cancelled (the producer cancels it after close has drained), or
        until a fatal error, which it raises (after its connect tasks are cancelled)."""
        new_event = event_factory()  # cheaper than anyio.Event(), made on every turn
        wait = timed_wait_factory()  # cheaper than a cancel scope, made on every turn
        async with anyio.create_task_group() as requests:
            while self.fatal_error is None and self._crash is None:
                delay_ms = max(self._run_once(requests), 0)
                self._wake_at_ms = self._clock() + delay_ms
                await wait(self._wakeup_event, delay_ms / 1000)
                self._wakeup_event = new_event()
            requests.cancel_scope.cancel()
        if self._crash is not None:
            raise self._crash
        fatal = self.fatal_error
        assert fatal is not None  # the loop ends only so (or by cancellation)
        raise fatal

    def _run_once(self, requests: anyio.abc.TaskGroup) -> float:
        """One turn; returns how long to sleep (ms) unless woken earlier."""
        accumulator = self._accumulator
        now = self._clock()
        self._expire(now)
        idempotence = self._idempotence
        transactions = self.transactions
        if transactions is not None:
            self._transaction_turn(transactions)
        if idempotence is not None:
            idempotence.resolve_sequences()
            idempotence.bump_epoch_if_needed()
            if idempotence.state is not ProducerIdState.READY:
                # A transactional producer's id comes from its start() (_transactional).
                if idempotence.state is ProducerIdState.UNINITIALIZED and transactions is None:
                    idempotence.initializing()
                    requests.start_soon(self._init_producer_id)
                return accumulator.next_expiry_ms(now)
        check = accumulator.ready(self._metadata.snapshot, now, self._memory.waiting > 0)
        delay = min(check.next_check_ms, accumulator.next_expiry_ms(now))
        if check.unknown_leader_topics:
            self._metadata.request_update()
        limit = self._settings.max_in_flight_requests_per_connection
        in_flight = self._in_flight_requests
        # A broker with a request out gets the next one when something presses (see
        # ReadyCheck.urgent). Full batches alone wait for its answer, at most until their
        # linger_ms is over, and go together in one request: on a fast broker, one
        # request per batch cost more per record in syscalls, encoding and the
        # broker's work than the wait costs in latency (docs/producer.md, "Batching").
        nodes = [
            n
            for n in check.ready_nodes
            if not (out := in_flight.get(n, 0)) or (out < limit and n in check.urgent)
        ]
        if self._throttled_until:
            nodes, throttle_ends = self._unthrottled(nodes, now)
            delay = min(delay, throttle_ends - now)
        if (availability := self._availability) is not None:
            for node in check.ready_nodes:
                # Full batches waiting for company are not a broker that cannot take them.
                took_request = node in nodes or in_flight.get(node, 0) < limit
                availability.polled(node, now, took_request=took_request)
                if not took_request:  # wake when its timeout runs out, to say so in time
                    delay = min(delay, availability.ms_until_unavailable(node, now))
        drained = accumulator.drain(check, nodes, self._settings.max_request_size, idempotence)
        if transactions is not None:  # the partitions the drain found outside the transaction
            transactions.add_partitions_soon(
                requests.start_soon, anyio.current_time() + accumulator.delivery_timeout_ms / 1000
            )
        metrics = self.metrics
        for node, batches in drained.items():
            self._in_flight_requests[node] = self._in_flight_requests.get(node, 0) + 1
            records = 0
            for batch in batches:
                self._in_flight_batches[batch] = None
                records += batch.record_count
                metrics.batch_sent(
                    batch.topic,
                    len(batch.payload),  # type: ignore[arg-type]  # drained: closed
                    BATCH_HEADER_SIZE + batch.records_size,
                    batch.record_count,
                    batch.max_record_size,
                    now - batch.created_ms,
                    now,
                )
            metrics.request_sent(records, now)
            waiting = self._awaiting_connection.get(node)
            if waiting is not None:  # behind the requests already waiting: keep the order
                waiting.append(batches)
            elif (connection := self._open_connection(node)) is not None:
                self._produce(node, connection, batches)
            else:
                self._awaiting_connection[node] = [batches]
                requests.start_soon(self._connect_and_produce, node)
        if drained and not accumulator.drained_all_sendable:
            return 0  # a request takes one batch per partition: the next may go at once
        if self._in_flight_batches:
            oldest = min(accumulator.delivery_deadline_ms(b) for b in self._in_flight_batches)
            delay = min(delay, oldest - now)
        return delay

    def _unthrottled(self, nodes: list[int], now: float) -> tuple[list[int], float]:
        """The nodes no broker throttle holds back, and when the next throttle ends."""
        throttled = self._throttled_until
        for node, until in list(throttled.items()):
            if until <= now:
                del throttled[node]
        return [n for n in nodes if n not in throttled], min(throttled.values(), default=now)

    def _transaction_turn(self, transactions: TransactionalCalls) -> None:
        """An open transaction that can no longer commit sends nothing more: its queued
        records fail at once (Java's ``abortUndrainedBatches``)."""
        manager = transactions.manager
        if manager.state is TransactionState.ABORTABLE_ERROR and self._accumulator.has_queued:
            error = TransactionAbortedError(
                f"transactional id {manager.transactional_id!r}: the transaction failed "
                f"before this record was sent ({manager.error}); abort it"
            )
            error.__cause__ = manager.error
            self.fail_queued(error)

    def fail_queued(self, error: KafkaError) -> None:
        """Fail every batch waiting in the queues (never sent, or waiting for a retry)."""
        queued = [batch for queue in self._accumulator.queues.values() for batch in queue]
        self._accumulator.clear_queues()
        for batch in queued:
            self._fail(batch, error)

    def _expire(self, now: float) -> None:
        """Fail what has run out of delivery time: queued batches, and in-flight ones (a
        late response for those is ignored), so no future outlives its bound."""
        expired = self._accumulator.expired(now)
        for batch in self._in_flight_batches:
            if now >= self._accumulator.delivery_deadline_ms(batch):
                batch.possibly_written |= batch.state is BatchState.AWAITING_RESPONSE
                expired.append(batch)
        for batch in expired:
            self._expire_batch(batch, now)

    def _expire_batch(self, batch: ProducerBatch, now: float) -> None:
        """Fail the batch with a timeout naming its last error (if any)."""
        waited = now - batch.created_ms
        if batch.last_error is None and batch.base_sequence < 0:
            batch.last_error = self.producer_id_error  # never sent: it waited for an id
        last = f"; last error: {batch.last_error}" if batch.last_error else ""
        if batch.last_error is None:  # never answered: why did its partition not move?
            batch.last_error = self._partition_errors.get(batch.topic_partition)
            if batch.last_error is not None:
                last = f"; last error on {batch.topic_partition}: {batch.last_error}"
        error = KafkaTimeoutError(
            f"expiring {batch.record_count} record(s) for {batch.topic_partition}: "
            f"{waited:.0f} ms have passed since the batch was created "
            f"(delivery_timeout_ms={self._accumulator.delivery_timeout_ms:.0f}, "
            f"{batch.attempts} retries{last})"
        )
        error.__cause__ = batch.last_error
        self._fail(batch, error)

    # ------------------------------------------------------------------ requests

    @background_task
    async def _init_producer_id(self) -> None:
        """Get a producer id and epoch (nothing is drained before it arrives). A fatal
        answer (CLUSTER_AUTHORIZATION_FAILED, ...) stops the producer; any other error is
        retried, possibly on another broker: any broker may answer this request, so one
        broker's unexpected answer (an unknown code, a malformed frame) must not end the
        producer (Java's idempotent producer stops on any unexpected code). The records
        waiting meanwhile expire at delivery_timeout_ms, naming the error."""
        assert self._idempotence is not None
        attempts = 0
        while True:
            try:
                connection = await self._metadata.connect_to_any()
                response = await connection.send(
                    InitProducerIdRequest(
                        connection.versions.version_for(ApiKey.INIT_PRODUCER_ID),
                        transactional_id=None,
                        transaction_timeout_ms=_NO_TRANSACTION_TIMEOUT_MS,
                    )
                )
                code = int(response.error_code)  # type: ignore[union-attr]
                if code == 0:
                    self._idempotence.set_producer(
                        ProducerIdAndEpoch(
                            int(response.producer_id),  # type: ignore[union-attr]
                            int(response.producer_epoch),  # type: ignore[union-attr]
                        )
                    )
                    self.producer_id_error = None
                    self.wakeup()
                    return
                raise error_for_code(code, f"InitProducerId on broker {connection.address}")
            except KafkaError as exc:
                if isinstance(exc, (*FATAL_ERRORS, InvalidProducerEpochError)):
                    self._idempotence.fatal()
                    self.fatal_error = exc
                    self.wakeup()
                    return
                if exc.retriable or self.producer_id_error is not None:
                    logger.debug("InitProducerId failed, retrying: %s", exc)
                else:  # unexpected: warn once in a row, as it may go on
                    logger.warning("InitProducerId failed, retrying: %s", exc)
                self.producer_id_error = exc
            await anyio.sleep(self._accumulator.retry_backoff_ms(attempts) / 1000)
            attempts += 1

    def _open_connection(self, node: int) -> BrokerConnection | None:
        broker = self._metadata.snapshot.brokers.get(node)
        return None if broker is None else self._pool.connection_if_open(broker.address)

    @background_task
    async def _connect_and_produce(self, node: int) -> None:
        """Open the connection to ``node``, then write the requests that waited for it,
        in the order they were drained (a request drained meanwhile queues behind them:
        written first, it would put a partition's later batch ahead of an earlier one)."""
        try:
            connection = await self._connect(node)
        except KafkaError as exc:
            for batches in self._awaiting_connection.pop(node):
                self._request_failed(batches, exc)
                self._request_ended(node)
            return
        except BaseException:  # cancelled: the producer is stopping
            for _ in self._awaiting_connection.pop(node):
                self._request_ended(node)
            raise
        for batches in self._awaiting_connection.pop(node):
            # A batch that expired while the connection opened has failed: never send it.
            batches = [b for b in batches if b in self._in_flight_batches]
            if batches:
                self._produce(node, connection, batches)
            else:
                self._request_ended(node)

    async def _connect(self, node: int) -> BrokerConnection:
        broker = self._metadata.snapshot.brokers.get(node)
        if broker is None:
            raise KafkaConnectionError(f"broker {node} is no longer in the cluster metadata")
        return await self._pool.get(broker.address)

    def _produce(
        self, node: int, connection: BrokerConnection, batches: list[ProducerBatch]
    ) -> None:
        """Write one Produce request now; :meth:`_produced` hears how it ended."""
        topic_data: dict[str, dict[int, bytes]] = {}
        for batch in batches:
            assert batch.payload is not None
            topic_data.setdefault(batch.topic, {})[batch.partition] = batch.payload
            batch.move_to(BatchState.AWAITING_RESPONSE)
        settings = self._settings
        try:
            request = ProduceRequest(
                # v12 only for transaction version 2 (KIP-890 part 2); may raise: typed
                connection.versions.version_for_transactions(
                    ApiKey.PRODUCE, 0 if self.transactions is None else self.transactions.version
                ),
                acks=settings.acks,
                timeout_ms=settings.request_timeout_ms,
                topic_data=topic_data,
                transactional_id=settings.transactional_id,
            )
            connection.submit(
                request,
                functools.partial(self._produced, node, batches, self._clock()),
                expect_response=settings.acks != 0,
            )
        except KafkaError as exc:  # closed since looked up, or no Produce version: not written
            for batch in batches:
                batch.move_to(BatchState.SENDING)
            self._request_failed(batches, exc)
            self._request_ended(node)

    def _produced(
        self,
        node: int,
        batches: list[ProducerBatch],
        written_ms: float,
        response: ProduceResponse | None,
        error: KafkaError | None,
    ) -> None:
        """The connection's report on a Produce request: its response, None for acks=0
        once written, or the error that failed it."""
        try:
            if response is not None:
                self._answered(node, written_ms, response)
            if error is not None:
                # Sent, or perhaps sent: the broker may have stored these batches.
                for batch in batches:
                    batch.possibly_written = True
                self._request_failed(batches, error)
            else:
                self._handle_response(node, batches, response)
        except BaseException as exc:
            # Called from the event loop (a transport's callback): a bug, or user code
            # (an interceptor) raising past every guard, must stop the producer loudly
            # rather than end in the loop's exception handler, which would only close the
            # connection.
            self._crash = exc
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._request_ended(node)

    def _answered(self, node: int, written_ms: float, response: ProduceResponse | None) -> None:
        """Record the request's latency, and honour the broker's throttle time: nothing
        more goes to it until the time is over (KIP-219: a broker over a client's quota
        answers at once and mutes the connection meanwhile)."""
        throttle_ms = 0 if response is None else response.throttle_time_ms
        now = self._clock()
        self.metrics.produce_answered(now - written_ms, throttle_ms, now)
        if throttle_ms > 0:
            until = now + throttle_ms
            if until > self._throttled_until.get(node, 0.0):
                self._throttled_until[node] = until
            logger.debug("broker %d throttles this client for %.0f ms", node, throttle_ms)

    def _request_ended(self, node: int) -> None:
        self._in_flight_requests[node] -= 1
        self.wakeup()

    def _request_failed(self, batches: list[ProducerBatch], error: KafkaError) -> None:
        if isinstance(error, KafkaConnectionError):
            self._metadata.request_update()
        now = self._clock()
        for batch in batches:
            self._settle(batch, error, now)

    def _handle_response(
        self, node: int, batches: list[ProducerBatch], response: ProduceResponse | None
    ) -> None:
        if response is None:  # acks=0: written to the socket is all we will ever know
            for batch in batches:
                self._complete(batch, -1, -1)
            return
        results = {
            (topic.name, p.index): p
            for topic in response.responses
            for p in topic.partition_responses
        }
        now = self._clock()
        for batch in batches:
            result = results.get((batch.topic, batch.partition))
            if result is None:
                error: KafkaError | None = KafkaConnectionError(
                    f"broker {node} answered without a result for {batch.topic_partition}"
                )
                self._settle(batch, error, now)
                continue
            code = result.error_code
            if code == 0:
                error = None
            else:
                message = result.error_message
                error = error_for_code(
                    code,
                    f"producing to {batch.topic_partition} on broker {node}"
                    + (f": {message}" if message else ""),
                )
            self._settle(
                batch,
                error,
                now,
                answer=result,
                log_start_offset=result.log_start_offset,
                leader_known=isinstance(error, NotLeaderOrFollowerError)
                and self._apply_leader_hint(batch, result, response),
            )

    def _apply_leader_hint(
        self, batch: ProducerBatch, result: PartitionProduceResponse, response: ProduceResponse
    ) -> bool:
        """Use the new leader a v10+ response names (KIP-951), instead of waiting for a
        metadata refresh. True if the snapshot now has it."""
        leader = result.current_leader
        if leader.leader_id < 0:
            return False
        endpoints = {e.node_id: (e.host, e.port, e.rack) for e in response.node_endpoints}
        return self._metadata.apply_leader_hint(
            batch.topic,
            batch.partition,
            leader.leader_id,
            leader.leader_epoch,
            endpoints.get(leader.leader_id),
        )

    # ------------------------------------------------------------------ outcomes

    def _settle(
        self,
        batch: ProducerBatch,
        error: KafkaError | None,
        now: float,
        *,
        answer: PartitionProduceResponse | None = None,
        log_start_offset: int = -1,
        leader_known: bool = False,
    ) -> None:
        """Carry out ``_outcome.decide``'s verdict on ``batch`` after ``error`` (None:
        success; ``answer``: the partition's result, for its offset)."""
        if batch not in self._in_flight_batches:
            return  # already expired (and failed) while its request was out
        if isinstance(error, MAYBE_APPENDED):
            batch.possibly_written = True
        idempotence = self._idempotence
        verdict = None
        if error is not None and idempotence is not None and batch.base_sequence >= 0:
            verdict = idempotence.judge(batch, error, log_start_offset)
            if verdict.bump_epoch and idempotence.transactional:
                # A transaction cannot start its sequences over: the batch fails, the
                # transaction must be aborted, and the epoch moves on after (KIP-360).
                idempotence.epoch_bump_due = True
                verdict = SequenceVerdict(False)
        decision = decide(
            error,
            BatchFacts(
                batch.record_count,
                batch.attempts,
                now < self._accumulator.delivery_deadline_ms(batch),
                batch.sequence_reset,
            ),
            retries=self._settings.retries,
            sequence_verdict=verdict,
            leader_known=leader_known,
        )
        outcome = decision.outcome
        if outcome is Outcome.COMPLETE:
            if answer is None:  # acks=0
                self._complete(batch, -1, -1)
            else:
                self._complete(batch, answer.base_offset, answer.log_append_time_ms)
            return
        assert error is not None
        batch.last_error = error
        self._partition_errors[batch.topic_partition] = error
        if decision.bump_epoch:
            assert idempotence is not None
            if verdict is not None and verdict.lost_acknowledged:
                logger.warning(
                    "%s: the broker expected another sequence than %d, which follows the "
                    "last acknowledged batch: it lost acknowledged records (e.g. an unclean "
                    "leader election); bumping the epoch",
                    batch.topic_partition,
                    batch.base_sequence,
                )
            idempotence.request_bump(batch)
        if outcome is Outcome.FATAL:
            logger.error("the producer cannot go on: %s", error)
            if idempotence is not None:
                idempotence.fatal()
            if self.transactions is not None:
                self.transactions.manager.fatal(error)
            self.fatal_error = error
            self._fail(batch, error)
        elif outcome is Outcome.SPLIT:
            self._split(batch)
        elif outcome in (Outcome.RETRY, Outcome.REFRESH_METADATA_AND_RETRY):
            if outcome is Outcome.REFRESH_METADATA_AND_RETRY:
                self._metadata.request_update()
            logger.debug("retry %d of %s: %s", batch.attempts + 1, batch.topic_partition, error)
            del self._in_flight_batches[batch]
            self.metrics.records_retried(batch.topic, batch.record_count, now)
            self._accumulator.reenqueue(batch, now, soon=decision.soon)
        elif outcome is Outcome.EXPIRE:
            self._expire_batch(batch, now)
        else:
            self._fail(batch, error)

    def _split(self, batch: ProducerBatch) -> None:
        """MESSAGE_TOO_LARGE for several records: send them in two halves (Java splits too;
        a single record too large fails). The halves keep the batch's sequence range."""
        del self._in_flight_batches[batch]
        halves = self._accumulator.split(batch)
        if self._idempotence is not None:
            self._idempotence.split(batch, halves)
        self.metrics.batch_split(self._clock())
        logger.info(
            "%s: the broker refused a batch of %d records as too large; splitting it in two",
            batch.topic_partition,
            batch.record_count,
        )

    def _complete(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        if batch not in self._in_flight_batches:
            return  # already expired (and failed) while its request was out
        del self._in_flight_batches[batch]
        if self._partition_errors:
            self._partition_errors.pop(batch.topic_partition, None)
        if self._idempotence is not None:
            self._idempotence.acknowledged(batch, base_offset)
        batch.complete(base_offset, log_append_time, self._interceptors)
        self._finished(batch)

    def _fail(self, batch: ProducerBatch, error: BaseException) -> None:
        self._in_flight_batches.pop(batch, None)
        if self._idempotence is not None:
            self._idempotence.failed(batch)
        if self.transactions is not None:
            self.transactions.manager.record_failed(error)
        self.metrics.records_failed(batch.topic, batch.record_count, self._clock())
        batch.fail(error, self._interceptors)
        self._finished(batch)

    def _finished(self, batch: ProducerBatch) -> None:
        self._accumulator.finished(batch)
        self._memory.release(batch.reserved)

    def fail_everything(self, error: BaseException) -> None:
        """Fail every batch not yet complete: queued, in flight, or caught half-way (close
        timed out, or the producer died)."""
        self._accumulator.clear_queues()
        for batch in list(self._accumulator.incomplete):
            if not batch.done:
                self._fail(batch, error)
            else:  # its futures are complete; it only missed its bookkeeping
                self._finished(batch)
