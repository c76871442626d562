"""Asynchronous key and value serializers (a coroutine function, or an object or class whose
``serialize`` is one): awaited inside ``send()`` and ``send_batch()`` in Java's order,
bounded by ``max_block_ms``, failing with the same ``SerializationError`` as synchronous
ones, never half-enqueuing a record; and a producer without one keeps its C fast path.

FakeCluster, on asyncio, uvloop and trio. The real Schema Registry serializer is in
tests/integration/test_schema_registry.py.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncproducer import Producer, ProducerRecord, RecordMetadata, _staging
from asyncproducer._batch import RECORDS_PER_CHARGE
from asyncproducer._types import Header
from asyncproducer.errors import ProducerClosedError, SerializationError, TransactionStateError
from asyncproducer.interceptors import ProducerInterceptor
from asyncproducer.serializers import resolve_awaited_serializer, resolve_serializer
from asyncproducer.testing.fake import FakeCluster
from asyncproducer.testing.mock import MockProducer
from tests.conftest import ASYNCIO_BACKENDS
from tests.schema_registry_stub import SchemaRegistryStub

pytestmark = pytest.mark.anyio

needs_c = pytest.mark.skipif(
    _staging.Appender is None, reason="asyncproducer._speedups did not build"
)


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[tuple[FakeCluster, Producer]]:
    """A producer on a one-broker FakeCluster with topic ``t`` (2 partitions)."""
    with anyio.fail_after(15):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 2)
            async with Producer(cluster.bootstrap_servers, **config) as producer:
                yield cluster, producer


def stored(cluster: FakeCluster, topic: str = "t") -> list[tuple[bytes | None, bytes | None]]:
    return [(r.key, r.value) for p in range(2) for r in cluster.records(topic, p)]


def queued(producer: Producer) -> int:
    return sum(b.record_count for q in producer._accumulator.queues.values() for b in q)


# --------------------------------------------------------------------------- the forms


async def shout(data: Any) -> bytes | None:
    """A coroutine function that waits once before it answers."""
    await anyio.lowlevel.checkpoint()
    return None if data is None else str(data).upper().encode()


async def prefixed(prefix: bytes, data: Any) -> bytes:
    return prefix + str(data).encode()  # finishes in its first step


class Described:
    """Java style: ``async def serialize(topic, headers, data)``."""

    async def serialize(self, topic: str, headers: Sequence[Header], data: Any) -> bytes | None:
        await anyio.lowlevel.checkpoint()
        return None if data is None else f"{topic}/{len(headers)}/{data}".encode()


class CallableObject:
    async def __call__(self, data: Any) -> bytearray:
        return bytearray(b"obj:" + str(data).encode())  # bytes-like: copied as bytes


FORMS: list[tuple[str, Any, bytes]] = [
    ("coroutine function", shout, b"ABC"),
    ("partial", functools.partial(prefixed, b"p:"), b"p:abc"),
    ("object", Described(), b"t/1/abc"),
    ("class", Described, b"t/1/abc"),
    ("callable object", CallableObject(), b"obj:abc"),
]


@pytest.mark.parametrize(("form", "serializer", "expected"), FORMS, ids=[f[0] for f in FORMS])
def test_each_async_form_is_recognized(form: str, serializer: Any, expected: bytes) -> None:
    for is_key in (True, False):
        awaited = resolve_awaited_serializer(serializer, is_key=is_key)
        assert awaited is not None, form
        assert awaited.role == ("key" if is_key else "value")
        # The synchronous resolver refuses them rather than call them without awaiting.
        with pytest.raises(TypeError, match="asynchronous"):
            resolve_serializer(serializer, is_key=is_key)


def test_synchronous_forms_are_not_awaited() -> None:
    class SyncJava:
        def serialize(self, topic: str, headers: Any, data: Any) -> bytes:
            return b""

        async def __call__(self, data: Any) -> bytes:  # serialize() wins, as for sync ones
            return b""

    for spec in (None, "json", "str", lambda data: b"", SyncJava(), SyncJava):
        assert resolve_awaited_serializer(spec, is_key=False) is None


async def test_key_and_value_of_each_form_are_awaited_and_sent() -> None:
    sends: list[tuple[Any, Any]] = []
    with anyio.fail_after(15):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 2)
            for _, serializer, expected in FORMS:
                async with Producer(
                    cluster.bootstrap_servers,
                    key_serializer=serializer,
                    value_serializer=serializer,
                ) as each:
                    assert each._awaits_serializers
                    assert each._appender is None
                    metadata = await each.send_and_wait(
                        "t", "abc", key="abc", headers=[("h", b"1")]
                    )
                    assert (metadata.serialized_key_size, metadata.serialized_value_size) == (
                        len(expected),
                        len(expected),
                    )
                    sends.append((expected, expected))
            assert sorted(stored(cluster)) == sorted(sends)


async def test_none_is_given_to_the_serializer_and_a_tombstone_stays_one() -> None:
    async with running(key_serializer="str", value_serializer=shout) as (cluster, producer):
        metadata = await producer.send_and_wait("t", None, key="k")
        assert metadata.serialized_value_size == -1
        assert stored(cluster) == [(b"k", None)]


async def test_java_order_interceptors_metadata_key_value_partitioner() -> None:
    log: list[Any] = []

    class Logging(ProducerInterceptor):
        def on_send(self, record: ProducerRecord) -> ProducerRecord:
            log.append(("on_send", record.value))
            return ProducerRecord(record.topic, record.value + "!", record.key)

    async def key_serializer(data: Any) -> bytes:
        log.append(("key", data, "t" in producer._metadata.partition_counts))
        await anyio.lowlevel.checkpoint()
        return str(data).encode()

    class Value:
        async def serialize(self, topic: str, headers: Any, data: Any) -> bytes:
            log.append(("value", data))
            await anyio.lowlevel.checkpoint()
            return str(data).encode()

    class Partitioner:
        def partition(self, topic: str, key: Any, key_bytes: Any, value: Any, *rest: Any) -> int:
            log.append(("partition", key, key_bytes, value))
            return 1

    async with running(
        interceptors=[Logging()],
        key_serializer=key_serializer,
        value_serializer=Value(),
        partitioner=Partitioner(),
    ) as (cluster, producer):
        metadata = await producer.send_and_wait("t", "v", key="k")
    assert metadata.partition == 1
    assert log == [
        ("on_send", "v"),
        ("key", "k", True),  # the topic's metadata first, as Java's doSend waits for it
        ("value", "v!"),
        ("partition", "k", b"k", "v!"),  # the original key and value, and the bytes
    ]
    assert cluster.records("t", 1)[0].value == b"v!"


async def test_a_synchronous_key_serializer_still_runs_before_the_async_value_one() -> None:
    log: list[str] = []

    def key_serializer(data: Any) -> bytes:
        log.append("key")
        return b"k"

    async def value_serializer(data: Any) -> bytes:
        log.append("value")
        return b"v"

    async with running(key_serializer=key_serializer, value_serializer=value_serializer) as (
        cluster,
        producer,
    ):
        await producer.send_and_wait("t", "v", key="k")
    assert log == ["key", "value"]
    assert stored(cluster) == [(b"k", b"v")]


async def test_headers_reach_the_serializer_checked() -> None:
    seen: list[Any] = []

    class Recording:
        async def serialize(self, topic: str, headers: Sequence[Header], data: Any) -> bytes:
            seen.append(headers)
            return b"v"

    async with running(value_serializer=Recording()) as (cluster, producer):
        await producer.send_and_wait("t", "v", headers=[("a", bytearray(b"1")), ("b", None)])  # type: ignore[list-item]
    assert seen == [(("a", b"1"), ("b", None))]
    assert [r.headers for p in range(2) for r in cluster.records("t", p)] == seen


async def test_detection_happens_once_not_per_record() -> None:
    """The serializer object is inspected while the producer is built, and never again:
    each record calls the method found then."""
    lookups = 0

    class Counting:
        async def _serialize(self, topic: str, headers: Any, data: Any) -> bytes:
            return b"v"

        @property
        def serialize(self) -> Any:
            nonlocal lookups
            lookups += 1
            return self._serialize

    async with running(value_serializer=Counting()) as (cluster, producer):
        after_construction = lookups
        assert after_construction > 0
        for _ in range(5):
            await producer.send("t", "x")
        await producer.flush()
    assert lookups == after_construction
    assert len(stored(cluster)) == 5


# --------------------------------------------------------------------------- errors


# Each fails for a dict, and serializes a str.


async def raises_at_once(data: Any) -> bytes:
    if isinstance(data, dict):
        raise ValueError("no schema for this")
    return str(data).encode()


async def raises_after_waiting(data: Any) -> bytes:
    await anyio.lowlevel.checkpoint()
    return await raises_at_once(data)


async def returns_an_int(data: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return 42 if isinstance(data, dict) else str(data).encode()


FAILURES = [
    pytest.param(raises_at_once, "ValueError: no schema for this", id="raises-at-once"),
    pytest.param(raises_after_waiting, "ValueError: no schema for this", id="raises-after-wait"),
    pytest.param(returns_an_int, "it returned int, expected bytes or None", id="wrong-type"),
]


@pytest.mark.parametrize(("serializer", "reason"), FAILURES)
async def test_a_failure_is_a_serialization_error_and_nothing_is_enqueued(
    serializer: Any, reason: str
) -> None:
    failed: list[BaseException] = []

    class Watching(ProducerInterceptor):
        def on_acknowledgement(self, metadata: Any, exception: BaseException | None) -> None:
            if exception is not None:
                failed.append(exception)

    async with running(value_serializer=serializer, interceptors=[Watching()]) as (
        cluster,
        producer,
    ):
        with pytest.raises(SerializationError) as raised:
            await producer.send("t", {"order": 1}, key=b"k")
        message = str(raised.value)
        assert "value of type dict for topic 't'" in message
        assert serializer.__qualname__ in message
        assert reason in message
        if "raises" in serializer.__name__:
            assert isinstance(raised.value.__cause__, ValueError)
        assert queued(producer) == 0
        assert failed == [raised.value]  # the interceptors hear of it, as for sync ones
        await producer.send_and_wait("t", "fine")  # the producer goes on
    assert stored(cluster) == [(None, b"fine")]


def test_a_plain_function_returning_a_coroutine_is_told_to_be_async_def() -> None:
    """Not awaited (it is not async def): the error says so, and the coroutine is closed
    rather than left to warn 'never awaited' (warnings are errors here)."""
    serialize = resolve_serializer(lambda data: shout(data), is_key=False)
    with pytest.raises(SerializationError, match="an awaitable: for the producer to await it"):
        serialize("t", (), "x")


def test_mock_producer_refuses_an_async_serializer_at_construction() -> None:
    with pytest.raises(TypeError, match="asynchronous"):
        MockProducer(value_serializer=shout)


# --------------------------------------------------------------------------- waits


class Blocking:
    """Waits until released (or cancelled), noting how it ended."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.ended: list[str] = []

    async def serialize(self, topic: str, headers: Any, data: Any) -> bytes:
        self.started.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.ended.append("cancelled")
            raise
        self.ended.append("released")
        return b"late"


async def test_cancelling_send_cancels_the_serializer_and_enqueues_nothing() -> None:
    serializer = Blocking()
    async with running(value_serializer=serializer, max_block_ms=30_000) as (cluster, producer):
        with anyio.move_on_after(0.2) as scope:
            await producer.send("t", "x")
        assert scope.cancelled_caught  # the caller's cancellation went through, untouched
        assert serializer.ended == ["cancelled"]
        assert queued(producer) == 0
        serializer.release.set()
        await producer.send_and_wait("t", "after")
    assert stored(cluster) == [(None, b"late")]


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
@pytest.mark.parametrize("waits", [False, True], ids=["at-once", "after-waiting"])
async def test_a_serializer_cancelled_by_something_else_is_a_serialization_error(
    waits: bool,
) -> None:
    """On asyncio a CancelledError can come from a future another task cancelled: that
    is the serializer failing, not the caller being cancelled."""

    async def serializer(data: Any) -> bytes:
        future = asyncio.get_running_loop().create_future()
        if waits:
            asyncio.get_running_loop().call_soon(future.cancel)
        else:
            future.cancel()
        await future
        return b"never"

    async with running(value_serializer=serializer) as (_cluster, producer):
        with pytest.raises(SerializationError, match=r"it was cancelled \(CancelledError"):
            await producer.send("t", "x")
        assert queued(producer) == 0
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0


@pytest.mark.parametrize("swallows", [False, True], ids=["cancelled", "turns-it-into-an-error"])
async def test_a_serializer_slower_than_max_block_ms_fails_in_time(swallows: bool) -> None:
    ended: list[str] = []

    async def slow(data: Any) -> bytes:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            if swallows:
                raise RuntimeError("registry request aborted") from None
            raise
        return b"never"

    async with running(value_serializer=slow, max_block_ms=300) as (_cluster, producer):
        await producer.partitions_for("t")  # the topic's metadata: not part of the wait here
        began = time.monotonic()
        with pytest.raises(SerializationError, match="did not finish within max_block_ms"):
            await producer.send("t", "x")
        assert 0.25 <= time.monotonic() - began < 5
        assert ended == ["cancelled"]
        assert queued(producer) == 0


@pytest.fixture(scope="module")
def registry() -> Iterator[SchemaRegistryStub]:
    with SchemaRegistryStub() as stand_in:
        yield stand_in


async def test_a_schema_registry_request_slower_than_max_block_ms_is_stopped(
    registry: SchemaRegistryStub,
) -> None:
    """The real case: confluent-kafka's serializer waits on an HTTP request, inside
    httpx's own cancel scopes, when the producer's deadline comes; the client recovers."""
    from confluent_kafka.schema_registry import AsyncSchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AsyncAvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    class Adapter:
        def __init__(self, serializer: Any) -> None:
            self._serializer = serializer

        async def serialize(self, topic: str, headers: Any, data: Any) -> bytes | None:
            context = SerializationContext(topic, MessageField.VALUE, headers)
            result: bytes | None = await self._serializer(data, context)
            return result

    schema = '{"type": "record", "name": "Slow", "fields": [{"name": "n", "type": "long"}]}'
    async with AsyncSchemaRegistryClient({"url": registry.url, "timeout": 30}) as client:
        avro = await AsyncAvroSerializer(
            client, schema, conf={"subject.name.strategy.type": "TOPIC"}
        )
        async with running(value_serializer=Adapter(avro), max_block_ms=400) as (cluster, producer):
            await producer.partitions_for("t")
            registry.delay_s = 5.0
            try:
                began = time.monotonic()
                with pytest.raises(SerializationError, match="did not finish within max_block_ms"):
                    await producer.send("t", {"n": 1})
                assert time.monotonic() - began < 3
            finally:
                registry.delay_s = 0.0
            assert queued(producer) == 0
            metadata = await producer.send_and_wait("t", {"n": 2})
            value = cluster.records("t", metadata.partition)[0].value
            assert value is not None
            assert value[0] == 0  # Confluent's framing: the magic byte, then the schema id


async def test_a_producer_closed_while_a_serializer_waits_enqueues_nothing() -> None:
    serializer = Blocking()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        producer = Producer(cluster.bootstrap_servers, value_serializer=serializer)
        await producer.start()
        outcome: list[BaseException] = []

        async def send() -> None:
            try:
                await producer.send("t", "x")
            except ProducerClosedError as exc:
                outcome.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(send)
                await serializer.started.wait()
                await producer.close()
                serializer.release.set()
        assert len(outcome) == 1
        assert cluster.records("t", 0) == []


# --------------------------------------------------------------------------- send_batch


async def test_send_batch_awaits_each_record_and_a_failure_fails_alone() -> None:
    async def serializer(data: Any) -> bytes:
        await anyio.lowlevel.checkpoint()
        if data == "bad":
            raise ValueError("bad record")
        return str(data).encode()

    async with running(value_serializer=serializer, key_serializer="str") as (cluster, producer):
        results = await producer.send_batch(
            [("t", f"v{i}", "same-key") for i in range(5)]
            + [("t", "bad", "same-key"), ProducerRecord("t", "last", "same-key")]
        )
    assert [type(r) for r in results] == [RecordMetadata] * 5 + [SerializationError, RecordMetadata]
    assert "ValueError: bad record" in str(results[5])
    offsets = [r.offset for r in results if isinstance(r, RecordMetadata)]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 6
    values = [value for _, value in stored(cluster)]
    assert values == [b"v0", b"v1", b"v2", b"v3", b"v4", b"last"]


# --------------------------------------------------------------------------- transactions


async def test_a_serializer_failure_does_not_spoil_the_transaction() -> None:
    """As a synchronous one's: an argument refused before any broker saw it; the caller
    may leave that record out and commit the rest."""

    async def serializer(data: Any) -> bytes:
        await anyio.lowlevel.checkpoint()
        if data == "bad":
            raise ValueError("bad record")
        return str(data).encode()

    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with (
                Producer(
                    cluster.bootstrap_servers,
                    transactional_id="tx-async-serializer",
                    value_serializer=serializer,
                    linger_ms=0,
                ) as producer,
                producer.transaction(),
            ):
                await producer.send("t", "kept")
                with pytest.raises(SerializationError):
                    await producer.send("t", "bad")
                await producer.send("t", "also kept")
            committed = cluster.records("t", 0, isolation="read_committed")
    assert [r.value for r in committed] == [b"kept", b"also kept"]


async def test_a_record_whose_serializer_outlives_the_transaction_is_in_none() -> None:
    serializer = Blocking()
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers,
                transactional_id="tx-outlived",
                value_serializer=serializer,
                linger_ms=0,
            ) as producer:
                outcome: list[BaseException] = []

                async def send() -> None:
                    try:
                        await producer.send("t", "late")
                    except TransactionStateError as exc:
                        outcome.append(exc)

                await producer.begin_transaction()
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(send)
                    await serializer.started.wait()
                    await producer.commit_transaction()
                    serializer.release.set()
                assert len(outcome) == 1
            assert cluster.records("t", 0) == []


# --------------------------------------------------------------------------- the fast path


@needs_c
async def test_without_an_async_serializer_plain_bytes_keep_the_c_fast_path() -> None:
    """The C appender still takes a warm partition's bytes (no Python staging at all);
    with an async serializer there is no appender, and every record is awaited."""
    async with running(linger_ms=60_000) as (cluster, producer):
        assert not producer._awaits_serializers
        assert producer._appender is not None
        assert vars(producer)["send"] == producer._appender.send
        await producer.send("t", b"opens the batch", partition=0)
        staged = 0
        stage = producer._stager.stage

        def counting(*args: Any) -> Any:
            nonlocal staged
            staged += 1
            return stage(*args)

        producer._stager.stage = counting  # type: ignore[method-assign,assignment]
        for i in range(20):
            await producer.send("t", b"%d" % i, partition=0)
        # All twenty by the C shortcut but the one at which the batch paid for more
        # records (16 up front).
        assert staged <= (21 // RECORDS_PER_CHARGE).bit_length()
        await producer.flush()
    assert len(cluster.records("t", 0)) == 21


def test_with_an_async_serializer_there_is_no_c_shortcut() -> None:
    for config in ({"value_serializer": shout}, {"key_serializer": Described}):
        producer = Producer("localhost:9092", **config)
        assert producer._awaits_serializers
        assert producer._appender is None
        assert "send" not in vars(producer)
        assert inspect.iscoroutinefunction(producer.send)
