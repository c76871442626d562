"""FakeCluster: the class tests use: lifecycle, topics, faults, inspection, security.

The brokers' sockets and request loop are in :mod:`.server`, the state in :mod:`.cluster`,
the listener's TLS and SASL settings in :mod:`._security`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from asyncproducer.testing.fake import _txn_log
from asyncproducer.testing.fake._auth import OAuthBearerValidator
from asyncproducer.testing.fake._coordinators import KEY_TYPES
from asyncproducer.testing.fake._quotas import (
    ClientQuotas,
    QuotaWindow,
    RequestArrival,
    Throttle,
    violations,
)
from asyncproducer.testing.fake._security import SASL_MECHANISMS, ClientAuth, ListenerSecurity
from asyncproducer.testing.fake._session import Authentication, AuthenticationFailure
from asyncproducer.testing.fake._transactions import TransactionInfo, snapshot
from asyncproducer.testing.fake._txn_coordinator import DEFAULT_MAX_TIMEOUT_MS
from asyncproducer.testing.fake._txn_log import StoredMarker
from asyncproducer.testing.fake.cluster import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ClusterState,
    Fault,
    PartitionState,
    RequestLogEntry,
    StoredBatch,
    StoredRecord,
)
from asyncproducer.testing.fake.server import BrokerServer

if TYPE_CHECKING:
    from asyncproducer.testing.certs import ServerCertificate, TlsFiles

__all__ = ["FakeCluster"]


class FakeCluster:
    """An in-process Kafka cluster of ``brokers`` brokers on loopback TCP, with faults.

    ::

        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("orders", 6)
            async with Producer(cluster.bootstrap_servers) as producer:
                await producer.send_and_wait("orders", b"v")
            assert cluster.records("orders", 0) ...

    Works on asyncio and trio. Fault methods may be called while traffic flows; each takes
    effect from the next request it matches.

    ``listener`` is what every broker's listener speaks, as
    :class:`~asyncproducer.testing.kafka.KafkaCluster`'s (same argument names):

    * ``"SSL"`` / ``"SASL_SSL"``: TLS with ``tls``: the ``TlsFiles`` of
      :func:`~asyncproducer.testing.certs.make_tls_files` (made at start in a temporary
      directory when None, removed at exit; needs ``cryptography``), or a server
      ``ssl.SSLContext`` of your own.
      With files, ``client_auth="required"`` asks for a client certificate signed by their
      CA (mutual TLS; ``"requested"``: asks, does not insist) and ``server_certificate=
      "wrong-name"`` or ``"expired"`` serves one a client must refuse.
    * ``"SASL_PLAINTEXT"`` / ``"SASL_SSL"``: ``sasl_mechanisms`` (default PLAIN,
      SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) for ``users`` (name -> password, default
      ``{"alice": "alice-secret"}``). OAUTHBEARER accepts what Kafka's unsecured validator
      does (``alg: none``, a ``sub``, an ``exp`` not past), or asks
      ``oauthbearer_validator(token)`` for the principal (or ``(principal,
      expires_at_ms)``; None or an exception refuses). ``session_lifetime_ms`` is Kafka's
      ``connections.max.reauth.ms``: 0, sessions never end; otherwise clients must
      re-authenticate on the connection before it ends (KIP-368), or it is closed.

    :meth:`producer_settings` gives the ``Producer`` keyword arguments that connect;
    :attr:`authentications` and :attr:`authentication_failures` record what happened.

    Transactions: the brokers coordinate transactional ids and groups as Kafka 4.x does.
    ``transaction_version`` is the finalized ``transaction.version`` feature: 2 (the
    default of a new Kafka 4 cluster) is KIP-890 part 2 (Produce v12 adds partitions to
    the transaction, every EndTxn bumps the epoch); 1 and 0 advertise no version of that.
    ``transaction_max_timeout_ms`` is Kafka's ``transaction.max.timeout.ms``. See
    :meth:`transaction_state`, :meth:`markers`, :meth:`committed_offsets` and
    ``records(..., isolation="read_committed")``.

    Quotas: :meth:`set_quota` gives client ids a ``producer_byte_rate``, which each broker
    enforces as Kafka's do (KIP-13, KIP-219), measured over ``quota_window_num`` windows
    of ``quota_window_size_seconds`` (Kafka's ``quota.window.num`` and
    ``quota.window.size.seconds``). See :attr:`throttles` and :meth:`throttle_violations`.
    """

    def __init__(
        self,
        *,
        brokers: int = 3,
        auto_create_topics: bool = True,
        default_partitions: int = 3,
        listener: str = "PLAINTEXT",
        tls: TlsFiles | ssl.SSLContext | None = None,
        client_auth: ClientAuth = "none",
        server_certificate: ServerCertificate = "valid",
        users: Mapping[str, str] | None = None,
        sasl_mechanisms: Sequence[str] = SASL_MECHANISMS,
        session_lifetime_ms: int = 0,
        oauthbearer_validator: OAuthBearerValidator | None = None,
        transaction_version: int = 2,
        transaction_max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS,
        quota_window_num: int = 11,
        quota_window_size_seconds: float = 1.0,
    ) -> None:
        quota_window = QuotaWindow(quota_window_num, quota_window_size_seconds)
        self._security = ListenerSecurity(
            listener,
            tls=tls,
            client_auth=client_auth,
            server_certificate=server_certificate,
            users=users,
            sasl_mechanisms=sasl_mechanisms,
            session_lifetime_ms=session_lifetime_ms,
            oauthbearer_validator=oauthbearer_validator,
        )
        self.listener = listener
        self._state = ClusterState(
            brokers,
            auto_create_topics,
            default_partitions,
            transaction_version=transaction_version,
            transaction_max_timeout_ms=transaction_max_timeout_ms,
        )
        self._state.sasl = self._security.sasl
        self._state.quotas = ClientQuotas(quota_window)
        self._servers = {b: BrokerServer(b, self._state) for b in self._state.broker_ids}
        self._task_group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        running = "running" if self._task_group is not None else "stopped"
        return f"<FakeCluster brokers={self._state.broker_ids} {self._security!r} {running}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeCluster:
        if self._task_group is not None:
            raise RuntimeError("this FakeCluster is already running")
        self._state.tls_context = self._security.start()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            for server in self._servers.values():
                await server.start(task_group)
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            self._task_group = None
            self._security.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return
        self._state.live.clear()
        # Cancelling closes every listener and connection at once (forcefully: nothing
        # waits on a peer), so leaving never hangs.
        task_group.cancel_scope.cancel()
        try:
            await task_group.__aexit__(None, None, None)
        finally:
            self._security.stop()

    @property
    def bootstrap_servers(self) -> str:
        if self._task_group is None:
            raise RuntimeError("the FakeCluster is not running: use `async with FakeCluster()`")
        return ",".join(f"127.0.0.1:{self._state.ports[b]}" for b in self._state.broker_ids)

    @property
    def broker_ids(self) -> list[int]:
        return list(self._state.broker_ids)

    # ------------------------------------------------------------------ security

    @property
    def tls(self) -> TlsFiles:
        """The TLS files of an SSL or SASL_SSL cluster (made at start unless given): point
        clients at ``tls.ca``, and at ``tls.client_chain``/``tls.client_key`` for mTLS."""
        return self._security.files

    @property
    def users(self) -> Mapping[str, str]:
        """The SASL users (name -> password); empty unless the listener is SASL_*."""
        return self._security.users

    @property
    def sasl_mechanisms(self) -> tuple[str, ...]:
        """The mechanisms enabled; empty unless the listener is SASL_*."""
        sasl = self._security.sasl
        return sasl.mechanisms if sasl is not None else ()

    def producer_settings(
        self,
        mechanism: str | None = None,
        user: str | None = None,
        *,
        client_certificate: bool | None = None,
    ) -> dict[str, Any]:
        """``Producer(**cluster.producer_settings())`` connects: ``bootstrap_servers``,
        ``security_protocol``, the CA to trust, and for SASL ``mechanism`` (default: the
        first enabled) as ``user`` (default: the first; OAUTHBEARER gets a provider of
        unsecured tokens for that principal). ``client_certificate`` (default: when the
        cluster requires one) adds the client certificate and key, as PEM text."""
        return self._security.producer_settings(
            self.bootstrap_servers, mechanism, user, client_certificate
        )

    @property
    def authentications(self) -> list[Authentication]:
        """Every successful SASL authentication and re-authentication, in order, and on an
        SSL listener every client certificate accepted (mechanism ``"SSL"``)."""
        return self._state.authentications

    @property
    def authentication_failures(self) -> list[AuthenticationFailure]:
        """Every refused login, failed TLS handshake and expired session, with the reason."""
        return self._state.authentication_failures

    @property
    def reauthentication_count(self) -> int:
        """How many sessions were renewed on their connection (KIP-368)."""
        return sum(1 for entry in self._state.authentications if entry.reauthentication)

    # ------------------------------------------------------------------ topics

    def create_topic(
        self,
        name: str,
        partitions: int = 3,
        *,
        leaders: Sequence[int] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """Create ``name``; ``leaders[i]`` leads partition i (default: round-robin).

        ``max_message_bytes`` is the topic's ``max.message.bytes``: a larger record batch
        is refused with MESSAGE_TOO_LARGE."""
        self._state.create_topic(name, partitions, None if leaders is None else list(leaders))
        self._state.topics[name].max_message_bytes = max_message_bytes

    def leader_of(self, topic: str, partition: int) -> int:
        return self._state.partition(topic, partition).leader

    def move_leader(self, topic: str, partition: int, to_broker: int) -> None:
        """Make ``to_broker`` the leader (epoch + 1); the old one answers NOT_LEADER."""
        self._state.check_broker(to_broker)
        state = self._state.partition(topic, partition)
        state.leader = to_broker
        state.leader_epoch += 1

    def advertise(self, broker: int, host: str | None = None, port: int | None = None) -> None:
        """Name ``host:port`` as ``broker``'s address in metadata (Kafka's
        ``advertised.listeners``) instead of its own listener; no arguments restore it.

        Clients connect where metadata says, so this puts a ``FaultProxy`` in front of one
        broker (advertise the proxy's address), or makes a broker advertise an address no
        client can reach (port 70000, host ``"a..b"``). The fake itself stores any value."""
        self._state.check_broker(broker)
        if host is None and port is None:
            self._state.advertised.pop(broker, None)
            return
        own_host, own_port = self._state.address_of(broker)
        self._state.advertised[broker] = (
            own_host if host is None else host,
            own_port if port is None else port,
        )

    def set_partition_count(self, topic: str, count: int) -> None:
        """Grow ``topic`` to ``count`` partitions (Kafka cannot shrink a topic)."""
        self._state.grow(topic, count)

    # ------------------------------------------------------------------ inspection

    def records(
        self, topic: str, partition: int, *, isolation: str = "read_uncommitted"
    ) -> list[StoredRecord]:
        """The partition's data records (never the control records of transaction
        markers). ``isolation="read_committed"`` gives what such a consumer reads: below
        the last stable offset, without the records of aborted transactions."""
        state = self._partition(topic, partition)
        if isolation == "read_uncommitted":
            return list(state.records)
        if isolation == "read_committed":
            return _txn_log.committed_records(state)
        raise ValueError(
            f"isolation must be 'read_uncommitted' or 'read_committed', got {isolation!r}"
        )

    def batches(self, topic: str, partition: int) -> list[StoredBatch]:
        """The stored batches' bytes, transaction markers (control batches) included, for
        decoding with an independent reader."""
        return list(self._partition(topic, partition).batches)

    def markers(self, topic: str, partition: int) -> list[StoredMarker]:
        """The transaction markers (commit / abort control records) in the partition."""
        return list(self._partition(topic, partition).txn.markers)

    def last_stable_offset(self, topic: str, partition: int) -> int:
        """The offset a read_committed consumer cannot pass: the first offset of the oldest
        transaction still open on the partition, else the log end."""
        return _txn_log.last_stable_offset(self._partition(topic, partition))

    def transaction_state(self, transactional_id: str) -> TransactionInfo:
        """The coordinator's state for ``transactional_id`` (state name as Kafka's
        DescribeTransactions gives it, producer id and epoch, partitions, pending group
        offsets). KeyError if no InitProducerId named it."""
        self._expire()
        meta = self._state.transactions.transactions.get(transactional_id)
        if meta is None:
            raise KeyError(f"no transactional id {transactional_id!r} in the fake cluster")
        return snapshot(meta)

    def transactions(self) -> list[TransactionInfo]:
        """Every transactional id the coordinator knows, as :meth:`transaction_state`."""
        self._expire()
        return [snapshot(meta) for meta in self._state.transactions.transactions.values()]

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """{(topic, partition): offset} committed for ``group_id`` by transactions
        (TxnOffsetCommit, then EndTxn commit)."""
        self._expire()
        offsets = self._state.transactions.committed_offsets(group_id)
        return {tp: pending.offset for tp, pending in offsets.items()}

    def coordinator_of(self, key: str, *, key_type: str = "transaction") -> int:
        """The broker coordinating a transactional id (or a group, ``key_type="group"``):
        Kafka's hash of the key over the 50 partitions of ``__transaction_state`` /
        ``__consumer_offsets``, partition p led by broker ``p % brokers``."""
        return self._state.placement.coordinator_of(key, _key_type(key_type))

    def move_coordinator(self, key: str, to_broker: int, *, key_type: str = "transaction") -> None:
        """Move the internal partition holding ``key`` (and every key sharing it) to
        ``to_broker``: the old coordinator answers NOT_COORDINATOR from now on. The state
        moves along, as a new Kafka leader loads it; the coordinator epoch grows by one."""
        self._state.check_broker(to_broker)
        self._state.placement.move(key, _key_type(key_type), to_broker)

    def _partition(self, topic: str, partition: int) -> PartitionState:
        self._expire()
        return self._state.partition(topic, partition)

    def _expire(self) -> None:
        # A timed-out transaction is aborted before anything observes it (lazy, as the
        # brokers do before each request).
        self._state.transactions.expire(self._state.now_ms())

    def request_count(self, api: int, *, broker: int | None = None) -> int:
        return sum(
            1
            for entry in self._state.request_log
            if entry.api_key == api and (broker is None or entry.broker == broker)
        )

    @property
    def request_log(self) -> list[RequestLogEntry]:
        return self._state.request_log

    # ------------------------------------------------------------------ quotas

    def set_quota(self, client_id: str | None = None, *, producer_byte_rate: float | None) -> None:
        """Kafka's client quota ``producer_byte_rate`` (bytes per second) for ``client_id``;
        None for ``client_id`` is the default of every client id without a quota of its
        own; None for the rate removes the quota. Takes effect from the next Produce.

        Each broker measures each client id's Produce request bytes on its own (a client
        writing to three brokers may send three times the rate in all). A request that
        takes the rate over the quota is served, and its response carries the time that
        brings it back (``throttle_time_ms``); then, as Kafka (KIP-219), the broker reads
        nothing more from that connection until that time is over."""
        self._state.quotas.set(client_id, producer_byte_rate)

    @property
    def quotas(self) -> dict[str | None, float]:
        """The quotas set: client id (None: the default) -> ``producer_byte_rate``."""
        return dict(self._state.quotas.limits)

    @property
    def throttles(self) -> list[Throttle]:
        """Every throttle time a broker gave, in order: the broker, connection, client id,
        ``throttle_ms``, when it began and ended for the connection, and whether the client
        was ``told`` (an acks=0 Produce gets no response; below Produce v6 the broker held
        the response for the throttle time instead)."""
        return list(self._state.quotas.throttles)

    @property
    def request_arrivals(self) -> list[RequestArrival]:
        """Each request and when it arrived (read off its connection), recorded while
        quotas are set, or a throttle given earlier may still hold a connection."""
        return list(self._state.quotas.arrivals)

    def throttle_violations(self, api: int | None = None) -> list[RequestArrival]:
        """The requests (of ``api``, or any) a client sent on a connection while a
        throttle it had been told about held it. A client honouring KIP-219 sends none:
        requests it had written before it could read the throttled response do not
        count (the broker reads them before it writes that response)."""
        quotas = self._state.quotas
        return violations(quotas.arrivals, quotas.throttles, api)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, api: int, error_code: int, count: int = 1, *, broker: int | None = None
    ) -> None:
        """Answer the next ``count`` requests of ``api`` with ``error_code`` (not applied).

        For Produce every partition in the request gets the code; for Metadata every topic.
        """
        self._check(broker)
        self._state.arm(Fault("error", api, broker, count, error_code=error_code))

    def delay_responses(
        self,
        api: int,
        seconds: float | Callable[[int], float],
        *,
        count: int | None = None,
        broker: int | None = None,
    ) -> None:
        """Hold ``api`` responses for ``seconds`` (the next ``count``, or all; 0 clears).

        ``seconds`` may be a function of the request's index among those this delay
        matches (0, 1, 2, ...), for a different delay per request."""
        self._check(broker)
        # A new delay replaces the previous one for the same API and broker, so a test can
        # change or clear (seconds=0) a standing delay.
        self._state.faults = [
            f
            for f in self._state.faults
            if not (f.kind == "delay" and f.api == api and f.broker == broker)
        ]
        self._state.arm(Fault("delay", api, broker, count, seconds=seconds))

    def drop_connection(
        self, api: int, *, after_apply: bool = False, count: int = 1, broker: int | None = None
    ) -> None:
        """Close the connection on the next ``count`` ``api`` requests instead of answering.

        ``after_apply=True`` applies the request first (records are stored): the client
        sees a lost response for a write that happened, the classic duplicate-maker.
        """
        self._check(broker)
        kind = "drop_after" if after_apply else "drop_before"
        self._state.arm(Fault(kind, api, broker, count))

    def black_hole(self, broker: int, enabled: bool = True) -> None:
        """Accept connections and read requests on ``broker`` but never answer them."""
        self._state.check_broker(broker)
        if enabled:
            self._state.black_holed.add(broker)
        else:
            self._state.black_holed.discard(broker)

    def forget_producers(self) -> None:
        """Lose every idempotent producer's state, as brokers do when retention deletes a
        producer's last batch: its next batch (not at sequence 0) gets UNKNOWN_PRODUCER_ID."""
        self._state.producers.clear()

    async def stop_broker(self, broker: int) -> None:
        """Close ``broker``'s listener and connections; its partitions show leader -1."""
        self._state.check_broker(broker)
        await self._servers[broker].stop()

    async def start_broker(self, broker: int) -> None:
        """Bring a stopped broker back on its old port."""
        self._state.check_broker(broker)
        if self._task_group is None:
            raise RuntimeError("the FakeCluster is not running")
        if broker not in self._state.live:
            await self._servers[broker].start(self._task_group)

    def _check(self, broker: int | None) -> None:
        if broker is not None:
            self._state.check_broker(broker)


def _key_type(name: str) -> int:
    for key_type, known in KEY_TYPES.items():
        if known == name:
            return key_type
    raise ValueError(f"key_type must be 'transaction' or 'group', got {name!r}")
