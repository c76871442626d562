"""What becomes of a batch after its broker's answer: one pure decision.

The sender asks :func:`decide` and carries the answer out; nothing else chooses between
retrying, splitting, failing or stopping the producer (Java spreads this over
``Sender.completeBatch``, ``canRetry`` and ``TransactionManager``; franz-go keeps it in
one switch in ``sink.go``, as here). The rules, in the order they apply:

====================================  ==================================================
the answer                            outcome
====================================  ==================================================
none (success), or                    COMPLETE: every record gets its offset. A
DUPLICATE_SEQUENCE_NUMBER             duplicate was written before (a retry of a batch
                                      whose answer was lost): for an idempotent producer
                                      that is success, as in Java
CLUSTER_AUTHORIZATION_FAILED,         FATAL: the producer cannot go on; it stops and
TRANSACTIONAL_ID_AUTHORIZATION_       fails everything
FAILED, PRODUCER_FENCED; or
INVALID_PRODUCER_EPOCH for a batch
with our current stamp (another
producer took our id)
MESSAGE_TOO_LARGE, several records,   SPLIT in two, each half re-enqueued
delivery time left
retriable (for a stamped batch of an  RETRY after backoff, while ``retries`` and the
idempotent producer: as the sequence  delivery time allow; REFRESH_METADATA_AND_RETRY
rules say, which may also bump the    when the error says metadata is stale and no
epoch)                                leader hint already fixed it. CONCURRENT_
                                      TRANSACTIONS is retried *soon* (20 ms at most): the
                                      previous transaction's markers are being written,
                                      which takes milliseconds (transaction version 2)
retriable, delivery time gone         EXPIRE: a timeout naming this error
anything else                         FAIL: the records fail with the typed error
====================================  ==================================================

Retries run out by count (``retries``) as FAIL, by time as EXPIRE, as in Java: which of
the two comes first when the answer and the deadline race must not change the error.
"""

from __future__ import annotations

import enum

from asyncproducer._idempotence import SequenceVerdict
from asyncproducer._value import Value
from asyncproducer.errors import (
    BrokerRequestTimedOutError,
    ClusterAuthorizationFailedError,
    ConcurrentTransactionsError,
    DuplicateSequenceNumberError,
    InvalidMetadataError,
    InvalidProducerEpochError,
    KafkaError,
    NetworkError,
    NotEnoughReplicasAfterAppendError,
    NotLeaderOrFollowerError,
    ProducerFencedError,
    RecordTooLargeError,
    TransactionalIdAuthorizationFailedError,
)

MAYBE_APPENDED: tuple[type[KafkaError], ...] = (
    NotEnoughReplicasAfterAppendError,  # appended; too few replicas in sync to acknowledge
    BrokerRequestTimedOutError,  # appended; the replicas did not acknowledge in time
    NotLeaderOrFollowerError,  # before the append, or while it waited for the replicas
    NetworkError,  # the broker lost touch with something mid-request
)
"""Answers that may come after the leader appended the records (while acks=all waited for
the replicas): a batch that gets one may be in the log, whatever happens to it next, so
its records, if they fail, say ``possibly_written``."""

FATAL_ERRORS: tuple[type[KafkaError], ...] = (
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
    ProducerFencedError,
)
"""Errors after which the producer cannot go on (Java's fatal errors), whatever the batch."""


class Outcome(enum.Enum):
    COMPLETE = "complete"
    RETRY = "retry"
    REFRESH_METADATA_AND_RETRY = "refresh metadata, then retry"
    SPLIT = "split"
    FAIL = "fail"
    FATAL = "fatal"
    EXPIRE = "expire"


class BatchFacts(Value):
    """What the decision needs to know of a batch, at the moment of its answer."""

    __slots__ = ("attempts", "in_time", "record_count", "sequence_reset")
    _fields = ("record_count", "attempts", "in_time", "sequence_reset")

    record_count: int
    attempts: int
    in_time: bool
    """Before its delivery deadline."""
    sequence_reset: bool
    """Re-stamped since it was sent (idempotence): an answer is for its old stamp."""

    def __init__(
        self, record_count: int, attempts: int, in_time: bool, sequence_reset: bool = False
    ) -> None:
        self.record_count = record_count
        self.attempts = attempts
        self.in_time = in_time
        self.sequence_reset = sequence_reset


SOON_MS = 20
"""The backoff cap of a retry that should come soon (``Decision.soon``)."""


class Decision(Value):
    __slots__ = ("bump_epoch", "outcome", "soon")
    _fields = ("outcome", "bump_epoch", "soon")

    outcome: Outcome
    bump_epoch: bool
    """Idempotence: start the partition's sequences over under a new epoch."""
    soon: bool
    """RETRY after at most ``SOON_MS``: the error clears in milliseconds."""

    def __init__(self, outcome: Outcome, bump_epoch: bool = False, soon: bool = False) -> None:
        self.outcome = outcome
        self.bump_epoch = bump_epoch
        self.soon = soon


def decide(
    error: KafkaError | None,
    batch: BatchFacts,
    *,
    retries: int,
    sequence_verdict: SequenceVerdict | None = None,
    leader_known: bool = False,
) -> Decision:
    """The outcome of ``error`` (None: success) for ``batch``.

    ``sequence_verdict`` is the idempotence rules' judgement of the error, for a batch
    that carries a sequence number (None otherwise); ``leader_known``: a leader hint in
    the answer (KIP-951) already updated the metadata."""
    if error is None or isinstance(error, DuplicateSequenceNumberError):
        return Decision(Outcome.COMPLETE)
    if isinstance(error, FATAL_ERRORS) or (
        isinstance(error, InvalidProducerEpochError) and not batch.sequence_reset
    ):
        return Decision(Outcome.FATAL)
    if isinstance(error, RecordTooLargeError) and batch.record_count > 1 and batch.in_time:
        return Decision(Outcome.SPLIT)
    if sequence_verdict is not None:
        retriable, bump = sequence_verdict.retriable, sequence_verdict.bump_epoch
    else:
        retriable, bump = error.retriable, False
    if not retriable:
        return Decision(Outcome.FAIL, bump)
    if not batch.in_time:
        return Decision(Outcome.EXPIRE, bump)
    if batch.attempts >= retries:
        return Decision(Outcome.FAIL, bump)
    if isinstance(error, InvalidMetadataError) and not leader_known:
        return Decision(Outcome.REFRESH_METADATA_AND_RETRY, bump)
    return Decision(Outcome.RETRY, bump, soon=isinstance(error, ConcurrentTransactionsError))
