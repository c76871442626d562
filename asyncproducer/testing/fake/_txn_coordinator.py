"""The fake's transaction coordinator (and the transactional half of its group coordinator).

Decisions follow Apache Kafka 4.x's ``TransactionCoordinator`` (``handleInitProducerId``,
``handleAddPartitionsToTransaction``, ``handleVerifyPartitionsInTransaction``,
``endTransaction`` for transaction versions 1 and 2, ``abortTimedOutTransactions``) and
``TransactionMetadata``; each method returns Kafka's internal error (PRODUCER_FENCED, ...)
and the handlers map it to what the request's version can carry.

Differences, on purpose:

* Commit and abort complete at once: the markers are written, pending offsets applied and
  the state is ``Complete*`` before the EndTxn answer goes out. A test that wants the
  CONCURRENT_TRANSACTIONS a client sees while Kafka is still writing markers arms it with
  ``FakeCluster.fail_next(api, 51)``.
* One coordinator state for the whole cluster; which broker may answer is decided by
  :mod:`._coordinators` (NOT_COORDINATOR elsewhere).
* Timed-out transactions are aborted lazily (:meth:`expire`), before each request the fake
  serves and each inspection, rather than every ``transaction.abort.timed.out.transaction.
  cleanup.interval.ms`` (10 s in Kafka): deterministic for tests, and nobody can observe
  the difference except by waiting without sending anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from asyncproducer.testing.fake._coordinators import (
    CONSUMER_OFFSETS_TOPIC,
    GROUP,
    TRANSACTION,
    partition_for,
)
from asyncproducer.testing.fake._transactions import (
    EPOCH_EXHAUSTED,
    PendingOffset,
    TransactionMetadata,
    TxnState,
)
from asyncproducer.testing.fake._txn_log import write_marker

if TYPE_CHECKING:
    from asyncproducer.testing.fake.cluster import ClusterState

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_ENOUGH_REPLICAS = 19
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_REQUEST = 42
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
TRANSACTION_ABORTABLE = 120

DEFAULT_MAX_TIMEOUT_MS = 900_000  # Kafka's transaction.max.timeout.ms default

TopicPartition = tuple[str, int]
_PREPARING = (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)
_COMPLETE = (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


class TransactionCoordinator:
    """Transaction metadata by transactional id, and offsets committed by transactions."""

    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.transactions: dict[str, TransactionMetadata] = {}
        self.committed: dict[str, dict[TopicPartition, PendingOffset]] = {}

    # ------------------------------------------------------------------ InitProducerId

    def init_producer_id(
        self, transactional_id: str, timeout_ms: int, expected: tuple[int, int] | None
    ) -> tuple[int, int, int]:
        """(error, producer id, epoch). ``expected``: the (producer id, epoch) a v3+
        request names to bump (KIP-360), None for a fresh start."""
        if not transactional_id:
            return INVALID_REQUEST, -1, -1
        if not 0 < timeout_ms <= self.cluster.transaction_max_timeout_ms:
            return INVALID_TRANSACTION_TIMEOUT, -1, -1
        meta = self.transactions.get(transactional_id)
        if meta is None:
            meta = TransactionMetadata(transactional_id, self.cluster.new_producer_id())
            self.transactions[transactional_id] = meta
        if expected is not None and not _may_name(meta, *expected):
            return PRODUCER_FENCED, -1, -1
        if meta.state in _PREPARING:
            return CONCURRENT_TRANSACTIONS, -1, -1
        if meta.state is TxnState.ONGOING:
            # Kafka fences the open transaction's producer (epoch + 1), aborts it, and
            # answers CONCURRENT_TRANSACTIONS: the client retries, and the retry bumps the
            # epoch again, so the new instance never shares an epoch with the old one.
            self._fence_and_abort(meta)
            return CONCURRENT_TRANSACTIONS, -1, -1
        code = self._bump_for_init(meta, expected)
        if code:
            return code, -1, -1
        meta.timeout_ms = timeout_ms
        meta.transition(TxnState.EMPTY)
        meta.clear()
        self._publish_epoch(meta)
        return NONE, meta.producer_id, meta.producer_epoch

    def _bump_for_init(self, meta: TransactionMetadata, expected: tuple[int, int] | None) -> int:
        """Kafka's ``prepareIncrementProducerEpoch`` / ``prepareProducerIdRotation``."""
        expected_epoch = None if expected is None else expected[1]
        epoch = meta.producer_epoch
        if epoch >= EPOCH_EXHAUSTED and expected_epoch in (None, epoch):
            meta.previous_producer_id = meta.producer_id
            meta.producer_id = self.cluster.new_producer_id()
            meta.last_producer_epoch = epoch if expected is not None else -1
            meta.producer_epoch = 0
        elif expected_epoch is None:
            meta.producer_epoch, meta.last_producer_epoch = epoch + 1, -1
        elif epoch == -1 or expected_epoch == epoch:
            meta.producer_epoch, meta.last_producer_epoch = epoch + 1, epoch
        elif expected_epoch == meta.last_producer_epoch:
            pass  # a retry of a bump that succeeded: the same answer again
        else:
            return PRODUCER_FENCED
        return NONE

    # ------------------------------------------------------------------ partitions

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> int:
        """AddPartitionsToTxn (and the implicit add of Produce v12+ / TxnOffsetCommit v5)."""
        meta, code = self._owned(transactional_id, producer_id, epoch)
        if meta is None:
            return code
        if meta.state in _PREPARING:
            return CONCURRENT_TRANSACTIONS
        added = set(partitions)
        if meta.state is not TxnState.ONGOING:
            meta.started_ms = self.cluster.now_ms()
        meta.transition(TxnState.ONGOING)
        meta.partitions |= added
        return NONE

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> dict[TopicPartition, int]:
        """KIP-890 part 1: is each partition in the open transaction? (A leader asks
        before appending a transactional batch; Kafka's
        ``handleVerifyPartitionsInTransaction``.)"""
        wanted = list(partitions)
        meta, code = self._owned(transactional_id, producer_id, epoch)
        if meta is None:
            return dict.fromkeys(wanted, code)
        if meta.state in _PREPARING:
            return dict.fromkeys(wanted, CONCURRENT_TRANSACTIONS)
        return {tp: NONE if tp in meta.partitions else TRANSACTION_ABORTABLE for tp in wanted}

    def offsets_partition(self, group_id: str) -> TopicPartition:
        return CONSUMER_OFFSETS_TOPIC, partition_for(group_id, GROUP)

    # ------------------------------------------------------------------ offsets

    def stage_offsets(
        self, transactional_id: str, group_id: str, offsets: Mapping[TopicPartition, PendingOffset]
    ) -> None:
        """Offsets of a TxnOffsetCommit the caller verified: pending until EndTxn."""
        meta = self.transactions[transactional_id]
        meta.pending_offsets.setdefault(group_id, {}).update(offsets)

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, PendingOffset]:
        return dict(self.committed.get(group_id, {}))

    # ------------------------------------------------------------------ EndTxn

    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool, *, tv2: bool
    ) -> tuple[int, int, int]:
        """(error, producer id, epoch). ``tv2``: the request is EndTxn v5+, whose client
        expects the epoch bump of transaction version 2 and reads the new id and epoch."""
        meta = self.transactions.get(transactional_id)
        if meta is None:
            return INVALID_PRODUCER_ID_MAPPING, -1, -1
        if tv2:
            return self._end_v2(meta, producer_id, epoch, commit)
        code = self._end_v1(meta, producer_id, epoch, commit)
        return code, -1, -1  # EndTxn before v5 has no id or epoch to return

    def _end_v1(self, meta: TransactionMetadata, producer_id: int, epoch: int, commit: bool) -> int:
        """Transaction version 1: the epoch stays; Complete* accepts its own retry only."""
        if meta.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING
        if epoch != meta.producer_epoch:
            return PRODUCER_FENCED
        state = meta.state
        if state is TxnState.ONGOING:
            self._complete(meta, commit, bump=False)
            return NONE
        if state in _PREPARING:
            same = (state is TxnState.PREPARE_COMMIT) == commit
            return CONCURRENT_TRANSACTIONS if same else INVALID_TXN_STATE
        if state in _COMPLETE and (state is TxnState.COMPLETE_COMMIT) == commit:
            return NONE
        return INVALID_TXN_STATE  # Empty, or the other outcome than the one completed

    def _end_v2(
        self, meta: TransactionMetadata, producer_id: int, epoch: int, commit: bool
    ) -> tuple[int, int, int]:
        """Transaction version 2 (KIP-890 part 2): every end bumps the epoch, and a retry
        is recognised by the epoch it carries being one below the coordinator's; see the
        table above Kafka's ``endTransaction``."""
        retry_on_bump = meta.producer_epoch == epoch + 1
        retry_on_overflow = (
            meta.previous_producer_id == producer_id
            and epoch == EPOCH_EXHAUSTED
            and meta.producer_epoch == 0
        )
        if meta.producer_id != producer_id and not retry_on_overflow:
            return INVALID_PRODUCER_ID_MAPPING, -1, -1
        state = meta.state
        if state in _PREPARING:
            valid = retry_on_bump
        elif state in _COMPLETE:
            valid = retry_on_bump or retry_on_overflow or epoch == meta.producer_epoch
        else:
            valid = epoch == meta.producer_epoch
        if not valid:
            return PRODUCER_FENCED, -1, -1
        retry = retry_on_bump or retry_on_overflow
        if state in _PREPARING:
            same = (state is TxnState.PREPARE_COMMIT) == commit
            return (CONCURRENT_TRANSACTIONS if same else INVALID_TXN_STATE), -1, -1
        if state is TxnState.ONGOING:
            self._complete(meta, commit, bump=True)
        elif retry and state in _COMPLETE and (state is TxnState.COMPLETE_COMMIT) == commit:
            return NONE, meta.producer_id, meta.producer_epoch  # the answer it missed
        elif commit or retry:
            return INVALID_TXN_STATE, -1, -1
        else:
            # An abort with nothing open (Empty, or after a completed transaction): allowed
            # in version 2 so a client unsure of the state can always abort; it bumps the
            # epoch and writes no marker.
            self._complete(meta, False, bump=True)
        return NONE, meta.producer_id, meta.producer_epoch

    # ------------------------------------------------------------------ timeouts

    def expire(self, now_ms: float) -> None:
        """Abort (and fence) every transaction open longer than its timeout, as Kafka's
        ``abortTimedOutTransactions`` does, if its coordinator broker is up."""
        for meta in self.transactions.values():
            if meta.state is not TxnState.ONGOING or meta.started_ms < 0:
                continue
            if now_ms - meta.started_ms <= meta.timeout_ms:
                continue
            coordinator = self.cluster.placement.coordinator_of(meta.transactional_id, TRANSACTION)
            if coordinator in self.cluster.live:
                self._fence_and_abort(meta)

    # ------------------------------------------------------------------ internals

    def _owned(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> tuple[TransactionMetadata | None, int]:
        """The metadata if (producer id, epoch) is its current producer, else the error."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            return None, INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != epoch:
            return None, PRODUCER_FENCED
        return meta, NONE

    def _fence_and_abort(self, meta: TransactionMetadata) -> None:
        """Fence the current producer (epoch + 1) and abort its open transaction; on a
        version 2 cluster the abort bumps the epoch once more, as Kafka's ``endTransaction``
        does for a fence (it runs with the server's transaction version)."""
        meta.transition(TxnState.PREPARE_EPOCH_FENCE)
        meta.producer_epoch += 1
        meta.last_producer_epoch = -1
        self._complete(meta, False, bump=self.cluster.transaction_version >= 2, may_rotate=False)

    def _complete(
        self, meta: TransactionMetadata, commit: bool, *, bump: bool, may_rotate: bool = True
    ) -> None:
        """Prepare, write the markers, apply or drop the offsets, complete."""
        meta.transition(TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT)
        next_producer_id = -1
        if bump:
            if may_rotate and meta.producer_epoch >= EPOCH_EXHAUSTED:
                next_producer_id = self.cluster.new_producer_id()
            meta.last_producer_epoch = meta.producer_epoch
            meta.producer_epoch += 1
        # The markers carry the epoch the transaction ends with: after a version 2 bump a
        # late batch of the old epoch is refused by every partition of the transaction.
        self._publish_epoch(meta)
        self._write_markers(meta, commit)
        if commit:
            for group, offsets in meta.pending_offsets.items():
                self.committed.setdefault(group, {}).update(offsets)
        meta.transition(TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT)
        meta.clear()
        if next_producer_id >= 0:
            meta.previous_producer_id = meta.producer_id
            meta.producer_id, meta.producer_epoch = next_producer_id, 0
            self._publish_epoch(meta)

    def _write_markers(self, meta: TransactionMetadata, commit: bool) -> None:
        cluster = self.cluster
        coordinator_epoch = cluster.placement.coordinator_epoch(meta.transactional_id, TRANSACTION)
        for topic, index in sorted(meta.partitions):
            if topic not in cluster.topics:
                continue  # __consumer_offsets: the fake keeps offsets in `committed`
            partition = cluster.partition(topic, index)
            write_marker(
                partition,
                producer_id=meta.producer_id,
                producer_epoch=meta.producer_epoch,
                commit=commit,
                coordinator_epoch=coordinator_epoch,
            )
            cluster.marker_written(topic, index, meta.producer_id, meta.producer_epoch)

    def _publish_epoch(self, meta: TransactionMetadata) -> None:
        # Partition leaders refuse batches of an older epoch (INVALID_PRODUCER_EPOCH).
        self.cluster.producer_epochs[meta.producer_id] = meta.producer_epoch


def _may_name(meta: TransactionMetadata, producer_id: int, epoch: int) -> bool:
    """May an InitProducerId naming (producer id, epoch) bump this transactional id?
    Kafka's ``isValidProducerId``: a brand-new id, the current producer id, or the
    previous one at an exhausted epoch (a retry across a producer id rotation)."""
    return (
        meta.producer_epoch == -1
        or producer_id == meta.producer_id
        or (producer_id == meta.previous_producer_id and epoch >= EPOCH_EXHAUSTED)
    )
