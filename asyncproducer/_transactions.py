"""A transactional producer's state (pure): Java's ``TransactionManager`` states as a
table, the partitions in the open transaction, and what each coordinator answer means.

The producer id and the sequences stay with :mod:`asyncproducer._idempotence`; this module
adds the transaction around them. Its rules, in one place:

* ``TRANSACTION_TRANSITIONS`` is the life of the transactional producer: initialized once
  (InitProducerId with the transactional id, which fences older instances), then READY ->
  IN_TRANSACTION -> COMMITTING or ABORTING -> READY, over and over. An error that only
  spoils the open transaction (a record failed, a partition could not be added) moves it
  to ABORTABLE_ERROR, from which only an abort leads on; a fatal one (fenced by a newer
  instance, not authorized, a protocol the broker lacks) to FATAL_ERROR, the end.
* A partition joins the transaction (AddPartitionsToTxn) before its first batch is sent;
  the sender does not drain a partition until then (:meth:`TransactionManager.may_send_to`)
  and asks for every new partition of one drain in one request.
* :func:`coordinator_action` says, per request type and error, whether to retry, look the
  coordinator up again, or end in an abortable or fatal error (the tables of Java's
  ``TxnRequestHandler`` subclasses, as one annotated switch).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from typing import Final

from asyncproducer.errors import (
    BrokerResponseError,
    ClusterAuthorizationFailedError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionalIdAuthorizationFailedError,
    TransactionStateError,
    UnsupportedVersionError,
    fresh_copy,
)

logger = logging.getLogger("asyncproducer.transactions")

TopicPartitionKey = tuple[str, int]


class TransactionState(enum.Enum):
    """Java's ``TransactionManager.State`` (without KIP-939's two-phase commit)."""

    UNINITIALIZED = "uninitialized"
    INITIALIZING = "initializing"
    """InitProducerId with the transactional id is out (or an epoch bump after an abort)."""
    READY = "ready"
    IN_TRANSACTION = "in transaction"
    COMMITTING = "committing"
    ABORTING = "aborting"
    ABORTABLE_ERROR = "abortable error"
    """The open transaction cannot commit: abort it, then go on."""
    FATAL_ERROR = "fatal error"
    """The producer cannot go on (fenced, not authorized, ...): close it."""


_S = TransactionState
TRANSACTION_TRANSITIONS: Final[dict[TransactionState, frozenset[TransactionState]]] = {
    _S.UNINITIALIZED: frozenset({_S.INITIALIZING, _S.FATAL_ERROR}),
    # A failed InitProducerId leaves the producer uninitialized (start() raises).
    _S.INITIALIZING: frozenset({_S.READY, _S.UNINITIALIZED, _S.FATAL_ERROR}),
    _S.READY: frozenset({_S.IN_TRANSACTION, _S.FATAL_ERROR}),
    _S.IN_TRANSACTION: frozenset({_S.COMMITTING, _S.ABORTING, _S.ABORTABLE_ERROR, _S.FATAL_ERROR}),
    # A record that fails while committing spoils the commit (Java: COMMITTING ->
    # ABORTABLE_ERROR). Ending with an epoch bump still due goes through INITIALIZING.
    _S.COMMITTING: frozenset({_S.READY, _S.INITIALIZING, _S.ABORTABLE_ERROR, _S.FATAL_ERROR}),
    _S.ABORTING: frozenset({_S.READY, _S.INITIALIZING, _S.FATAL_ERROR}),
    _S.ABORTABLE_ERROR: frozenset({_S.ABORTING, _S.FATAL_ERROR}),
    _S.FATAL_ERROR: frozenset(),
}
"""From each state, where a transactional producer may go (``TransactionManager._move_to``)."""

FATAL_FOR_TRANSACTIONS: tuple[type[KafkaError], ...] = (
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnsupportedVersionError,
    InvalidProducerIdMappingError,
)
"""A record failing with one of these ends the producer (Java's
``maybeTransitionToErrorState``); any other record error spoils only the transaction."""


class Action(enum.Enum):
    """What to do with a coordinator's answer (:func:`coordinator_action`)."""

    DONE = "done"
    RETRY = "retry after backoff"
    FIND_COORDINATOR = "look the coordinator up again, then retry"
    ABORTABLE = "fail the call; the transaction must be aborted"
    FATAL = "fail the call; the producer cannot go on"


class TxnApi(enum.Enum):
    FIND_COORDINATOR = "FindCoordinator"
    INIT_PRODUCER_ID = "InitProducerId"
    ADD_PARTITIONS = "AddPartitionsToTxn"
    ADD_OFFSETS = "AddOffsetsToTxn"
    TXN_OFFSET_COMMIT = "TxnOffsetCommit"
    END_TXN = "EndTxn"


_LOOKUP_CODES = frozenset({15, 16})
"""COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR: the coordinator moved, look it up again
(COORDINATOR_LOAD_IN_PROGRESS, 14, is retried in place, as in Java)."""


def coordinator_action(api: TxnApi, error: KafkaError | None) -> Action:
    """What an answer of ``api`` with ``error`` (None: success) asks for. Per request
    type, in Java's order (the research notes are in docs/transactions.md):

    ==========================================  ===================================
    the answer                                   action
    ==========================================  ===================================
    none                                         DONE
    COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,  FIND_COORDINATOR (FindCoordinator
    a connection error                           itself: RETRY)
    PRODUCER_FENCED, INVALID_PRODUCER_EPOCH,     FATAL: a newer instance took the
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,       transactional id, or the broker
    INVALID_PRODUCER_ID_MAPPING,                 will never allow it
    UNSUPPORTED_VERSION, CLUSTER_AUTHORIZATION_
    FAILED
    INVALID_TXN_STATE (but for TxnOffsetCommit)  FATAL: client and coordinator
                                                 disagree about the transaction
    UNKNOWN_PRODUCER_ID, TRANSACTION_ABORTABLE,  ABORTABLE
    GROUP_AUTHORIZATION_FAILED, TOPIC_
    AUTHORIZATION_FAILED, UNKNOWN_MEMBER_ID,
    ILLEGAL_GENERATION, FENCED_INSTANCE_ID
    retriable (CONCURRENT_TRANSACTIONS,          RETRY (bounded by the call's
    COORDINATOR_LOAD_IN_PROGRESS, timeouts ...)  max_block_ms)
    anything else                                FATAL, as Java ("unexpected error")
    ==========================================  ===================================
    """
    if error is None:
        return Action.DONE
    code = getattr(error, "code", None)
    if code in _LOOKUP_CODES or (code is None and error.retriable):
        # No code: the connection failed (closed, timed out): the coordinator may be gone.
        return Action.RETRY if api is TxnApi.FIND_COORDINATOR else Action.FIND_COORDINATOR
    if isinstance(error, (*FATAL_FOR_TRANSACTIONS, InvalidProducerEpochError)):
        return Action.FATAL
    if isinstance(error, InvalidTxnStateError):
        return Action.ABORTABLE if api is TxnApi.TXN_OFFSET_COMMIT else Action.FATAL
    if code in _ABORTABLE_CODES or isinstance(error, TransactionAbortableError):
        return Action.ABORTABLE
    if error.retriable:
        return Action.RETRY
    return Action.FATAL


_ABORTABLE_CODES = frozenset(
    {
        59,  # UNKNOWN_PRODUCER_ID
        30,  # GROUP_AUTHORIZATION_FAILED
        29,  # TOPIC_AUTHORIZATION_FAILED
        25,  # UNKNOWN_MEMBER_ID
        22,  # ILLEGAL_GENERATION
        82,  # FENCED_INSTANCE_ID
        120,  # TRANSACTION_ABORTABLE
    }
)


class TransactionManager:
    """The transactional producer's state; every change through :meth:`_move_to`."""

    def __init__(
        self,
        transactional_id: str,
        timeout_ms: int,
        on_change: Callable[[TransactionState], object] | None = None,
    ) -> None:
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self.state = TransactionState.UNINITIALIZED
        self.error: KafkaError | None = None
        """Why the state is ABORTABLE_ERROR or FATAL_ERROR."""
        self._on_change = on_change
        self._added: set[TopicPartitionKey] = set()
        """Partitions the coordinator has in the open transaction."""
        self._new: dict[TopicPartitionKey, None] = {}
        """Partitions with a batch to send, not yet asked for (in first-seen order)."""
        self._pending: set[TopicPartitionKey] = set()
        """Partitions an AddPartitionsToTxn request is out for."""
        self.started = False
        """The coordinator knows of this transaction (a partition or the offsets of a group
        were added): ending it takes an EndTxn."""
        self.implicit_partitions = False
        """Transaction version 2 (KIP-890 part 2): a partition joins the transaction with
        its first batch (Produce v12), no AddPartitionsToTxn."""

    # ------------------------------------------------------------------ state

    def _move_to(self, state: TransactionState, error: KafkaError | None = None) -> None:
        if state not in TRANSACTION_TRANSITIONS[self.state]:
            raise AssertionError(
                f"transaction: no transition from {self.state.value} to {state.value}"
            )
        logger.debug(
            "transactional id %r: %s -> %s%s",
            self.transactional_id,
            self.state.value,
            state.value,
            f" ({error})" if error is not None else "",
        )
        self.state = state
        self.error = error
        if self._on_change is not None:
            self._on_change(state)

    def initializing(self) -> None:
        self._move_to(TransactionState.INITIALIZING)

    def initialized(self) -> None:
        """InitProducerId answered: no transaction is open."""
        self._move_to(TransactionState.READY)

    def initialization_failed(self, error: KafkaError) -> None:
        if isinstance(error, (*FATAL_FOR_TRANSACTIONS, InvalidProducerEpochError)):
            self.fatal(error)
        else:
            self._move_to(TransactionState.UNINITIALIZED)

    def begin(self) -> None:
        self._check_usable("begin a transaction")
        if self.state is not TransactionState.READY:
            raise TransactionStateError(
                f"transactional id {self.transactional_id!r}: cannot begin a transaction while "
                f"{self._describe()}"
            )
        self._move_to(TransactionState.IN_TRANSACTION)

    def check_send(self) -> None:
        """Raise unless records may be sent now: only inside a transaction."""
        if self.state is TransactionState.IN_TRANSACTION:
            return
        self._check_usable("send")
        raise TransactionStateError(
            f"transactional id {self.transactional_id!r}: records can only be sent inside a "
            f"transaction (begin_transaction(), or 'async with producer.transaction()'); the "
            f"producer is {self._describe()}"
        )

    def begin_commit(self) -> bool:
        """Move to COMMITTING; False if a commit is already under way (a retried call).
        A transaction that failed raises the error it failed with (a record's, say)."""
        if self.state is TransactionState.COMMITTING:
            return False
        if self.state is TransactionState.ABORTABLE_ERROR:
            raise self.abortable_error()
        self._check_usable("commit")
        if self.state is not TransactionState.IN_TRANSACTION:
            raise TransactionStateError(
                f"transactional id {self.transactional_id!r}: no transaction to commit; the "
                f"producer is {self._describe()}"
            )
        self._move_to(TransactionState.COMMITTING)
        return True

    def begin_abort(self) -> bool:
        """Move to ABORTING; False if an abort is already under way (a retried call)."""
        if self.state is TransactionState.ABORTING:
            return False
        self._check_usable("abort", abortable_ok=True)
        if self.state not in (TransactionState.IN_TRANSACTION, TransactionState.ABORTABLE_ERROR):
            raise TransactionStateError(
                f"transactional id {self.transactional_id!r}: no transaction to abort; the "
                f"producer is {self._describe()}"
            )
        self._new.clear()
        self._move_to(TransactionState.ABORTING)
        return True

    def ended(self, *, epoch_bump_due: bool = False) -> None:
        """The transaction being committed or aborted is over (EndTxn answered, or none
        was needed): READY, or INITIALIZING when an epoch bump must come first."""
        if self.state not in (TransactionState.COMMITTING, TransactionState.ABORTING):
            raise AssertionError(f"transaction: ended() while {self.state.value}")
        self._added.clear()
        self._new.clear()
        self._pending.clear()
        self.started = False
        self._move_to(TransactionState.INITIALIZING if epoch_bump_due else TransactionState.READY)

    def abortable(self, error: KafkaError) -> None:
        """The open transaction cannot commit; the first such error is the one reported."""
        if self.state in (TransactionState.IN_TRANSACTION, TransactionState.COMMITTING):
            self._move_to(TransactionState.ABORTABLE_ERROR, error)

    def fatal(self, error: KafkaError) -> None:
        if self.state is not TransactionState.FATAL_ERROR:
            self._move_to(TransactionState.FATAL_ERROR, error)

    def record_failed(self, error: BaseException) -> None:
        """A record of the transaction failed (the sender gave up on its batch)."""
        if not isinstance(error, KafkaError):
            error = TransactionAbortableError(f"a record failed: {error!r}")
        if isinstance(error, FATAL_FOR_TRANSACTIONS):
            self.fatal(error)
        else:
            self.abortable(error)

    def abortable_error(self) -> KafkaError:
        """A fresh copy of the error that spoiled the transaction, noting the way on."""
        assert self.error is not None
        error = fresh_copy(self.error)
        error.add_note(
            f"transactional id {self.transactional_id!r}: the transaction cannot commit; "
            "abort it (abort_transaction()), then begin the next one"
        )
        return error

    def record_refused(self, error: Exception) -> None:
        """send() raised for a record of the transaction, which is therefore not in it. As
        Java's ``doSend`` (an ApiException): an error a broker could have given (the
        record is too large, the topic invalid) or a timeout spoils the transaction, which
        must not commit without the record; an argument the client refused before any
        broker was involved (serialization, partition, timestamp) does not: the caller
        saw it and may skip that record on purpose."""
        if isinstance(error, (BrokerResponseError, KafkaTimeoutError)):
            self.abortable(error)

    def _check_usable(self, what: str, *, abortable_ok: bool = False) -> None:
        if self.state is TransactionState.FATAL_ERROR:
            assert self.error is not None
            raise fresh_copy(self.error)
        if self.state is TransactionState.ABORTABLE_ERROR and not abortable_ok:
            raise TransactionStateError(
                f"transactional id {self.transactional_id!r}: cannot {what}: the transaction "
                f"failed and must be aborted (abort_transaction()): {self.error}"
            ) from self.error
        if self.state in (TransactionState.UNINITIALIZED, TransactionState.INITIALIZING):
            raise TransactionStateError(
                f"transactional id {self.transactional_id!r}: cannot {what} before the "
                "producer is started (start(), or 'async with Producer(...)')"
            )

    def _describe(self) -> str:
        return {
            TransactionState.READY: "not in a transaction",
            TransactionState.COMMITTING: "committing a transaction",
            TransactionState.ABORTING: "aborting a transaction",
        }.get(self.state, self.state.value)

    # ------------------------------------------------------------------ partitions

    def may_send_to(self, key: TopicPartitionKey) -> bool:
        """Whether the sender may drain this partition now: it is in the transaction. A
        partition seen for the first time is noted for the next AddPartitionsToTxn."""
        if key in self._added:
            return True
        if self.implicit_partitions:
            self._added.add(key)
            self.started = True
            return True
        if key not in self._pending:
            self._new[key] = None
        return False

    def take_new_partitions(self) -> list[TopicPartitionKey]:
        """The partitions to add now (they become pending), or [] (none, or a request is
        already out: one at a time, as Java)."""
        if self._pending or not self._new or self.state not in _ADDING_STATES:
            return []
        partitions = list(self._new)
        self._new.clear()
        self._pending.update(partitions)
        return partitions

    def partitions_added(self, partitions: Iterable[TopicPartitionKey]) -> None:
        for key in partitions:
            self._pending.discard(key)
            self._added.add(key)
            self.started = True

    def partitions_not_added(self, partitions: Iterable[TopicPartitionKey], *, retry: bool) -> None:
        """The request failed: ask again (``retry``), or give up (the error went to
        :meth:`abortable` or :meth:`fatal`)."""
        for key in partitions:
            self._pending.discard(key)
            if retry:
                self._new[key] = None

    def offsets_added(self) -> None:
        """AddOffsetsToTxn answered: the group's offsets are in the transaction."""
        self.started = True

    @property
    def adding_partitions(self) -> bool:
        return bool(self._pending or self._new)


_ADDING_STATES = frozenset({TransactionState.IN_TRANSACTION, TransactionState.COMMITTING})
