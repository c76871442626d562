"""The public ``Producer``: lifecycle, ``send()``, ``flush()``, ``close()``.

``send()`` runs the Java producer's ``doSend`` in order: interceptors' ``on_send`` →
metadata for the topic (waits at most ``max_block_ms``) → key/value serializers → size
check → partition (explicit, custom partitioner, murmur2 of the key, or sticky for
keyless records) — these steps are ``_staging.RecordStager`` — → append to the
accumulator (reserving buffer memory for a new batch, also within ``max_block_ms``). It
returns the record's future at once; the sender task completes it. ``send_batch()``
stages each record the same way.

With a ``transactional_id``, ``start()`` also initializes the transactions (``_transactional``)
and the transactional methods come from ``_transaction_api.TransactionAPI``; ``send()``
goes ahead only inside a transaction (``_may_send``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from types import MethodType
from typing import TYPE_CHECKING, Any

import anyio

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._compression_worker import OFFLOAD_BYTES, CompressionWorker
from asyncproducer._connection import ConnectionSettings, Handshake
from asyncproducer._futures import (
    Checkpoint,
    FutureFactory,
    checkpoint_factory,
    future_factory,
    untrackable_futures,
)
from asyncproducer._host import background_task, spawn_host
from asyncproducer._idempotence import IdempotenceState
from asyncproducer._lifecycle import State, transition_allowed
from asyncproducer._memory import BufferPool
from asyncproducer._metadata import MetadataManager
from asyncproducer._metrics import Metric, MetricConfig
from asyncproducer._metrics_wiring import (
    close_reporters,
    register_gauges,
    start_reporters,
)
from asyncproducer._plugins import named_plugin
from asyncproducer._pool import ConnectionPool
from asyncproducer._producer_metrics import ProducerMetrics
from asyncproducer._properties import parse_properties, read_properties
from asyncproducer._send_path import SendPath
from asyncproducer._sender import Sender, SenderSettings
from asyncproducer._staging import RecordStager
from asyncproducer._sticky_switch import BrokerAvailability
from asyncproducer._tls import client_tls_context
from asyncproducer._transaction_api import TransactionAPI
from asyncproducer._transactions import TransactionManager, TransactionState
from asyncproducer._types import PartitionInfo
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import (
    KafkaError,
    ProducerClosedError,
    ProducerStateError,
    fresh_copy,
)
from asyncproducer.interceptors import InterceptorChain

if TYPE_CHECKING:
    from asyncproducer._transactional import TransactionalCalls

logger: logging.Logger = logging.getLogger("asyncproducer.producer")


class Producer(SendPath, TransactionAPI):
    """An asynchronous Kafka producer. See the module docstring and ``docs/producer.md``."""

    def __init__(self, bootstrap_servers: str | Sequence[str] | None = None, **config: Any) -> None:
        if bootstrap_servers is None:
            bootstrap_servers = config.pop("bootstrap_servers", None)
        if bootstrap_servers is None:
            raise TypeError("Producer() needs bootstrap_servers='host:port[,host:port...]'")
        self._config = ProducerConfig.from_kwargs(bootstrap_servers, **config)
        self._state = State.NEW
        self._may_send = False
        self._failure: BaseException | None = None
        self._setup()

    @classmethod
    def from_config(cls, properties: Mapping[str, Any]) -> Producer:
        """A producer from Java-style keys: ``{"bootstrap.servers": ..., "linger.ms": 5}``."""
        producer = cls.__new__(cls)
        producer._config = ProducerConfig.from_java_properties(properties)
        producer._state = State.NEW
        producer._may_send = False
        producer._failure = None
        producer._setup()
        return producer

    @classmethod
    def from_properties(cls, source: str | os.PathLike[str]) -> Producer:
        """A producer from a Java client ``.properties`` file: ``source`` is its path (a
        path object, or a string naming an existing file), or else its text. Class names
        in it may be dotted paths to Python objects or the Java client's built-in
        serializers and partitioners (docs/producer.md, "Java properties")."""
        if isinstance(source, os.PathLike) or os.path.isfile(source):
            properties = read_properties(source)
        else:
            properties = parse_properties(source)
        return cls.from_config(properties)

    def _setup(self) -> None:
        config = self._config
        self._interceptors = InterceptorChain(
            [_instance(named_plugin(i, "interceptors")) for i in config.interceptors]
        )
        self._intercepting = bool(self._interceptors)
        self._max_block_s = config.max_block_ms / 1000
        self._batch_size = config.batch_size
        self._new_future: FutureFactory | None = None
        self._checkpoint: Checkpoint = anyio.lowlevel.checkpoint  # the loop's own, once started
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._started = anyio.Event()
        self._memory = BufferPool(config.buffer_memory)
        self._metrics = ProducerMetrics(
            config.client_id,
            MetricConfig(config.metrics_num_samples, config.metrics_sample_window_ms),
        )
        # Large batches (or records) compressed in threads (see _compression_worker).
        self._compression = (
            CompressionWorker(lambda: self._sender.wakeup())
            if config.compression_type in OFFLOAD_BYTES
            else None
        )
        self._accumulator = RecordAccumulator(
            batch_size=config.batch_size,
            linger_ms=config.linger_ms,
            compression=config.compression_type,
            compression_level=config.compression_level(),
            delivery_timeout_ms=config.delivery_timeout_ms,
            retry_backoff=ExponentialBackoff(config.retry_backoff_ms, config.retry_backoff_max_ms),
            # Idempotence keeps order with sequence numbers; without it only one request
            # per partition at a time does (Java's guaranteeMessageOrder).
            guarantee_order=not config.idempotence_enabled
            and config.max_in_flight_requests_per_connection == 1,
            charge=self._memory.try_reserve,
            offload=None if self._compression is None else self._compression.submit,
        )
        self._pool = ConnectionPool(
            ConnectionSettings(
                client_id=config.client_id,
                request_timeout_ms=config.request_timeout_ms,
                socket_connection_setup_timeout_ms=config.socket_connection_setup_timeout_ms,
                socket_connection_setup_timeout_max_ms=config.socket_connection_setup_timeout_max_ms,
                ssl_context=client_tls_context(config),
                handshake=_sasl_handshake(config),
                metrics=self._metrics,
                send_buffer_bytes=config.send_buffer_bytes,
                receive_buffer_bytes=config.receive_buffer_bytes,
            ),
            reconnect_backoff_ms=config.reconnect_backoff_ms,
            reconnect_backoff_max_ms=config.reconnect_backoff_max_ms,
            connections_max_idle_ms=config.connections_max_idle_ms,
        )
        self._metadata = MetadataManager(
            self._pool,
            parse_bootstrap_servers(config.bootstrap_servers),
            metadata_max_age_ms=config.metadata_max_age_ms,
            retry_backoff_ms=config.retry_backoff_ms,
            allow_auto_topic_creation=config.allow_auto_create_topics,
            metadata_max_idle_ms=config.metadata_max_idle_ms,
            canonical_bootstrap_names=(
                config.client_dns_lookup == "resolve_canonical_bootstrap_servers_only"
            ),
        )
        self._metadata.busy_topics = lambda: {b.topic for b in self._accumulator.incomplete}
        # partitioner_availability_timeout_ms: the sender sees which brokers cannot take
        # requests, the default partitioner's switch leaves them out (_sticky_switch).
        availability = (
            BrokerAvailability(config.partitioner_availability_timeout_ms)
            if config.partitioner_availability_timeout_ms
            else None
        )
        self._stager = RecordStager(config, self._metadata, self._accumulator, availability)
        # Decided once: an async key or value serializer is awaited in send() (no C shortcut).
        self._awaits_serializers = self._stager.awaits
        self._partitioner = self._stager.partitioner
        # The C shortcut for records that need no Python code (see _staging); interceptors
        # see every record, so not with them.
        self._appender = (
            None if self._intercepting else self._stager.appender(self._accumulator.queues)
        )
        if self._appender is not None:
            # send() in C: an awaitable that appends through the shortcut when awaited
            # (while the producer runs) and runs this class's send() for everything else.
            # It saves the coroutine and its frame: ~720 -> ~500 ns a send() in a loop.
            self._appender.python_send = MethodType(Producer.send, self)
            self._appender.python_new_batch = self._send_to_new_batch
            if type(self).send is Producer.send:  # a subclass's own send() stays in charge
                vars(self)["send"] = self._appender.send
        idempotence = None
        if config.idempotence_enabled:
            idempotence = IdempotenceState(transactional=config.transactional_id is not None)
        self._sender = Sender(
            SenderSettings(
                acks=config.acks,
                request_timeout_ms=config.request_timeout_ms,
                max_request_size=config.max_request_size,
                max_in_flight_requests_per_connection=config.max_in_flight_requests_per_connection,
                retries=config.retries,
                transactional_id=config.transactional_id,
            ),
            self._accumulator,
            self._metadata,
            self._pool,
            self._memory,
            self._interceptors,
            idempotence,
            metrics=self._metrics,
            availability=availability,
        )
        self._transactions = self._transactional_calls(idempotence)
        self._reporters = register_gauges(self)

    def _transactional_calls(
        self, idempotence: IdempotenceState | None
    ) -> TransactionalCalls | None:
        """With a transactional_id: the transaction's state, and its calls (which the
        sender uses too); else None. Imported only then: the transactional requests are
        kio's, whose import a producer without transactions should not pay at start-up."""
        config = self._config
        if config.transactional_id is None:
            return None
        from asyncproducer._coordinator import CoordinatorClient
        from asyncproducer._transactional import TransactionalCalls

        assert idempotence is not None  # the config refuses transactions without it
        manager = TransactionManager(
            config.transactional_id,
            config.transaction_timeout_ms,
            on_change=lambda _: self._update_may_send(),
        )
        idempotence.partition_gate = manager.may_send_to
        calls = TransactionalCalls(
            manager,
            idempotence,
            CoordinatorClient(
                self._metadata,
                self._pool,
                ExponentialBackoff(config.retry_backoff_ms, config.retry_backoff_max_ms),
            ),
            fail_queued=self._sender.fail_queued,
            wait_for_batches=self._send_everything,
            wakeup=self._sender.wakeup,
        )
        self._sender.transactions = calls
        return calls

    @property
    def config(self) -> ProducerConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    def _transition(self, to: State) -> None:
        if not transition_allowed(self._state, to):
            raise ProducerStateError(f"cannot go from {self._state.value} to {to.value}")
        self._state = to
        self._update_may_send()

    def _update_may_send(self) -> None:
        """send() may go ahead (and the C shortcut with it): running and, with a
        transactional_id, inside a transaction."""
        transactions = self._transactions
        self._may_send = self._state is State.RUNNING and (
            transactions is None or transactions.manager.state is TransactionState.IN_TRANSACTION
        )
        if self._appender is not None:
            self._appender.open = self._may_send

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the background tasks. No network traffic yet: like Java's producer, the
        first ``send()`` to a topic fetches its metadata (bounded by ``max_block_ms``)."""
        self._transition(State.STARTING)
        self._new_future = future_factory()
        if self._appender is not None:
            self._appender.new_future = self._new_future
            self._appender.untrack_futures = untrackable_futures(self._new_future)
        self._checkpoint = checkpoint_factory()
        configs = self._config.configs()
        self._interceptors.configure(configs)
        configure_partitioner = getattr(self._partitioner, "configure", None)
        if configure_partitioner is not None:  # optional, as in Java's Partitioner
            configure_partitioner(configs)
        start_reporters(self._reporters, self._metrics.registry, configs)
        spawn_host(self._host, name=f"asyncproducer {self._config.client_id}")
        await self._started.wait()
        if self._state is State.STARTING:
            self._transition(State.RUNNING)
        else:  # the host failed while starting: say so now, not at the first send
            self._check_running()
        if self._transactions is not None:
            try:
                await self._transactions.initialize(anyio.current_time() + self._max_block_s)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.close(timeout=0)
                raise

    async def _host(self) -> None:
        """Own the producer's task group until close() (must not raise; see _host.py)."""
        try:
            async with self._pool, anyio.create_task_group() as tasks:
                tasks.start_soon(self._metadata.run, name="asyncproducer metadata")
                tasks.start_soon(self._run_sender, name="asyncproducer sender")
                if self._compression is not None:
                    tasks.start_soon(self._compression.run, name="asyncproducer compression")
                self._started.set()
                await self._stop.wait()
                tasks.cancel_scope.cancel()
        except BaseException as exc:  # the host is the last line: record, never raise
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                logger.exception("asyncproducer background task group failed")
            self._die(exc)
        finally:
            self._started.set()
            self._stopped.set()

    @background_task
    async def _run_sender(self) -> None:
        try:
            await self._sender.run()
        except Exception as exc:
            if exc is not self._sender.fatal_error:  # that one was logged as it happened
                logger.exception("the asyncproducer sender task died")
            self._die(exc)
            self._stop.set()

    def _die(self, cause: BaseException) -> None:
        """The sender is gone: fail everything pending, make later sends raise (a fatal
        broker error as itself, e.g. ClusterAuthorizationFailedError)."""
        if self._state in (State.STARTING, State.RUNNING):
            self._failure = cause
            self._transition(State.FAILED)
        self._sender.fail_everything(self._failure_error())

    def _failure_error(self) -> KafkaError:
        cause, fatal = self._failure, self._sender.fatal_error
        if fatal is not None and cause is fatal:
            return fresh_copy(fatal)
        return ProducerStateError(f"the producer's sender task stopped: {cause!r}")

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered, waiting at most ``timeout`` seconds (default: until every
        record is acknowledged or has failed, which ``delivery_timeout_ms`` bounds); then
        fail what is left with ProducerClosedError and stop. Safe to call twice."""
        if self._state is State.NEW:
            self._transition(State.CLOSED)
            return
        if self._state in (State.CLOSING, State.CLOSED):
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()
            return
        self._transition(State.CLOSING)
        deadline = anyio.current_time() + (math.inf if timeout is None else timeout)
        cancelled = False
        try:
            with anyio.CancelScope(deadline=deadline):
                await self._abort_open_transaction()
                self._accumulator.closing = True
                self._sender.wakeup()
                await self._wait_for(list(self._accumulator.incomplete))
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        finally:
            # Connections close gracefully (so the brokers read everything written)
            # within what is left of the timeout; at once if the caller was cancelled.
            left = 0.0 if cancelled else max(0.0, deadline - anyio.current_time())
            self._pool.close_grace_s = min(self._pool.close_grace_s, left)
            with anyio.CancelScope(shield=True):
                self._sender.fail_everything(
                    ProducerClosedError(
                        f"the producer was closed (timeout={timeout}) before this record "
                        "was acknowledged"
                    )
                )
                self._stop.set()
                await self._stopped.wait()
                self._interceptors.close()
                close_reporters(self._reporters)
                close_partitioner = getattr(self._partitioner, "close", None)
                if close_partitioner is not None:
                    close_partitioner()
                self._transition(State.CLOSED)

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` under the name ``contextlib.aclosing`` and async resource
        conventions call (the same call, the same bounds)."""
        await self.close(timeout)

    def _check_can_send(self) -> None:
        """Raise why send() may not go ahead (see :meth:`_update_may_send`)."""
        self._check_running()
        if self._transactions is not None:
            self._transactions.manager.check_send()

    def _check_running(self) -> None:
        if self._state is State.RUNNING:
            return
        if self._state is State.NEW:
            raise ProducerStateError("the producer is not started: use 'async with' or start()")
        if self._state is State.FAILED:
            if self._failure is self._sender.fatal_error:
                raise self._failure_error()
            raise ProducerStateError(
                f"the producer failed and can no longer send: {self._failure!r}"
            )
        raise ProducerClosedError(f"the producer is {self._state.value}; it cannot send")

    def metrics(self) -> dict[str, float]:
        """The producer's metrics by the Java producer's names (``record-send-rate``,
        ``request-latency-avg``, ...; docs/observability.md): rates per second and
        averages over the sampled windows, totals since start, NaN for an average or
        maximum of nothing."""
        return self._metrics.values()

    def topic_metrics(self) -> dict[str, dict[str, float]]:
        """Per topic sent to, Java's ``producer-topic-metrics``: ``record-send-total``,
        ``byte-total``, ``compression-rate``, ``record-error-total``, ..."""
        return self._metrics.topic_values()

    def all_metrics(self) -> list[Metric]:
        """Every metric with its group, tags and description (what reporters and the
        Prometheus collector read); ``metric.value()`` reads it now."""
        return list(self._metrics.registry)

    async def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The topic's partitions in order, each with its leader, replicas, in-sync and
        offline replicas, as Java's ``partitionsFor`` (fetching the topic's metadata,
        bounded by ``max_block_ms``). aiokafka's set of ids is
        ``{p.partition for p in await producer.partitions_for(topic)}``."""
        self._check_running()
        info = await self._metadata.wait_for_topic(topic, self._max_block_s * 1000)
        return self._metadata.snapshot.partition_infos(info)


def _sasl_handshake(config: ProducerConfig) -> Handshake | None:
    """Each connection's SASL exchange, for SASL_PLAINTEXT and SASL_SSL. Imported only
    then: every mechanism's code (SCRAM, OAUTHBEARER, GSSAPI, ...) is a tenth of the
    package's import, which a producer without SASL should not pay at start-up."""
    if not config.security_protocol.startswith("SASL_"):
        return None
    from asyncproducer._sasl import SaslSettings

    settings = SaslSettings.from_config(config)
    return None if settings is None else settings.handshake()


def _instance(plugin: object) -> object:
    """An interceptor class (or one named in a properties file) made an instance, as Java
    instantiates ``interceptor.classes``."""
    return plugin() if isinstance(plugin, type) else plugin


__all__ = ["Producer", "State"]
