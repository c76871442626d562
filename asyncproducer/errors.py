"""The exceptions asyncproducer raises.

Two families share one root, :class:`KafkaError`:

* :class:`BrokerResponseError` and its subclasses: an error code a broker returned.
  Every code a producer can receive has its own class (``NotLeaderOrFollowerError``,
  ``DuplicateSequenceNumberError``, ...); :func:`error_for_code` maps any code, including
  codes a producer never sees, to a class.
* The client's own failures: timeouts, connections, serialization, oversize records,
  buffer exhaustion, lifecycle misuse, configuration.

``retriable`` says whether retrying the same operation may succeed, as Java's
``RetriableException`` does. :class:`InvalidMetadataError` marks the errors after which
the producer must refresh its cluster metadata before retrying (Java's
``InvalidMetadataException``).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from asyncproducer._error_codes import ERROR_CODES


class KafkaError(Exception):
    """Root of every exception asyncproducer raises."""

    retriable: ClassVar[bool] = False
    possibly_written: bool = False
    """On an error that failed a record's future: True when the record may nevertheless
    be in the log (a request carrying it was sent and never definitely answered: the
    connection dropped, the request timed out, or the delivery timeout struck while it
    was in flight). False means the broker definitely did not store it. The same idea as
    librdkafka's ``PossiblyPersisted`` message status."""


# --------------------------------------------------------------------------- client side


class KafkaTimeoutError(KafkaError):
    """A bounded wait ran out (metadata, buffer space, a request, delivery, close)."""

    retriable = True


class RequestTimeoutError(KafkaTimeoutError):
    """A broker did not answer a request within ``request_timeout_ms``.

    The connection it was sent on is closed, as Java does, because a late answer could
    no longer be matched with certainty.
    """


class KafkaConnectionError(KafkaError):
    """A connection to a broker could not be opened, or dropped with requests pending.

    A request that fails with this error may or may not have been applied by the broker.
    """

    retriable = True


class ConnectionSetupTimeoutError(KafkaConnectionError, KafkaTimeoutError):
    """TCP connect (and handshakes) did not finish within ``socket_connection_setup_timeout_ms``."""


class NoBrokersAvailableError(KafkaConnectionError):
    """No broker could be reached, or none answered usably: every bootstrap server and
    known broker failed. The message names each one and its last error.

    Raised by ``send()`` and ``partitions_for()`` when ``max_block_ms`` runs out without
    a metadata answer (Java reports a ``TimeoutException`` that blames the topic). Check
    ``bootstrap_servers``, that the brokers are up, and the network between.
    """


class ProtocolError(KafkaConnectionError):
    """A broker sent bytes that are not a valid Kafka response (or the wrong one).

    The connection is closed; the next request opens a fresh one. A Metadata answer that
    decodes but is impossible (repeated or negative ids, gaps in a topic's partition ids)
    is one too; the stream is still in step then, so the connection stays open, and the
    request goes to the next broker.
    """


class AuthenticationError(KafkaError):
    """A broker refused this client's credentials (SASL), or the client refused the
    broker's identity (TLS). The message names the broker and why; it never holds a secret.

    Not retriable with the same settings: the producer tries a broker again only after its
    reconnect backoff, and ``send()`` / ``partitions_for()`` raise this error (rather than
    a timeout) once ``max_block_ms`` runs out with no broker accepting the client.
    """


class SslAuthenticationError(AuthenticationError):
    """The TLS handshake with a broker failed: its certificate is expired, signed by an
    unknown CA, or names another host; the TLS versions or ciphers do not match; or the
    port does not speak TLS. The message names the broker and the cause."""


class SerializationError(KafkaError):
    """A key or value serializer failed, or returned something other than bytes."""


class BufferExhaustedError(KafkaTimeoutError):
    """``send()`` waited ``max_block_ms`` for ``buffer_memory`` space and got none."""


class ProducerStateError(KafkaError):
    """The producer is not in a state that allows the call (never started, closed, ...)."""


class ProducerClosedError(ProducerStateError):
    """The producer was closed; a record sent or pending then fails with this error."""


class TransactionStateError(ProducerStateError):
    """A transactional call the producer's transaction state does not allow: sending or
    committing outside a transaction, beginning one inside another, committing one that
    failed (abort it), or any transactional call on a non-transactional producer."""


class TransactionAbortedError(KafkaError):
    """The record was not sent: its transaction was aborted before it left the producer."""


class ConfigError(KafkaError, ValueError):
    """A configuration value is unknown, of the wrong type, out of range or contradictory."""


class PartitionOutOfRangeError(KafkaError, ValueError):
    """A record's partition (given, or chosen by a custom partitioner) does not exist."""


class InvalidProducerRecordError(KafkaError, TypeError):
    """An item given to ``send_batch()`` is neither a ``ProducerRecord`` nor a tuple of
    2 to 6 of ``send()``'s arguments, in their order."""


class PartitionerError(KafkaError):
    """A custom partitioner's ``partition()`` or ``on_new_batch()`` raised: the record is
    not sent (``send()`` raises this; in ``send_batch()`` the record fails alone). The
    partitioner's own exception is the ``__cause__``. (Java's ``send()`` lets it through
    unchanged; here every record that cannot be sent fails with a ``KafkaError``.)"""


class SendBatchAbortedError(KafkaError):
    """``send_batch()`` stopped before the end of its records: iterating them raised
    (that exception is the ``__cause__``). ``results`` has one entry per record taken
    before that, in order, each its ``RecordMetadata`` or the ``KafkaError`` it failed
    with, all final (the call waited for them); no later record was read."""

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        # `results` optional: unpickling rebuilds an exception from its args (the
        # message), then restores its __dict__.
        super().__init__(message)
        self.results: list[Any] = [] if results is None else results


class InvalidRecordTimestampError(KafkaError, ValueError):
    """A record's ``timestamp_ms`` is not an int from 0 to 2**63 - 1 (Java's producer
    rejects a negative timestamp too). Raised by ``send()``; not the broker's
    ``InvalidTimestampError``, which is about a timestamp it refuses."""


# --------------------------------------------------------------------------- broker side


class BrokerResponseError(KafkaError):
    """An error code returned by a broker.

    ``code`` and ``name`` identify it exactly as the Kafka protocol does; the message adds
    what the client knows (topic, partition, broker) and the broker's own error message.
    """

    code: ClassVar[int] = -1
    name: ClassVar[str] = "UNKNOWN_SERVER_ERROR"
    description: ClassVar[str] = ""

    def __init__(self, message: str | None = None) -> None:
        parts = (f"[{self.name} (code {self.code})]", self.description, message)
        super().__init__(" ".join(part for part in parts if part))


class InvalidMetadataError(BrokerResponseError):
    """The client's view of the cluster is stale: refresh metadata, then retry."""

    retriable = True


_classes_by_code: dict[int, type[BrokerResponseError]] = {}


def _bind(cls: type[BrokerResponseError], code: int, description: str) -> None:
    name, retriable = ERROR_CODES[code]
    cls.code = code
    cls.name = name
    cls.description = description
    # A class may override Kafka's retriable flag (InvalidMetadataError subclasses are
    # always retriable); otherwise the flag of Kafka's Errors.java is used.
    if "retriable" not in cls.__dict__ and not issubclass(cls, InvalidMetadataError):
        cls.retriable = retriable
    _classes_by_code[code] = cls


class UnknownServerError(BrokerResponseError):
    """The broker hit an unexpected error while handling the request."""


class CorruptRecordError(BrokerResponseError):
    """A record batch failed its CRC check or is otherwise malformed."""


class UnknownTopicOrPartitionError(InvalidMetadataError):
    """The topic or partition does not exist (or this broker does not host it)."""


class LeaderNotAvailableError(InvalidMetadataError):
    """The partition has no leader right now (an election is in progress)."""


class NotLeaderOrFollowerError(InvalidMetadataError):
    """The broker the request went to is not the partition's leader any more."""


class BrokerRequestTimedOutError(BrokerResponseError):
    """The broker timed out waiting for replicas to acknowledge (acks=all)."""


class BrokerNotAvailableError(BrokerResponseError):
    """The broker is not available."""


class ReplicaNotAvailableError(InvalidMetadataError):
    """A replica is not available for the partition."""


class RecordTooLargeError(BrokerResponseError):
    """A record (or batch) is larger than the broker, topic or producer allows.

    Raised by the broker as MESSAGE_TOO_LARGE and by ``send()`` before enqueueing, when a
    serialized record exceeds ``max_request_size`` or ``buffer_memory``.
    """


class NetworkError(InvalidMetadataError):
    """The broker reported a network error (NETWORK_EXCEPTION)."""


class InvalidTopicError(BrokerResponseError, ValueError):
    """The topic name is invalid, or the request targets an internal topic."""

    # send() raises it too, before asking any broker, for a name Kafka would refuse or
    # one that is not a str (a ValueError then, as ConfigError is).


class RecordListTooLargeError(BrokerResponseError):
    """The request's record list exceeds the broker's segment size."""


class NotEnoughReplicasError(BrokerResponseError):
    """Fewer in-sync replicas than ``min.insync.replicas``; the write was rejected."""


class NotEnoughReplicasAfterAppendError(BrokerResponseError):
    """The write was appended to the leader but too few replicas are in sync to ack it."""


class InvalidRequiredAcksError(BrokerResponseError):
    """``acks`` is not 0, 1 or -1 (all)."""


class TopicAuthorizationFailedError(BrokerResponseError):
    """The client is not authorized to write to the topic."""


class ClusterAuthorizationFailedError(BrokerResponseError):
    """The client is not authorized for a cluster-level action (e.g. idempotent write)."""


class InvalidTimestampError(BrokerResponseError):
    """A record's timestamp is outside the topic's allowed range."""


class UnsupportedSaslMechanismError(BrokerResponseError, AuthenticationError):
    """The broker does not support the requested SASL mechanism."""


class IllegalSaslStateError(BrokerResponseError, AuthenticationError):
    """A SASL request arrived in the wrong state."""


class UnsupportedVersionError(BrokerResponseError):
    """The broker does not support the API version (or no version both sides support)."""


class InvalidRequestError(BrokerResponseError):
    """The broker judged the request malformed."""


class UnsupportedForMessageFormatError(BrokerResponseError):
    """The topic's message format does not support the request (e.g. headers)."""


class PolicyViolationError(BrokerResponseError):
    """The request violates a broker-side policy."""


class OutOfOrderSequenceNumberError(BrokerResponseError):
    """The broker received a sequence number it did not expect for this producer."""


class DuplicateSequenceNumberError(BrokerResponseError):
    """The batch was already written: an idempotent producer treats this as success."""


class InvalidProducerEpochError(BrokerResponseError):
    """The producer's epoch is stale: another instance with its id has taken over."""


class InvalidTxnStateError(BrokerResponseError):
    """The operation is not valid in the transaction's current state."""


class InvalidProducerIdMappingError(BrokerResponseError):
    """The producer id is not mapped to the transactional id."""


class InvalidTransactionTimeoutError(BrokerResponseError):
    """``transaction_timeout_ms`` exceeds the broker's maximum."""


class ConcurrentTransactionsError(BrokerResponseError):
    """The coordinator is still completing an earlier transaction for this id."""


class TransactionCoordinatorFencedError(BrokerResponseError):
    """The transaction coordinator that handled the request has been fenced."""


class TransactionalIdAuthorizationFailedError(BrokerResponseError):
    """The client is not authorized to use the transactional id."""


class KafkaStorageError(InvalidMetadataError):
    """The broker's disk for the partition failed; the leader will move."""


class SaslAuthenticationFailedError(BrokerResponseError, AuthenticationError):
    """SASL authentication failed (bad credentials or mechanism)."""


class UnknownProducerIdError(BrokerResponseError):
    """The broker has no state for the producer id (e.g. it expired)."""


class FencedLeaderEpochError(InvalidMetadataError):
    """The leader epoch in the request is older than the broker's."""


class UnknownLeaderEpochError(InvalidMetadataError):
    """The leader epoch in the request is newer than the broker's."""


class UnsupportedCompressionTypeError(BrokerResponseError):
    """The broker (or this client) does not support the batch's compression codec."""


class InvalidRecordError(BrokerResponseError):
    """The broker rejected a record (e.g. a null key on a compacted topic)."""


class ThrottlingQuotaExceededError(BrokerResponseError):
    """The request exceeded a quota; retry after the throttle time."""


class ProducerFencedError(BrokerResponseError):
    """A newer producer with the same transactional id has fenced this one."""


class UnknownTopicIdError(InvalidMetadataError):
    """The topic id is unknown to the broker."""


class InconsistentTopicIdError(InvalidMetadataError):
    """The topic id in the request does not match the broker's."""


class TransactionAbortableError(BrokerResponseError):
    """The transaction must be aborted; the producer can continue afterwards."""


_EXPLICIT: tuple[tuple[type[BrokerResponseError], int], ...] = (
    (UnknownServerError, -1),
    (CorruptRecordError, 2),
    (UnknownTopicOrPartitionError, 3),
    (LeaderNotAvailableError, 5),
    (NotLeaderOrFollowerError, 6),
    (BrokerRequestTimedOutError, 7),
    (BrokerNotAvailableError, 8),
    (ReplicaNotAvailableError, 9),
    (RecordTooLargeError, 10),
    (NetworkError, 13),
    (InvalidTopicError, 17),
    (RecordListTooLargeError, 18),
    (NotEnoughReplicasError, 19),
    (NotEnoughReplicasAfterAppendError, 20),
    (InvalidRequiredAcksError, 21),
    (TopicAuthorizationFailedError, 29),
    (ClusterAuthorizationFailedError, 31),
    (InvalidTimestampError, 32),
    (UnsupportedSaslMechanismError, 33),
    (IllegalSaslStateError, 34),
    (UnsupportedVersionError, 35),
    (InvalidRequestError, 42),
    (UnsupportedForMessageFormatError, 43),
    (PolicyViolationError, 44),
    (OutOfOrderSequenceNumberError, 45),
    (DuplicateSequenceNumberError, 46),
    (InvalidProducerEpochError, 47),
    (InvalidTxnStateError, 48),
    (InvalidProducerIdMappingError, 49),
    (InvalidTransactionTimeoutError, 50),
    (ConcurrentTransactionsError, 51),
    (TransactionCoordinatorFencedError, 52),
    (TransactionalIdAuthorizationFailedError, 53),
    (KafkaStorageError, 56),
    (SaslAuthenticationFailedError, 58),
    (UnknownProducerIdError, 59),
    (FencedLeaderEpochError, 74),
    (UnknownLeaderEpochError, 75),
    (UnsupportedCompressionTypeError, 76),
    (InvalidRecordError, 87),
    (ThrottlingQuotaExceededError, 89),
    (ProducerFencedError, 90),
    (UnknownTopicIdError, 100),
    (InconsistentTopicIdError, 103),
    (TransactionAbortableError, 120),
)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Error"


def _register_all() -> None:
    for cls, code in _EXPLICIT:
        _bind(cls, code, (cls.__doc__ or "").strip())
    # Codes a producer never receives still get a class, so that an unexpected code is
    # reported by name rather than as a bare number.
    for code, (name, _) in ERROR_CODES.items():
        if code in _classes_by_code:
            continue
        generated = type(_camel(name.lower()), (BrokerResponseError,), {"__module__": __name__})
        _bind(generated, code, "")
        globals()[generated.__name__] = generated


class UnknownBrokerError(BrokerResponseError):
    """A code this client does not know (newer than its copy of Kafka's error list)."""

    name = "UNKNOWN_ERROR_CODE"

    def __init__(self, code: int, message: str | None = None) -> None:
        self.unknown_code = code
        # Not the base class's "[NAME (code N)]" prefix: the class-level code is not this one.
        KafkaError.__init__(
            self, f"[error code {code}, unknown to this client] {message or ''}".strip()
        )


_register_all()


_E = TypeVar("_E", bound=BaseException)


def fresh_copy(error: _E) -> _E:
    """A new instance equal to ``error``, for raising it in one more waiting task.

    One exception object raised in several tasks would share (and keep growing) one
    traceback. Built without calling ``__init__``, so any constructor signature works.
    """
    twin = type(error).__new__(type(error))
    twin.args = error.args
    twin.__dict__.update(error.__dict__)  # attributes, and notes (add_note)
    # The chain: a delivery timeout's cause is the broker error it gave up after.
    twin.__cause__ = error.__cause__
    twin.__context__ = error.__context__
    twin.__suppress_context__ = error.__suppress_context__
    return twin


def error_for_code(code: int, message: str | None = None) -> BrokerResponseError:
    """The exception for a broker error code (``code`` must not be 0, NONE)."""
    if code == 0:
        raise ValueError("error code 0 (NONE) is not an error")
    cls = _classes_by_code.get(code)
    if cls is None:
        return UnknownBrokerError(code, message)
    return cls(message)


def error_class_for_code(code: int) -> type[BrokerResponseError] | None:
    """The class for a broker error code, or None for codes this client does not know."""
    return _classes_by_code.get(code)


_exported_classes = [
    name
    for name, value in globals().items()
    if isinstance(value, type) and issubclass(value, KafkaError)
]
__all__ = [*sorted(_exported_classes), "error_class_for_code", "error_for_code", "fresh_copy"]
