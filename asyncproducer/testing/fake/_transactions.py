"""The transaction coordinator's per-transactional-id state, as an explicit state table.

The states and their legal predecessors are Kafka's ``TransactionState`` (in
``TransactionMetadata``); every change of state goes through :meth:`TransactionMetadata.
transition`, which refuses one the table does not list, so a coordinator bug surfaces as an
error rather than as a silently odd state.

The fake completes a commit or an abort at once (markers are written in the same step), so
``PrepareCommit`` / ``PrepareAbort`` / ``PrepareEpochFence`` are passed through, never
observed between requests; ``Dead`` (transactional id expiry after
``transactional.id.expiration.ms``) is listed for completeness but never entered.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class TxnState(enum.Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"


S = TxnState

VALID_PREVIOUS: Mapping[TxnState, frozenset[TxnState]] = {
    S.EMPTY: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.ONGOING: frozenset({S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    # Transaction version 2 lets a client abort when unsure whether anything is open, so
    # PrepareAbort is also reachable from Empty and the Complete states (KIP-890).
    S.PREPARE_ABORT: frozenset(
        {S.ONGOING, S.PREPARE_EPOCH_FENCE, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}
    ),
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.DEAD: frozenset({S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT}),
    S.PREPARE_EPOCH_FENCE: frozenset({S.ONGOING}),
}
"""state -> the states it may be entered from (Kafka's ``validPreviousStates``)."""

EPOCH_EXHAUSTED = 2**15 - 2
"""Kafka's ``isEpochExhausted``: from Short.MAX_VALUE - 1 on, a bump needs a new producer
id (the epoch after it would overflow)."""


class IllegalTransition(RuntimeError):
    """The coordinator tried a state change Kafka's table forbids (a bug in the fake)."""


@dataclass(frozen=True, slots=True)
class PendingOffset:
    """An offset committed in a transaction (TxnOffsetCommit), applied at commit."""

    offset: int
    metadata: str | None
    leader_epoch: int


@dataclass(slots=True)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int = -1
    last_producer_epoch: int = -1
    previous_producer_id: int = -1
    """The producer id before the last rotation (an exhausted epoch gets a new id)."""
    timeout_ms: int = 60_000
    state: TxnState = TxnState.EMPTY
    partitions: set[tuple[str, int]] = field(default_factory=set)
    """Partitions in the open transaction, ``__consumer_offsets`` ones (from
    AddOffsetsToTxn) included."""
    pending_offsets: dict[str, dict[tuple[str, int], PendingOffset]] = field(default_factory=dict)
    """group id -> offsets committed in the open transaction."""
    started_ms: float = -1.0
    """When the transaction began (its first partition), for the timeout."""

    def transition(self, new: TxnState) -> None:
        if self.state not in VALID_PREVIOUS[new]:
            raise IllegalTransition(
                f"transactional id {self.transactional_id!r}: {self.state.value} -> "
                f"{new.value} is not a transition Kafka's TransactionState allows"
            )
        self.state = new

    def clear(self) -> None:
        """Forget the ended transaction's partitions and pending offsets."""
        self.partitions = set()
        self.pending_offsets = {}
        self.started_ms = -1.0


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """A snapshot of one transactional id's coordinator state (``FakeCluster.
    transaction_state``); ``state`` is Kafka's name (``"Ongoing"``, ``"CompleteCommit"``,
    ...), as DescribeTransactions reports it."""

    transactional_id: str
    state: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    partitions: frozenset[tuple[str, int]]
    pending_offsets: Mapping[str, Mapping[tuple[str, int], int]]
    """group id -> {(topic, partition): offset} committed in the open transaction."""


def snapshot(meta: TransactionMetadata) -> TransactionInfo:
    return TransactionInfo(
        transactional_id=meta.transactional_id,
        state=meta.state.value,
        producer_id=meta.producer_id,
        producer_epoch=meta.producer_epoch,
        timeout_ms=meta.timeout_ms,
        partitions=frozenset(meta.partitions),
        pending_offsets={
            group: {tp: pending.offset for tp, pending in offsets.items()}
            for group, offsets in meta.pending_offsets.items()
        },
    )
