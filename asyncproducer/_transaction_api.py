"""``Producer``'s transactional methods (Java's names, in snake_case): begin, commit and
abort a transaction, ``transaction()`` around a block, and the consumer offsets that
commit with it. The rules are ``_transactions``' state table; the requests are
``_transactional``'s. Each call waits at most ``max_block_ms``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from asyncproducer._group_offsets import offsets_to_commit, read_group_metadata
from asyncproducer._lifecycle import State
from asyncproducer._transactions import TransactionState
from asyncproducer.errors import KafkaError, TransactionStateError

logger = logging.getLogger("asyncproducer.transactions")

if TYPE_CHECKING:
    from asyncproducer._accumulator import RecordAccumulator
    from asyncproducer._batch import ProducerBatch
    from asyncproducer._sender import Sender
    from asyncproducer._transactional import TransactionalCalls


_OPEN = frozenset(
    {TransactionState.IN_TRANSACTION, TransactionState.ABORTABLE_ERROR, TransactionState.ABORTING}
)
"""A transaction is open (or its abort is under way): an abort ends it."""


class TransactionAPI:
    """A base of :class:`~asyncproducer.producer.Producer`."""

    # Set by Producer._setup().
    _state: State
    _transactions: TransactionalCalls | None
    _accumulator: RecordAccumulator
    _sender: Sender
    _max_block_s: float

    def _check_running(self) -> None:
        raise NotImplementedError  # Producer's

    async def _wait_for(self, batches: list[ProducerBatch]) -> None:
        raise NotImplementedError  # SendPath's

    async def start(self) -> None:
        raise NotImplementedError  # Producer's

    def _calls(self) -> TransactionalCalls:
        if self._transactions is None:
            raise TransactionStateError(
                "transactional calls need a transactional producer: "
                "Producer(..., transactional_id='a-name-unique-to-this-instance')"
            )
        self._check_running()
        return self._transactions

    def _deadline(self) -> float:
        return anyio.current_time() + self._max_block_s

    async def init_transactions(self) -> None:
        """Java's ``initTransactions()``: ``start()`` does it (finding the transaction
        coordinator, fencing older instances of the transactional id); this starts the
        producer if it is not started, and does nothing if it is."""
        if self._transactions is None:
            self._calls()  # raises: not transactional
        if self._state is State.NEW:
            await self.start()
        else:
            self._check_running()

    async def begin_transaction(self) -> None:
        """Open a transaction: ``send()`` is allowed until commit or abort. No request."""
        self._calls().manager.begin()

    async def commit_transaction(self) -> None:
        """Send every record of the transaction, then commit it: its records (and the
        offsets given to :meth:`send_offsets_to_transaction`) become visible to
        read_committed consumers together. If a record failed, this raises its error and
        the transaction must be aborted. A KafkaTimeoutError (``max_block_ms``) leaves the
        commit under way: call this again to go on waiting."""
        await self._calls().commit(self._deadline())

    async def abort_transaction(self) -> None:
        """Abort the open transaction (or the one that failed): records not sent yet fail
        with TransactionAbortedError, those sent are never shown to read_committed
        consumers."""
        await self._calls().abort(self._deadline())

    async def send_offsets_to_transaction(
        self, offsets: Mapping[Any, Any] | Iterable[Any], group_metadata: Any
    ) -> None:
        """Commit a consumer group's positions with the open transaction (consume ->
        process -> produce exactly once). ``offsets`` maps ``TopicPartition`` to the next
        offset to read (an int, or an ``OffsetAndMetadata``; aiokafka's types and
        confluent-kafka's list of ``TopicPartition`` are read too). ``group_metadata`` is
        the group id, a ``ConsumerGroupMetadata`` (generation and member id let the group
        coordinator fence a zombie consumer, KIP-447), or confluent-kafka's
        ``consumer.consumer_group_metadata()``."""
        calls = self._calls()
        positions = offsets_to_commit(offsets)
        group = read_group_metadata(group_metadata)
        await calls.send_offsets(positions, group, self._deadline())

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``async with producer.transaction():`` begins a transaction, commits it when
        the block ends, and aborts it when the block raises or is cancelled (never
        commits then); the abort waits at most ``max_block_ms``, shielded from the
        cancellation."""
        calls = self._calls()
        await self.begin_transaction()
        try:
            yield
        except BaseException:
            if calls.manager.state in _OPEN:
                with anyio.CancelScope(shield=True):
                    await calls.abort(self._deadline())
            raise
        await self.commit_transaction()

    async def _abort_open_transaction(self) -> None:
        """close() with a transaction open aborts it (as Java's producer does), rather
        than leave it to the coordinator's timeout, which would hold read_committed
        consumers back until then."""
        calls = self._transactions
        if calls is None or calls.manager.state not in _OPEN or self._state is State.FAILED:
            return  # (a failed producer's sender and connections are gone)
        logger.info(
            "transactional id %r: closing: aborting the open transaction",
            calls.manager.transactional_id,
        )
        try:
            await calls.abort(self._deadline())
        except KafkaError as exc:
            logger.warning(
                "transactional id %r: the open transaction could not be aborted while "
                "closing (the coordinator aborts it after transaction_timeout_ms): %s",
                calls.manager.transactional_id,
                exc,
            )

    async def _send_everything(self) -> None:
        """Send every batch now (as a flush) and wait until none is incomplete."""
        self._accumulator.begin_flush()
        self._sender.wakeup()
        try:
            while pending := list(self._accumulator.incomplete):
                await self._wait_for(pending)
        finally:
            self._accumulator.end_flush()
