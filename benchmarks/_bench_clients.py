"""The peers, each configured from the same scenario.

Settings that exist in every client are set to the same value: acks, linger, batch size
in bytes (librdkafka's default is 1 MB, Java's and aiokafka's 16 KiB), compression,
idempotence, and murmur2 partitioning for keyed records (librdkafka's ``murmur2_random``
is Java's). Everything else keeps each client's defaults.

Over TLS (``spec.ssl_cafile`` set) every client trusts that CA only and checks the
broker's certificate and host name against it: each library's own way of saying so,
and nothing else about TLS (versions, ciphers) is set, so each negotiates its default.

In a transactional scenario every client gets the run's own transactional id
(``spec.transactional_id``), initialises its transactions before the warm-up record, and
sends every record (the warm-up's too) in a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from benchmarks._bench_drive import (
    WINDOW,
    AsyncClient,
    Due,
    MakeRecord,
    SendBatch,
    Tally,
    Transaction,
    transactions,
)
from benchmarks._bench_scenarios import Payloads, RunSpec, Scenario

if TYPE_CHECKING:
    from asyncproducer import Producer

ASYNCPRODUCER = "asyncproducer"
ASYNCPRODUCER_BATCH = "asyncproducer-batch"
AIOKAFKA = "aiokafka"
CONFLUENT = "confluent-kafka"
CONFLUENT_AIO = "confluent-kafka-aio"
CLIENTS = [ASYNCPRODUCER, ASYNCPRODUCER_BATCH, AIOKAFKA, CONFLUENT, CONFLUENT_AIO]
"""The Python clients: what runs without ``--clients``."""
JAVA = "java"
"""The Java producer (kafka-clients, in a JVM of its own: ``_bench_java``); opt-in."""
ALL_CLIENTS = [*CLIENTS, JAVA]
ASYNC_CLIENTS = [ASYNCPRODUCER, ASYNCPRODUCER_BATCH, AIOKAFKA, CONFLUENT_AIO]
"""The clients on an asyncio event loop: each runs on uvloop too, as ``NAME@uvloop``."""
ASYNCIO, UVLOOP = "asyncio", "uvloop"
LOOPS = [ASYNCIO, UVLOOP]
CLOSE_TIMEOUT_S = 10.0


def split_loop(client: str) -> tuple[str, str | None]:
    """``"aiokafka@uvloop"`` -> ``("aiokafka", "uvloop")``; a name without ``@`` is on
    asyncio if it is an async client, on no event loop at all otherwise (None)."""
    name, sep, loop = client.partition("@")
    if sep:
        return name, loop
    return name, ASYNCIO if name in ASYNC_CLIENTS else None


def with_loop(client: str, loop: str) -> str:
    """``client``'s name on ``loop``: the plain name on asyncio, and for a client with no
    event loop to change (confluent-kafka's synchronous producer, the JVM)."""
    return client if loop == ASYNCIO or client not in ASYNC_CLIENTS else f"{client}@{loop}"


def known(client: str) -> bool:
    """A client name ``--clients`` takes: a client, or an async one ``@`` a loop."""
    name, loop = split_loop(client)
    if "@" in client:
        return name in ASYNC_CLIENTS and loop in LOOPS
    return name in ALL_CLIENTS


def unavailable(client: str, scenario: Scenario, *, on_tansu: bool = True) -> str | None:
    """Why ``client`` cannot run ``scenario`` here, or None (``on_tansu``: the broker is
    the embedded Tansu, not Apache Kafka or a cluster given with ``--bootstrap-servers``)."""
    client, loop = split_loop(client)
    if loop == UVLOOP and importlib.util.find_spec("uvloop") is None:
        return "uvloop is not installed"
    if client == JAVA:
        from benchmarks._bench_java import unavailable as java_unavailable

        # On Tansu it runs kafka-clients 3.9 (_bench_java.TANSU_CLIENTS_VERSION).
        return java_unavailable()
    module = {AIOKAFKA: "aiokafka", CONFLUENT: "confluent_kafka", CONFLUENT_AIO: "confluent_kafka"}
    if client in module and importlib.util.find_spec(module[client]) is None:
        return f"{module[client]} is not installed"
    if client == ASYNCPRODUCER_BATCH:
        from asyncproducer import Producer

        if not hasattr(Producer, "send_batch"):
            return "Producer.send_batch does not exist yet"
    if client == AIOKAFKA and scenario.idempotence and not scenario.is_transactional and on_tansu:
        # Seen against Tansu: its InitProducerId version gets UNKNOWN_SERVER_ERROR.
        return "its idempotent producer fails against Tansu (InitProducerId: UnknownError)"
    if client == AIOKAFKA and scenario.is_transactional and on_tansu:
        # Seen against Tansu 0.6.0: start() fails, its InitProducerId v0 (with the
        # transactional id, after FindCoordinator found the broker) answered with
        # UNKNOWN_SERVER_ERROR. It runs against Apache Kafka (--bootstrap-servers).
        return "its transactional producer fails against Tansu (InitProducerId v0: UnknownError)"
    return None


def note(client: str, scenario: Scenario) -> str | None:
    """What a reader of the results should know about this client in this scenario."""
    client, _ = split_loop(client)
    if client == CONFLUENT and scenario.tasks > 1:
        return "synchronous client: concurrency does not apply, ran single-threaded"
    return None


# --------------------------------------------------------------------------- asyncproducer


def asyncproducer_config(scenario: Scenario) -> dict[str, Any]:
    return {
        "acks": "all" if scenario.acks == "all" else int(scenario.acks),
        "linger_ms": scenario.linger_ms,
        "batch_size": scenario.batch_size,
        "compression_type": scenario.compression,
        "enable_idempotence": scenario.idempotence,
    }


def asyncproducer_transactions(spec: RunSpec) -> dict[str, Any]:
    if not spec.scenario.is_transactional:
        return {}
    return {"transactional_id": spec.transactional_id}


def asyncproducer_tls(spec: RunSpec) -> dict[str, Any]:
    """The Java names (docs/security.md): a PEM truststore; host names are checked."""
    if spec.ssl_cafile is None:
        return {}
    return {"security_protocol": "SSL", "ssl_truststore_location": spec.ssl_cafile}


@contextlib.asynccontextmanager
async def open_asyncproducer(spec: RunSpec) -> AsyncIterator[tuple[AsyncClient, Producer]]:
    """The client, and the producer itself (for ``send_batch``)."""
    # Imported here, as each peer is: a client process loads only its own library, so
    # its peak RSS is its own.
    from asyncproducer import Producer

    config = (
        asyncproducer_config(spec.scenario)
        | asyncproducer_tls(spec)
        | asyncproducer_transactions(spec)
    )
    producer = Producer(spec.bootstrap_servers, **config)
    await producer.start()  # with a transactional id: InitProducerId, as Java's initTransactions
    transaction = producer.transaction if spec.scenario.is_transactional else None
    try:
        send = functools.partial(producer.send, spec.topic)
        yield AsyncClient(send, producer.flush, transaction), producer
    finally:
        await producer.close(timeout=CLOSE_TIMEOUT_S)


def batch_api(producer: Producer, spec: RunSpec, data: Payloads) -> tuple[SendBatch, MakeRecord]:
    """``send_batch`` and a function making record ``i``: a tuple of ``send()``'s
    arguments (topic, value, key), the cheapest record form ``send_batch`` documents, as
    confluent-kafka's ``produce()`` takes its arguments with no record object."""
    topic = spec.topic

    def make_record(i: int) -> tuple[str, bytes, bytes | None]:
        return (topic, data.value(i), data.key(i))

    send_batch: SendBatch = producer.send_batch
    return send_batch, make_record


# --------------------------------------------------------------------------- aiokafka


def aiokafka_tls(spec: RunSpec) -> dict[str, Any]:
    """aiokafka takes TLS as an ``ssl_context``; its helper builds one that trusts the CA
    and checks host names."""
    if spec.ssl_cafile is None:
        return {}
    from aiokafka.helpers import create_ssl_context

    return {"security_protocol": "SSL", "ssl_context": create_ssl_context(cafile=spec.ssl_cafile)}


@contextlib.asynccontextmanager
async def open_aiokafka(spec: RunSpec) -> AsyncIterator[AsyncClient]:
    from aiokafka import AIOKafkaProducer

    s = spec.scenario
    producer = AIOKafkaProducer(
        bootstrap_servers=spec.bootstrap_servers,
        acks="all" if s.acks == "all" else int(s.acks),
        linger_ms=s.linger_ms,
        max_batch_size=s.batch_size,
        compression_type=None if s.compression == "none" else s.compression,
        enable_idempotence=s.idempotence,
        transactional_id=spec.transactional_id if s.is_transactional else None,
        **aiokafka_tls(spec),
    )
    await producer.start()  # with a transactional id: InitProducerId
    transaction = producer.transaction if s.is_transactional else None
    try:
        send = functools.partial(producer.send, spec.topic)
        yield AsyncClient(send, producer.flush, transaction)
    finally:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await producer.stop()


# --------------------------------------------------------------------------- confluent-kafka


def confluent_config(spec: RunSpec) -> dict[str, Any]:
    s = spec.scenario
    return (
        {
            "bootstrap.servers": spec.bootstrap_servers,
            "acks": s.acks,
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_size,
            "compression.type": s.compression,
            "enable.idempotence": s.idempotence,
            "partitioner": "murmur2_random",
        }
        | confluent_tls(spec.ssl_cafile)
        | confluent_transactions(spec)
    )


def confluent_transactions(spec: RunSpec) -> dict[str, Any]:
    if not spec.scenario.is_transactional:
        return {}
    return {"transactional.id": spec.transactional_id}


def confluent_tls(ssl_cafile: str | None) -> dict[str, Any]:
    """librdkafka checks host names by default (``ssl.endpoint.identification.algorithm``
    is ``https`` since 2.0)."""
    if ssl_cafile is None:
        return {}
    return {"security.protocol": "SSL", "ssl.ca.location": ssl_cafile}


@contextlib.asynccontextmanager
async def open_confluent_aio(spec: RunSpec) -> AsyncIterator[AsyncClient]:
    from confluent_kafka.aio import AIOProducer

    producer = AIOProducer(confluent_config(spec))

    # AIOProducer completes futures only when something polls librdkafka: its own
    # produce_batch (every 1,000 produce() calls, its default batch_size), flush(), or
    # a 1 s inactivity timer. A task awaiting a future would stall for that second, so
    # poll in the background, as librdkafka applications do.
    async def poll_forever() -> None:
        while True:
            await producer.poll(0.1)

    poller = asyncio.create_task(poll_forever())
    try:
        transaction = None
        if spec.scenario.is_transactional:
            await producer.init_transactions(spec.timeout_s)
            transaction = confluent_aio_transaction(producer, spec.timeout_s)
        send = functools.partial(producer.produce, spec.topic)
        yield AsyncClient(send, producer.flush, transaction)
    finally:
        poller.cancel()
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await producer.close()


def confluent_aio_transaction(producer: Any, timeout_s: float) -> Transaction:
    """AIOProducer has no transaction context: begin, then commit at the end of the
    block (its commit_transaction() flushes its buffer first), or abort if it raises."""

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[None]:
        await producer.begin_transaction()
        try:
            yield
        except BaseException:
            await producer.abort_transaction(timeout_s)
            raise
        await producer.commit_transaction(timeout_s)

    return transaction


class SyncConfluent:
    """confluent-kafka's synchronous Producer: produce() + poll(0), the idiomatic loop.

    Its queue holds at most ``WINDOW`` undelivered records, the same bound the async
    clients keep; when it is full, produce() raises BufferError and the loop polls.
    """

    def __init__(self, spec: RunSpec) -> None:
        from confluent_kafka import Producer

        config = confluent_config(spec) | {"queue.buffering.max.messages": WINDOW}
        self.producer = Producer(config)
        self.topic = spec.topic
        if spec.scenario.is_transactional:
            self.producer.init_transactions(spec.timeout_s)

    def flush(self, deadline: float) -> None:
        left = self.producer.flush(max(0.0, deadline - time.monotonic()))
        if left:
            raise TimeoutError(f"{left} records still undelivered at the deadline")

    def produce(
        self, value: bytes, key: bytes | None, done: Callable[..., None], deadline: float
    ) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=done)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "the producer queue stayed full until the deadline"
                    ) from None
                self.producer.poll(0.1)

    def throughput(self, spec: RunSpec, data: Payloads, tally: Tally, deadline: float) -> None:
        delivered = _counter(tally)
        for i in range(spec.records):
            self.produce(data.value(i), data.key(i), delivered, deadline)
            self.producer.poll(0)
        self.flush(deadline)

    def transactional(self, spec: RunSpec, data: Payloads, tally: Tally, deadline: float) -> None:
        """begin_transaction(), produce() + poll(0) each record, commit_transaction() (it
        flushes, serving the delivery callbacks, then commits), transaction after
        transaction."""
        delivered = _counter(tally)
        for records in transactions(spec.records, spec.scenario.transaction_size):
            self.producer.begin_transaction()
            for i in records:
                self.produce(data.value(i), data.key(i), delivered, deadline)
                self.producer.poll(0)
            self.producer.commit_transaction(max(0.0, deadline - time.monotonic()))
        self.producer.poll(0)  # any delivery callback the commit left queued

    def latency(self, spec: RunSpec, data: Payloads, tally: Tally, deadline: float) -> None:
        from confluent_kafka import KafkaException

        def on_ack(i: int, due: float) -> Callable[[Any, Any], None]:
            def delivered(error: Any, _message: Any) -> None:
                tally.latency[i] = time.perf_counter() - due
                if error is not None:
                    tally.fail(KafkaException(error))
                else:
                    tally.ok()

            return delivered

        rate, start, i = spec.scenario.rate, time.perf_counter(), 0
        while i < spec.records:
            due = min(spec.records, int((time.perf_counter() - start) * rate) + 1)
            batch: Due = [(j, start + j / rate) for j in range(i, due)]
            for j, due_at in batch:
                self.produce(data.value(j), data.key(j), on_ack(j, due_at), deadline)
            i = max(i, due)
            # Serves delivery callbacks while waiting for the next record's turn; at least
            # 1 ms, the async clients' timer resolution (less would spin: librdkafka
            # counts whole milliseconds).
            self.producer.poll(max(0.001, start + i / rate - time.perf_counter()))
        self.flush(deadline)


def _counter(tally: Tally) -> Callable[[Any, Any], None]:
    """A delivery callback that counts each record's outcome."""
    from confluent_kafka import KafkaException

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            tally.fail(KafkaException(error))
        else:
            tally.ok()

    return delivered
