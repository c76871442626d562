"""The transactional producer's calls, with their I/O: initialize (InitProducerId with the
transactional id), add partitions (for the sender), send offsets, commit, abort.

``_transactions.TransactionManager`` decides what each state allows; this module does the
requests (through ``_coordinator.CoordinatorClient``) and moves the manager along. Every
call is bounded by its deadline (``max_block_ms``).

Two versions of the transaction protocol, chosen at start from the cluster's
``transaction.version`` feature (as the transaction coordinator's broker reports it in
ApiVersions; Java's producer reads it the same way):

* version 2 (KIP-890 part 2, the default of new Kafka 4 clusters): a partition joins the
  transaction with its first batch (Produce v12), the group's offsets with TxnOffsetCommit
  v5, and every EndTxn (v5) answers with the next epoch, which the producer takes, its
  sequences starting over: a zombie's late batch can no longer land in the next
  transaction;
* version 1 (older clusters, or ``transaction.version`` 0/1): partitions join with
  AddPartitionsToTxn before their first batch, the group's offsets with AddOffsetsToTxn,
  the epoch stays from one transaction to the next, and after an abort that left sequences
  in doubt InitProducerId with the current producer id and epoch moves to a new one
  (KIP-360).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import anyio

from asyncproducer._coordinator import GROUP, TRANSACTION, CoordinatorClient
from asyncproducer._idempotence import IdempotenceState, ProducerIdAndEpoch
from asyncproducer._transactions import (
    Action,
    TopicPartitionKey,
    TransactionManager,
    TransactionState,
    TxnApi,
    coordinator_action,
)
from asyncproducer._types import ConsumerGroupMetadata
from asyncproducer.errors import (
    KafkaError,
    KafkaTimeoutError,
    TransactionAbortedError,
    error_for_code,
    fresh_copy,
)
from asyncproducer.protocol.messages import (
    add_offsets_to_txn_request,
    add_partitions_to_txn_request,
    added_partitions_of,
    committed_offsets_of,
    end_txn_request,
    txn_offset_commit_request,
)
from asyncproducer.protocol.requests import InitProducerIdRequest
from asyncproducer.protocol.versions import (
    TRANSACTION_VERSION_FEATURE,
    ApiKey,
    NegotiatedVersions,
)

logger = logging.getLogger("asyncproducer.transactions")

_OPERATION_NOT_ATTEMPTED = 55
"""What the coordinator answers for the other partitions of a request one partition failed."""


class TransactionalCalls:
    def __init__(
        self,
        manager: TransactionManager,
        idempotence: IdempotenceState,
        coordinators: CoordinatorClient,
        *,
        fail_queued: Callable[[KafkaError], None],
        wait_for_batches: Callable[[], Awaitable[None]],
        wakeup: Callable[[], None],
    ) -> None:
        self.manager = manager
        self._idempotence = idempotence
        self._coordinators = coordinators
        self._fail_queued = fail_queued
        """Fail every batch not yet sent (the sender's ``fail_queued``)."""
        self._wait_for_batches = wait_for_batches
        """Send everything now and wait until no batch is incomplete (a flush)."""
        self._wakeup = wakeup
        self._adding: anyio.Event | None = None
        """Set when the AddPartitionsToTxn request out now is answered (None: none is)."""
        self.version = 0
        """The transaction protocol version in use (see the module docstring)."""

    @property
    def _id(self) -> str:
        return self.manager.transactional_id

    def _producer(self) -> ProducerIdAndEpoch:
        producer = self._idempotence.producer
        assert producer is not None, "no producer id before initialize()"
        return producer

    async def _call(
        self,
        api: TxnApi,
        request: Callable[[NegotiatedVersions], Any],
        outcome: Callable[[Any], Any],
        deadline: float,
        *,
        key_type: int = TRANSACTION,
        key: str | None = None,
    ) -> Any:
        """A coordinator call; an error that ends it moves the manager to an abortable or
        a fatal error, as ``coordinator_action`` says, before it is raised (a timeout
        leaves the state to the caller)."""
        try:
            return await self._coordinators.call(
                api, key_type, self._id if key is None else key, request, outcome, deadline
            )
        except KafkaTimeoutError:
            raise
        except KafkaError as exc:
            if coordinator_action(api, exc) is Action.FATAL:
                self.manager.fatal(exc)
                self._idempotence.fatal()
            else:
                self.manager.abortable(exc)
            raise

    # ------------------------------------------------------------------ initialize

    async def initialize(self, deadline: float) -> None:
        """InitProducerId with the transactional id: fences older instances of it (their
        open transaction is aborted by the coordinator) and gives this one its producer id
        and epoch."""
        self.manager.initializing()
        self._idempotence.initializing()
        try:
            producer = await self._init_producer_id(deadline, -1, -1)
        except KafkaError as exc:
            self.manager.initialization_failed(exc)
            raise
        self.manager.implicit_partitions = self.version >= 2
        self._idempotence.set_producer(producer)
        self.manager.initialized()
        logger.info(
            "transactional id %r: producer id %s, transaction version %d",
            self._id,
            producer,
            self.version,
        )

    async def _init_producer_id(
        self, deadline: float, producer_id: int, epoch: int
    ) -> ProducerIdAndEpoch:
        def request(versions: NegotiatedVersions) -> Any:
            if producer_id < 0:  # the first: the coordinator's broker tells the version
                self.version = min(
                    2, versions.finalized_features.get(TRANSACTION_VERSION_FEATURE, 0)
                )
            return InitProducerIdRequest(
                versions.version_for(ApiKey.INIT_PRODUCER_ID),
                transactional_id=self._id,
                transaction_timeout_ms=self.manager.timeout_ms,
                producer_id=producer_id,
                producer_epoch=epoch,
            )

        def outcome(response: Any) -> ProducerIdAndEpoch:
            _raise_for(
                int(response.error_code), f"InitProducerId for transactional id {self._id!r}"
            )
            return ProducerIdAndEpoch(int(response.producer_id), int(response.producer_epoch))

        return await self._coordinators.call(
            TxnApi.INIT_PRODUCER_ID, TRANSACTION, self._id, request, outcome, deadline
        )

    # ------------------------------------------------------------------ partitions

    def add_partitions_soon(
        self, start: Callable[[Callable[[], Coroutine[Any, Any, None]]], object], deadline: float
    ) -> None:
        """The sender's turn: ask the coordinator for the partitions its drain found new,
        in one request, unless one is already out (``start`` runs it as a task)."""
        if self._adding is not None:
            return
        partitions = self.manager.take_new_partitions()
        if partitions:
            done = self._adding = anyio.Event()

            async def add() -> None:
                try:
                    await self._add_partitions(partitions, deadline)
                finally:
                    self._adding = None
                    done.set()
                    self._wakeup()

            start(add)

    async def _add_partitions(self, partitions: list[TopicPartitionKey], deadline: float) -> None:
        producer = self._producer()

        def request(versions: NegotiatedVersions) -> Any:
            return add_partitions_to_txn_request(
                versions.version_for(ApiKey.ADD_PARTITIONS_TO_TXN),
                transactional_id=self._id,
                producer_id=producer.producer_id,
                producer_epoch=producer.epoch,
                partitions=partitions,
            )

        def outcome(response: Any) -> None:
            codes = added_partitions_of(response)
            failed = {key: code for key, code in codes.items() if code}
            if failed:
                # The partition that failed, not those the coordinator did not try.
                key, code = min(
                    failed.items(), key=lambda item: item[1] == _OPERATION_NOT_ATTEMPTED
                )
                raise error_for_code(
                    code, f"AddPartitionsToTxn of {key[0]}-{key[1]} for {self._id!r}"
                )

        try:
            await self._call(TxnApi.ADD_PARTITIONS, request, outcome, deadline)
        except KafkaError as exc:
            self.manager.partitions_not_added(partitions, retry=False)
            self.manager.abortable(exc)  # a timeout (an error answer already moved it)
            logger.warning("transactional id %r: partitions not added: %s", self._id, exc)
            return
        self.manager.partitions_added(partitions)
        logger.debug("transactional id %r: added %s", self._id, partitions)

    # ------------------------------------------------------------------ offsets

    async def send_offsets(
        self,
        offsets: Mapping[TopicPartitionKey, tuple[int, int, str | None]],
        group: ConsumerGroupMetadata,
        deadline: float,
    ) -> None:
        """The consumer group's offsets join the transaction: committed with it, or not
        at all (version 1: AddOffsetsToTxn to the transaction coordinator first; then
        TxnOffsetCommit to the group coordinator)."""
        self.manager.check_send()
        if not offsets:
            return
        producer = self._producer()
        if self.version < 2:  # version 2: TxnOffsetCommit v5 adds the group's offsets itself
            await self._add_offsets(producer, group, deadline)
        else:
            self.manager.offsets_added()

        def commit_request(versions: NegotiatedVersions) -> Any:
            version = versions.version_for_transactions(ApiKey.TXN_OFFSET_COMMIT, self.version)
            return txn_offset_commit_request(
                version,
                transactional_id=self._id,
                producer_id=producer.producer_id,
                producer_epoch=producer.epoch,
                group_id=group.group_id,
                generation_id=group.generation_id,
                member_id=group.member_id,
                group_instance_id=group.group_instance_id,
                offsets=offsets,
            )

        def committed(response: Any) -> None:
            failed = {key: code for key, code in committed_offsets_of(response).items() if code}
            if failed:
                (topic, partition), code = next(iter(failed.items()))
                raise error_for_code(
                    code,
                    f"TxnOffsetCommit of {topic}-{partition} for group {group.group_id!r}",
                )

        await self._call(
            TxnApi.TXN_OFFSET_COMMIT,
            commit_request,
            committed,
            deadline,
            key_type=GROUP,
            key=group.group_id,
        )

    async def _add_offsets(
        self, producer: ProducerIdAndEpoch, group: ConsumerGroupMetadata, deadline: float
    ) -> None:
        def add_request(versions: NegotiatedVersions) -> Any:
            return add_offsets_to_txn_request(
                versions.version_for(ApiKey.ADD_OFFSETS_TO_TXN),
                transactional_id=self._id,
                producer_id=producer.producer_id,
                producer_epoch=producer.epoch,
                group_id=group.group_id,
            )

        def added(response: Any) -> None:
            _raise_for(int(response.error_code), f"AddOffsetsToTxn of group {group.group_id!r}")

        await self._call(TxnApi.ADD_OFFSETS, add_request, added, deadline)
        self.manager.offsets_added()

    # ------------------------------------------------------------------ end

    async def commit(self, deadline: float) -> None:
        """Send every record of the transaction, then commit it. A record that failed
        fails the commit with its error (the transaction must then be aborted)."""
        self.manager.begin_commit()
        await self._settle_batches(deadline)
        if self.manager.state is TransactionState.ABORTABLE_ERROR:  # a record failed
            raise self.manager.abortable_error()
        if self.manager.state is TransactionState.FATAL_ERROR:
            assert self.manager.error is not None
            raise fresh_copy(self.manager.error)
        await self._end(True, deadline)

    async def abort(self, deadline: float) -> None:
        """Drop the records not sent yet, wait for those in flight, abort the transaction;
        then, if sequences were left in doubt, move to a new epoch."""
        self.manager.begin_abort()
        self._fail_queued(TransactionAbortedError(f"transactional id {self._id!r}: aborted"))
        await self._settle_batches(deadline)
        await self._end(False, deadline)

    async def _settle_batches(self, deadline: float) -> None:
        """Wait for every batch, and for the AddPartitionsToTxn request out (its answer
        must not land after the transaction ended)."""
        with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
            await self._wait_for_batches()
            while self._adding is not None:
                await self._adding.wait()
            return
        raise KafkaTimeoutError(
            f"transactional id {self._id!r}: the transaction's records were not all sent "
            "within max_block_ms; call the same method again to go on waiting"
        )

    async def _end(self, commit: bool, deadline: float) -> None:
        if self.manager.started:
            producer = self._producer()

            def request(versions: NegotiatedVersions) -> Any:
                return end_txn_request(
                    versions.version_for_transactions(ApiKey.END_TXN, self.version),
                    transactional_id=self._id,
                    producer_id=producer.producer_id,
                    producer_epoch=producer.epoch,
                    commit=commit,
                )

            def ended(response: Any) -> ProducerIdAndEpoch | None:
                word = "commit" if commit else "abort"
                _raise_for(int(response.error_code), f"EndTxn ({word}) of {self._id!r}")
                next_id = int(getattr(response, "producer_id", -1))  # v5: the next epoch
                return (
                    None
                    if next_id < 0
                    else ProducerIdAndEpoch(next_id, int(response.producer_epoch))
                )

            following = await self._call(TxnApi.END_TXN, request, ended, deadline)
            if following is not None:
                self._idempotence.restart(following)
                logger.debug("transactional id %r: now at %s", self._id, following)
        self._idempotence.resolve_sequences()
        # Version 2 moved to a new epoch with the EndTxn (when the transaction started).
        bump = self.version < 2 and self._idempotence.epoch_bump_due
        self.manager.ended(epoch_bump_due=bump)
        if bump:
            await self._bump_epoch(deadline)
        self._wakeup()

    async def _bump_epoch(self, deadline: float) -> None:
        """InitProducerId with the current producer id and epoch: the coordinator moves
        it to the next epoch, and every partition's sequences start over (KIP-360). If it
        fails (a timeout too), the producer cannot go on: its sequences are in doubt."""
        current = self._producer()
        try:
            producer = await self._init_producer_id(deadline, current.producer_id, current.epoch)
        except KafkaError as exc:
            self.manager.fatal(exc)
            self._idempotence.fatal()
            raise
        self._idempotence.restart(producer)
        self.manager.initialized()
        logger.info("transactional id %r: now at %s", self._id, producer)


def _raise_for(code: int, what: str) -> None:
    if code:
        raise error_for_code(code, what)
