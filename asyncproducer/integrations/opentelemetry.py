"""OpenTelemetry traces and metrics for one producer (the ``asyncproducer[opentelemetry]`` extra).

``instrument_producer(producer)`` wraps that instance's ``send``, ``send_and_wait`` and
``send_batch``; ``uninstrument_producer(producer)`` puts back exactly what was there. A
``send {topic}`` span per ``send()`` lasts until the record is acknowledged or fails; its
W3C trace context goes in the record's headers (:func:`extract_context` reads it back);
``send_batch()`` has one send span and a ``create`` span per record; and the messaging
metrics are recorded. Names and meanings follow the semantic conventions v1.44.0
(messaging spans, Kafka, messaging metrics); docs/opentelemetry.md describes them all.

Why these choices:

- **One instance, not the class.** Patching ``Producer`` globally would miss most sends:
  with the C extension, each producer keeps its own ``send`` (a C callable) in its
  ``__dict__``. Per instance, each producer can have its own providers (an app's
  exporter, a test's in-memory one), nothing global changes, and uninstrumenting
  restores the instance's own attributes, C ``send`` included. The wrappers are bound
  methods of one ``_Instrumentation``: that is where the state lives (no registry).
- **The span ends from ``on_delivery``, not from the future.** The record's future can
  end before the record does: on asyncio, cancelling a task that awaits it cancels the
  future, while the record is still sent (docs/producer.md, "Cancellation"); its done
  callbacks also run a loop turn late. ``on_delivery`` is called once per record with its
  real outcome, on asyncio and trio alike, after every future of its batch is set and
  before any awaiting task resumes. The caller's own ``on_delivery`` is chained: called
  after the span ends, with the same arguments.
- **``send_and_wait`` is send + await of the wrapped ``send``**, as the class defines it,
  rather than a wrapper of the class's ``send_and_wait``: that one calls ``self.send``
  (the wrapper), so wrapping both would make two spans per record, and wrapping neither
  would depend on that call staying there. Either way it is one span per record.
- **Inside ``send_batch()`` the wrapped ``send`` stays out of the way**: with
  interceptors (and in ``MockProducer``) ``send_batch`` sends each record through
  ``self.send``; the batch's own spans and headers already cover them.
- **A creation context the caller put in the headers is kept** (the conventions: it
  SHOULD NOT be modified). The send span then links to it and is a CLIENT span, since its
  own context is not the message's creation context.
- **Leader broker**: ``server.address``/``server.port`` and ``messaging.kafka.cluster.id``
  come from ``Producer._metadata``, a private attribute (:func:`_leader_address`); no
  public API names a partition's leader. If that changes, they are left out, nothing fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from asyncproducer import __version__
from asyncproducer._batch import DeliveryCallback
from asyncproducer._metadata import MetadataManager
from asyncproducer._send_batch import send_arguments
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, RecordTuple
from asyncproducer.errors import (
    BrokerResponseError,
    InvalidProducerRecordError,
    InvalidRecordTimestampError,
    KafkaError,
    PartitionerError,
    PartitionOutOfRangeError,
    SendBatchAbortedError,
    SerializationError,
)
from asyncproducer.integrations._trace_headers import (
    custom_context,
    extract_context,
    headers_with,
    inject,
)

if TYPE_CHECKING:
    from asyncproducer.producer import Producer
    from asyncproducer.testing.mock import MockProducer

__all__ = ["extract_context", "instrument_producer", "uninstrument_producer"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions release these names and meanings come from."""
_SCOPE = "asyncproducer.integrations.opentelemetry"

# The attribute names (the semconv package is not a dependency of this extra).
SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
PARTITION_ID = "messaging.destination.partition.id"
CLIENT_ID = "messaging.client.id"
MESSAGE_KEY = "messaging.kafka.message.key"
OFFSET = "messaging.kafka.offset"
TOMBSTONE = "messaging.kafka.message.tombstone"
CLUSTER_ID = "messaging.kafka.cluster.id"
BATCH_COUNT = "messaging.batch.message_count"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

SENT_MESSAGES = "messaging.client.sent.messages"
OPERATION_DURATION = "messaging.client.operation.duration"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""The conventions' advised histogram boundaries for the duration, in seconds."""

_REFUSED = (
    SerializationError,
    InvalidProducerRecordError,
    PartitionOutOfRangeError,
    InvalidRecordTimestampError,
    PartitionerError,
)
"""A send_batch() result that is one of these is a record refused before it was sent:
not counted in messaging.client.sent.messages (which MUST NOT count unsent messages)."""

_WRAPPED = ("send", "send_and_wait", "send_batch")

_IN_BATCH: ContextVar[object] = ContextVar("asyncproducer_otel_in_batch", default=None)
"""The instrumentation whose send_batch() wrapper runs (in this task): the send() calls
it makes through the producer (interceptors, MockProducer) are traced by the batch."""

Attributes = dict[str, AttributeValue]
Address = tuple[str, int, str | None]
"""A partition leader's host, port, and the cluster id."""


# --------------------------------------------------------------------------- attributes


def _leader_address(producer: object, topic: str, partition: int) -> Address | None:
    """The host and port of the broker leading ``topic``'s ``partition`` in the producer's
    newest cluster metadata, and the cluster id: where the record went (or, after it
    failed, would have gone). Reads ``Producer._metadata``, a private attribute: no
    public API names a partition's leader. None when unknown (a MockProducer)."""
    metadata = getattr(producer, "_metadata", None)
    if not isinstance(metadata, MetadataManager):
        return None
    snapshot = metadata.snapshot
    broker = snapshot.leader_for(topic, partition)
    return None if broker is None else (broker.host, broker.port, snapshot.cluster_id)


def _topic_text(topic: object) -> str | None:
    """The topic as text without running the caller's code (a StrEnum member is its
    value); None for what is not a str (the producer refuses it)."""
    if issubclass(type(topic), str):  # not isinstance(): a __class__ property can fool it
        return topic if type(topic) is str else str.__str__(cast(str, topic))
    return None


def _key_text(key: object) -> str | None:
    """``messaging.kafka.message.key``: a str key as it is, UTF-8 bytes as their text, an
    int as its digits; None (left out) for a key with no unambiguous string form (the
    conventions' rule), such as bytes that are not UTF-8."""
    if issubclass(type(key), str):
        return key if type(key) is str else str.__str__(cast(str, key))
    if type(key) is bytes or type(key) is bytearray:
        try:
            return cast(bytes, key).decode()
        except UnicodeDecodeError:
            return None
    return str(key) if type(key) is int else None


def _error_type(error: BaseException) -> str:
    """``error.type``: a broker's error code by its Kafka name (``NOT_ENOUGH_REPLICAS``,
    as in the conventions' examples), else the exception's fully qualified class name
    (``asyncproducer.errors.KafkaTimeoutError``, ``asyncio.exceptions.CancelledError``)."""
    if isinstance(error, BrokerResponseError) and error.code >= 0:
        return error.name
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _outcome_attributes(
    topic: str | None, partition: int | None, address: Address | None, error_type: str | None
) -> Attributes:
    """The metrics' attributes for a record's (or a call's) outcome."""
    attributes: Attributes = {SYSTEM: "kafka", OPERATION_NAME: "send"}
    if topic is not None:
        attributes[DESTINATION] = topic
    if partition is not None:
        attributes[PARTITION_ID] = str(partition)
    if address is not None:
        attributes[SERVER_ADDRESS], attributes[SERVER_PORT] = address[0], address[1]
    if error_type is not None:
        attributes[ERROR_TYPE] = error_type
    return attributes


def _delivery_attributes(
    metadata: RecordMetadata | None, partition: int | None, address: Address | None
) -> Attributes:
    """What a record's delivery adds to its send span (the rest was set at the start)."""
    attributes: Attributes = {}
    if partition is not None:
        attributes[PARTITION_ID] = str(partition)
    if address is not None:
        attributes[SERVER_ADDRESS], attributes[SERVER_PORT] = address[0], address[1]
        if address[2] is not None:
            attributes[CLUSTER_ID] = address[2]
    if metadata is not None:
        if metadata.offset >= 0:  # -1 with acks=0: unknown
            attributes[OFFSET] = metadata.offset
        if metadata.serialized_value_size < 0:
            attributes[TOMBSTONE] = True  # a None value: Kafka's delete marker
    return attributes


def _fail(span: Span, error: BaseException, error_type: str, description: str = "") -> None:
    """A failed span, as the conventions' "Recording errors" asks: status ERROR described
    by the exception's message (the producer's never hold secrets), ``error.type``, and
    the exception (as a span event: the logs API is not stable in Python)."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, description or str(error)))


# --------------------------------------------------------------------------- the wrappers


class _Instrumentation:
    """One producer's instrumentation: its instruments and the methods it replaced. Its
    bound methods are the producer's ``send``, ``send_and_wait`` and ``send_batch``
    while the producer is instrumented."""

    def __init__(
        self,
        producer: Any,
        tracer: trace.Tracer,
        meter: metrics.Meter,
        propagator: TextMapPropagator | None,
        batch_create_spans: bool,
    ) -> None:
        self.producer = producer
        self.tracer = tracer
        self.sent = meter.create_counter(
            SENT_MESSAGES,
            "{message}",
            "Number of messages producer attempted to send to the broker.",
        )
        self.duration = meter.create_histogram(
            OPERATION_DURATION,
            "s",
            "Duration of messaging operation initiated by a producer or consumer client.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._propagator = propagator
        self.batch_create_spans = batch_create_spans
        client_id = getattr(getattr(producer, "config", None), "client_id", None)
        self.client_id = client_id if type(client_id) is str else None
        # What the instance's __dict__ held under each name (None: nothing), to restore.
        self.replaced = {name: vars(producer).get(name) for name in _WRAPPED}
        self.original_send: Callable[..., Any] = producer.send
        self.original_send_batch: Callable[..., Any] = producer.send_batch

    @property
    def propagator(self) -> TextMapPropagator:
        """The one given, else the global one as it is now (so it may be set later)."""
        return self._propagator or propagate.get_global_textmap()

    def span_attributes(self, operation: str, topic: str | None, key: object) -> Attributes:
        """A send or create span's attributes at its start."""
        attributes: Attributes = {SYSTEM: "kafka", OPERATION_NAME: operation}
        attributes[OPERATION_TYPE] = operation
        if topic is not None:
            attributes[DESTINATION] = topic
        if self.client_id is not None:
            attributes[CLIENT_ID] = self.client_id
        key_text = None if key is None else _key_text(key)
        if key_text is not None:
            attributes[MESSAGE_KEY] = key_text
        return attributes

    def record_duration(self, start: int, end: int, attributes: Attributes) -> None:
        """``messaging.client.operation.duration``, the span's own duration."""
        self.duration.record((end - start) / 1e9, {**attributes, OPERATION_TYPE: "send"})

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> Any:
        """The producer's ``send()`` in a span that ends with the record's delivery."""
        if _IN_BATCH.get() is self:
            return await self.original_send(
                topic, value, key, partition, timestamp_ms, headers, on_delivery
            )
        operation = _SendOperation(self, topic, key, partition, headers, on_delivery)
        try:
            return await self.original_send(
                topic, value, key, partition, timestamp_ms, operation.headers, operation.delivered
            )
        except BaseException as exc:  # refused, timed out or cancelled: not enqueued
            operation.refused(exc)
            raise

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] | None = None,
    ) -> RecordMetadata:
        """The traced ``send()``, then await the acknowledgement (as the class defines it)."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        metadata: RecordMetadata = await future
        return metadata

    async def send_batch(
        self, records: Iterable[ProducerRecord | RecordTuple]
    ) -> list[RecordMetadata | KafkaError]:
        """The producer's ``send_batch()`` in one send span (see :class:`_BatchOperation`)."""
        operation = _BatchOperation(self, records)
        token = _IN_BATCH.set(self)
        try:
            results = await self.original_send_batch(operation.records())
        except SendBatchAbortedError as exc:
            operation.finish(exc.results, exc)
            raise
        except BaseException as exc:
            operation.finish([], exc)
            raise
        finally:
            _IN_BATCH.reset(token)
        operation.finish(results, None)
        return cast(list[RecordMetadata | KafkaError], results)


class _SendOperation:
    """One ``send()``: its span, from the call to the record's delivery."""

    __slots__ = ("callback", "headers", "instrumentation", "partition", "span", "start", "topic")

    def __init__(
        self,
        instrumentation: _Instrumentation,
        topic: object,
        key: object,
        partition: object,
        headers: Any,
        callback: DeliveryCallback | None,
    ) -> None:
        self.instrumentation, self.callback = instrumentation, callback
        self.topic = _topic_text(topic)
        self.partition = partition if type(partition) is int else None
        attributes = instrumentation.span_attributes("send", self.topic, key)
        if self.partition is not None:  # the caller's choice, known before the send
            attributes[PARTITION_ID] = str(self.partition)
        propagator = instrumentation.propagator
        custom = custom_context(headers, propagator)
        self.start = time.time_ns()
        self.span = instrumentation.tracer.start_span(
            "send" if self.topic is None else f"send {self.topic}",
            # The span is the message's creation context, unless the caller gave one.
            kind=SpanKind.PRODUCER if custom is None else SpanKind.CLIENT,
            attributes=attributes,
            links=None if custom is None else [Link(custom)],
            start_time=self.start,
        )
        if custom is None:
            headers = headers_with(headers, inject(self.span, propagator))
        self.headers = headers

    def delivered(self, metadata: RecordMetadata | None, error: BaseException | None) -> None:
        """``on_delivery``: end the span with the outcome, then the caller's callback."""
        try:
            self._end(metadata, error)
        finally:
            if self.callback is not None:
                self.callback(metadata, error)

    def _end(self, metadata: RecordMetadata | None, error: BaseException | None) -> None:
        end = time.time_ns()
        span, topic, partition = self.span, self.topic, self.partition
        if metadata is not None:
            topic, partition = metadata.topic, metadata.partition
        address = None
        if topic is not None and partition is not None:
            address = _leader_address(self.instrumentation.producer, topic, partition)
        error_type = None if error is None else _error_type(error)
        if span.is_recording():
            span.set_attributes(_delivery_attributes(metadata, partition, address))
            if error is not None:
                _fail(span, error, _error_type(error))
        span.end(end_time=end)
        attributes = _outcome_attributes(topic, partition, address, error_type)
        self.instrumentation.sent.add(1, attributes)
        self.instrumentation.record_duration(self.start, end, attributes)

    def refused(self, error: BaseException) -> None:
        """``send()`` raised: the record was not enqueued. The span ends now, failed; the
        duration is recorded, not the count (the record was never sent)."""
        end = time.time_ns()
        error_type = _error_type(error)
        _fail(self.span, error, error_type)
        self.span.end(end_time=end)
        attributes = _outcome_attributes(self.topic, self.partition, None, error_type)
        self.instrumentation.record_duration(self.start, end, attributes)


class _BatchOperation:
    """One ``send_batch()``: a send span for the call, with the number of records it took
    (``messaging.batch.message_count``) and, per record, a link to its creation context:
    a ``create`` span of its own (the conventions recommend them for batch APIs) or, with
    ``batch_create_spans=False``, the send span itself (then not linked to)."""

    def __init__(
        self, instrumentation: _Instrumentation, records: Iterable[ProducerRecord | RecordTuple]
    ) -> None:
        self.instrumentation, self.source = instrumentation, records
        self.propagator = instrumentation.propagator
        self.topics: list[str | None] = []  # per record taken, in order
        self.creations: list[SpanContext | None] = []  # each one's context, if not the span's
        self.start = time.time_ns()
        self.span = instrumentation.tracer.start_span(
            "send",  # named after the topic at the end, if every record has the same one
            kind=SpanKind.CLIENT if instrumentation.batch_create_spans else SpanKind.PRODUCER,
            attributes=instrumentation.span_attributes("send", None, None),
            start_time=self.start,
        )
        self.send_context: list[Header] | None = None  # the span's, once made

    def records(self) -> Iterator[Any]:
        """The caller's records, read lazily (an iterator that raises midway does so as
        without instrumentation), each with its creation context in its headers."""
        for record in self.source:
            yield self._with_context(record)

    def _with_context(self, record: Any) -> Any:
        try:
            topic, value, key, partition, timestamp_ms, headers = send_arguments(record)
        except InvalidProducerRecordError:
            self.topics.append(None)
            self.creations.append(None)
            return record  # fails alone, as without instrumentation
        text = _topic_text(topic)
        self.topics.append(text)
        custom = custom_context(headers, self.propagator)
        self.creations.append(custom)
        if custom is not None:
            return record
        if self.instrumentation.batch_create_spans:
            attributes = self.instrumentation.span_attributes("create", text, key)
            create = self.instrumentation.tracer.start_span(
                "create" if text is None else f"create {text}",
                kind=SpanKind.PRODUCER,
                attributes=attributes,
            )
            create.end()
            self.creations[-1] = create.get_span_context()
            context = inject(create, self.propagator)
        else:
            if self.send_context is None:
                self.send_context = inject(self.span, self.propagator)
            context = self.send_context
        return (topic, value, key, partition, timestamp_ms, headers_with(headers, context))

    def finish(
        self, results: Sequence[RecordMetadata | KafkaError], error: BaseException | None
    ) -> None:
        """End the send span with what every record shares, a link per record to its
        creation context with what is its own, and the first failure (or what the call
        raised); count each record sent, and record the call's duration."""
        end = time.time_ns()
        span = self.span
        topics = set(self.topics[: len(results)])
        topic = topics.pop() if len(topics) == 1 else None
        shared: set[tuple[int | None, Address | None]] = set()  # partitions and leaders
        failures = [result for result in results if isinstance(result, BaseException)]
        for index, result in enumerate(results):
            shared.add(self._record_outcome(index, result))
        failure = error if error is not None else (failures[0] if failures else None)
        error_type = None if failure is None else _error_type(failure)
        partition, address = shared.pop() if len(shared) == 1 else (None, None)
        # What every record shares: a partition only within one topic.
        attributes = _outcome_attributes(
            topic, None if topic is None else partition, address, error_type
        )
        if span.is_recording():
            if topic is not None:
                span.update_name(f"send {topic}")
            extra: Attributes = {BATCH_COUNT: len(results)}
            if address is not None and address[2] is not None:
                extra[CLUSTER_ID] = address[2]
            span.set_attributes({**attributes, **extra})
            if failure is not None and error_type is not None:
                summary = f"{len(failures)} of {len(results)} records failed, the first: "
                _fail(span, failure, error_type, "" if error else summary + str(failure))
        span.end(end_time=end)
        self.instrumentation.record_duration(self.start, end, attributes)

    def _record_outcome(
        self, index: int, result: RecordMetadata | KafkaError
    ) -> tuple[int | None, Address | None]:
        """Count one record (unless it was refused before it was sent), and link the send
        span to its creation context; its partition and leader."""
        topic, partition, address = self.topics[index], None, None
        error_type = None
        if isinstance(result, RecordMetadata):
            partition = result.partition
            if topic is not None:
                address = _leader_address(self.instrumentation.producer, topic, partition)
        else:
            error_type = _error_type(result)
        attributes = _outcome_attributes(topic, partition, address, error_type)
        if not isinstance(result, _REFUSED):
            self.instrumentation.sent.add(1, attributes)
        creation = self.creations[index]
        if creation is not None and self.span.is_recording():
            if isinstance(result, RecordMetadata) and result.offset >= 0:
                attributes[OFFSET] = result.offset
            self.span.add_link(creation, attributes)
        return partition, address


# --------------------------------------------------------------------------- the API


def instrument_producer(
    producer: Producer | MockProducer,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    propagator: TextMapPropagator | None = None,
    batch_create_spans: bool = True,
) -> None:
    """Trace this producer's ``send()``, ``send_and_wait()`` and ``send_batch()``, put each
    record's trace context in its headers, and record the messaging metrics.

    ``tracer_provider`` and ``meter_provider`` default to the global ones, ``propagator``
    to the global text map propagator (W3C trace context and baggage unless configured
    otherwise), read at each send. ``batch_create_spans=False``: no ``create`` span per
    ``send_batch()`` record; the batch's send span context goes in every record. Works
    before or after ``start()``, on a ``Producer`` or a ``MockProducer``. Raises
    ``RuntimeError`` if the producer is instrumented already."""
    if _instrumentation_of(producer) is not None:
        raise RuntimeError(
            f"this {type(producer).__name__} is instrumented already; "
            "call uninstrument_producer() first to instrument it again"
        )
    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider, schema_url=SCHEMA_URL)
    meter = metrics.get_meter(_SCOPE, __version__, meter_provider, schema_url=SCHEMA_URL)
    instrumentation = _Instrumentation(producer, tracer, meter, propagator, batch_create_spans)
    attributes = vars(producer)
    attributes["send"] = instrumentation.send
    attributes["send_and_wait"] = instrumentation.send_and_wait
    attributes["send_batch"] = instrumentation.send_batch


def uninstrument_producer(producer: Producer | MockProducer) -> None:
    """Put back what :func:`instrument_producer` replaced (the instance's own C ``send``
    included). Records sent before keep their spans, which still end on delivery. Does
    nothing if the producer is not instrumented."""
    instrumentation = _instrumentation_of(producer)
    if instrumentation is None:
        return
    attributes = vars(producer)
    for name, previous in instrumentation.replaced.items():
        if previous is None:
            attributes.pop(name, None)
        else:
            attributes[name] = previous


def _instrumentation_of(producer: object) -> _Instrumentation | None:
    """The instrumentation whose wrapper is the producer's ``send`` now, if any."""
    owner = getattr(vars(producer).get("send"), "__self__", None)
    if isinstance(owner, _Instrumentation) and owner.producer is producer:
        return owner
    return None
