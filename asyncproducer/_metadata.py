"""Cluster metadata: an immutable snapshot, and the manager that keeps it fresh.

The producer reads the snapshot on every send without awaiting anything (a dict lookup);
refreshes replace the snapshot whole. A refresh runs for the topics in use, every
``metadata_max_age_ms`` and whenever something asks for one (a new topic, a leader error),
and concurrent requests for a refresh share the one in flight.

Which broker answers: a connected broker first, then the other known brokers, then the
bootstrap addresses, each tried in turn, so that one broker being down never matters
(Java's ``leastLoadedNode`` with bootstrap fallback).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import anyio

from asyncproducer._canonical_names import canonical_bootstrap
from asyncproducer._cluster import (
    BrokerAddress,
    BrokerInfo,
    ClusterSnapshot,
    PartitionMetadata,
    TopicInfo,
    address_problem,
)
from asyncproducer._connection import BrokerConnection
from asyncproducer._host import background_task
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import (
    AuthenticationError,
    KafkaError,
    NoBrokersAvailableError,
    ProtocolError,
    UnknownTopicOrPartitionError,
    error_class_for_code,
    error_for_code,
    fresh_copy,
)
from asyncproducer.protocol.requests import MetadataRequest
from asyncproducer.protocol.topics import check_topic_name
from asyncproducer.protocol.versions import ApiKey

logger = logging.getLogger("asyncproducer.metadata")


class _Impossible(Exception):
    """Content no Kafka broker sends; becomes a ProtocolError naming the broker."""


def parse_metadata_response(response: object, now: float, source: BrokerAddress) -> ClusterSnapshot:
    """The snapshot a MetadataResponse (any version) from ``source`` describes.

    Raises :class:`ProtocolError` naming ``source`` and what is wrong for an answer no
    Kafka broker gives: a null array, a negative or repeated broker or partition id, a
    topic whose partition ids are not exactly 0..n-1 (Kafka lists every partition of a
    topic it returns, one without a leader too; a gap means the answer is broken, and
    taking it would send records to partitions the broker never listed, or hash keys
    over the wrong count). The caller then asks another broker.

    Taken as they are: a leader missing from the broker list (normal during an
    election: the partition has no leader, as in Java), and a broker advertising an
    address no connection can be opened to (see ``address_problem``: the other brokers
    must keep working, so it stays, and connecting to it fails with a typed error).
    """
    try:
        brokers = _brokers(response)
        topics = _topics(response, brokers)
        cluster_id = getattr(response, "cluster_id", None)
        return ClusterSnapshot(
            brokers=brokers,
            topics=topics,
            cluster_id=cluster_id if isinstance(cluster_id, str) else None,
            controller_id=int(getattr(response, "controller_id", -1)),
            fetched_at=now,
        )
    except _Impossible as exc:
        raise ProtocolError(f"broker {source} sent an impossible Metadata answer: {exc}") from None
    except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError) as exc:
        # Anything else the schema forbids (a decoder let it through): the same verdict.
        raise ProtocolError(
            f"broker {source} sent a Metadata answer this client cannot read: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _array(value: object, what: str) -> tuple[Any, ...] | list[Any]:
    if not isinstance(value, tuple | list):
        raise _Impossible(f"the {what} is {'null' if value is None else type(value).__name__}")
    return value


def _brokers(response: object) -> dict[int, BrokerInfo]:
    brokers: dict[int, BrokerInfo] = {}
    for b in _array(getattr(response, "brokers", None), "broker list"):
        node_id = int(b.node_id)
        if node_id < 0:
            raise _Impossible(f"broker id {node_id} is negative")
        if node_id in brokers:
            raise _Impossible(f"the broker list has broker {node_id} twice")
        if not isinstance(b.host, str):
            raise _Impossible(f"broker {node_id}'s host is {b.host!r}")
        rack = b.rack if isinstance(b.rack, str) else None
        brokers[node_id] = BrokerInfo(node_id, b.host, int(b.port), rack)
    return brokers


def _topics(response: object, brokers: Mapping[int, BrokerInfo]) -> dict[str, TopicInfo]:
    topics: dict[str, TopicInfo] = {}
    for t in _array(getattr(response, "topics", None), "topic list"):
        if t.name is None:
            continue  # named by id only (v10+): not one the producer asked for
        if not isinstance(t.name, str):
            raise _Impossible(f"a topic's name is {t.name!r}")
        if t.name in topics:
            raise _Impossible(f"the topic list has topic {t.name!r} twice")
        topics[t.name] = TopicInfo(
            name=t.name,
            partitions=_partitions(t, brokers),
            error_code=int(t.error_code),
            is_internal=bool(t.is_internal),
        )
    return topics


def _partitions(topic: Any, brokers: Mapping[int, BrokerInfo]) -> tuple[PartitionMetadata, ...]:
    """The topic's partitions indexed by id (``TopicInfo.partitions[p].partition == p``)."""
    name: str = topic.name
    by_id: dict[int, PartitionMetadata] = {}
    for p in _array(topic.partitions, f"partition list of topic {name!r}"):
        index = int(p.partition_index)
        if index < 0 or index in by_id:
            again = "twice" if index in by_id else "(negative)"
            raise _Impossible(f"topic {name!r} lists partition {index} {again}")
        leader = int(p.leader_id)
        by_id[index] = PartitionMetadata(
            topic=name,
            partition=index,
            leader=leader if leader in brokers else -1,
            leader_epoch=int(getattr(p, "leader_epoch", -1)),
            replicas=_ids(p.replica_nodes, f"replica list of {name}-{index}"),
            isr=_ids(p.isr_nodes, f"ISR of {name}-{index}"),
            offline_replicas=_ids(
                getattr(p, "offline_replicas", ()), f"offline replicas of {name}-{index}"
            ),
            error_code=int(p.error_code),
        )
    missing = next((i for i in range(len(by_id)) if i not in by_id), None)
    if missing is not None:
        listed = sorted(by_id)
        shown = ", ".join(map(str, listed[:10])) + (", ..." if len(listed) > 10 else "")
        raise _Impossible(f"topic {name!r} lists partitions [{shown}] without partition {missing}")
    return tuple(by_id[i] for i in range(len(by_id)))


def _ids(value: object, what: str) -> tuple[int, ...]:
    return tuple(int(r) for r in _array(value, what))


# --------------------------------------------------------------------------- manager


# Topic-level errors after which waiting longer cannot help (Java fails the send at once).
_FATAL_TOPIC_ERRORS = frozenset({17, 29})  # INVALID_TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED


class MetadataManager:
    """Owns the :class:`ClusterSnapshot`; run :meth:`run` in a task group for periodic refresh."""

    def __init__(
        self,
        pool: ConnectionPool,
        bootstrap: Sequence[BrokerAddress],
        *,
        metadata_max_age_ms: int = 300_000,
        retry_backoff_ms: int = 100,
        allow_auto_topic_creation: bool = True,
        metadata_max_idle_ms: int | None = None,
        canonical_bootstrap_names: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._bootstrap = tuple(bootstrap)
        self._canonicalize = canonical_bootstrap_names
        """Bootstrap names still to be replaced by their canonical names (client_dns_lookup
        resolve_canonical_bootstrap_servers_only): once, before the first request."""
        self._max_age = metadata_max_age_ms / 1000
        self._retry_backoff = retry_backoff_ms / 1000
        self._allow_auto_topic_creation = allow_auto_topic_creation
        self._topics: dict[str, float] = {}
        """Topics in use, in first-use order, and when each was last used (``clock``, ms):
        when a send first needed it, or opened a batch for it."""
        self._max_idle_ms = metadata_max_idle_ms
        self._clock = clock
        self.busy_topics: Callable[[], Collection[str]] = tuple
        """The topics with records not yet acknowledged (set by the producer): never
        forgotten for being idle, since their batches need the leaders."""
        self.partition_counts: dict[str, int] = {}
        """Every topic the snapshot can send to now (known, without error, with partitions)
        and its partition count: what staging a record needs of the metadata. One dict,
        updated in place with each snapshot, so that the C appender holds it (_staging)."""
        self.snapshot = ClusterSnapshot()
        self._in_flight: anyio.Event | None = None
        self._in_flight_error: KafkaError | None = None
        self._update_requested = anyio.Event()
        self._listeners: list[Callable[[ClusterSnapshot], object]] = []
        self._last_failures: dict[tuple[str, int], str] = {}
        """Per address, why it last failed to answer (forgotten when it answers): asked
        last next time, and named when no broker can be reached."""
        self._waiting_on: BrokerAddress | None = None
        """The address a metadata request waits on now (left set if that wait is cancelled,
        so that a caller out of time can say whom it was waiting for)."""

    @property
    def snapshot(self) -> ClusterSnapshot:
        """The newest metadata; replaced whole (snapshots are immutable)."""
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._snapshot = snapshot
        counts = self.partition_counts
        counts.clear()
        counts.update(
            (name, len(info.partitions))
            for name, info in snapshot.topics.items()
            if info.partitions and not info.error_code
        )

    def add_listener(self, listener: Callable[[ClusterSnapshot], object]) -> None:
        """Call ``listener(snapshot)`` after every successful refresh (the sender's wakeup)."""
        self._listeners.append(listener)

    @property
    def topics_in_use(self) -> tuple[str, ...]:
        return tuple(self._topics)

    def add_topic(self, topic: str) -> bool:
        """Track ``topic``; True if it is new (the caller should then refresh)."""
        new = topic not in self._topics
        self._topics[topic] = self._clock() * 1000
        return new

    def touch(self, topic: str) -> None:
        """``topic`` is in use (a send opened a batch for it): keep it in the requests."""
        if topic in self._topics:
            self._topics[topic] = self._clock() * 1000

    def _forget_idle_topics(self) -> None:
        """Java's ``metadata.max.idle.ms``: a topic not used for that long leaves the
        metadata requests and the snapshot (a later send fetches it again)."""
        if self._max_idle_ms is None:
            return
        oldest = self._clock() * 1000 - self._max_idle_ms
        busy = self.busy_topics()
        idle = [t for t, used in self._topics.items() if used <= oldest and t not in busy]
        if idle:
            for topic in idle:
                del self._topics[topic]
            self.snapshot = self.snapshot.without_topics(idle)
            logger.debug("topics idle for metadata_max_idle_ms, no longer fetched: %s", idle)

    def request_update(self) -> None:
        """Ask :meth:`run` for a refresh as soon as possible (e.g. after NOT_LEADER)."""
        self._update_requested.set()

    def apply_leader_hint(
        self,
        topic: str,
        partition: int,
        leader: int,
        leader_epoch: int,
        endpoint: tuple[str, int, str | None] | None,
    ) -> bool:
        """Record the new leader a Produce response named (KIP-951), if it is newer than
        what the snapshot has and its address is known (from the snapshot or
        ``endpoint``). True if applied: no metadata refresh is needed for it."""
        broker = self.snapshot.brokers.get(leader)
        if broker is None and endpoint is not None:
            broker = BrokerInfo(leader, *endpoint)
        if broker is None:
            return False
        updated = self.snapshot.with_leader(topic, partition, broker, leader_epoch)
        if updated is None:
            return False
        self.snapshot = updated
        return True

    async def refresh(self) -> ClusterSnapshot:
        """Fetch metadata for the topics in use now; concurrent callers share one request."""
        if self._in_flight is not None:
            waiting = self._in_flight
            await waiting.wait()
            if self._in_flight_error is not None and self._in_flight is None:
                raise fresh_copy(self._in_flight_error)
            return self.snapshot
        self._in_flight = anyio.Event()
        self._in_flight_error = None
        try:
            self._forget_idle_topics()
            if self._canonicalize:
                self._bootstrap, resolved = await canonical_bootstrap(self._bootstrap)
                self._canonicalize = not resolved
            topics = self.topics_in_use
            update = await self._fetch(topics)
            before, self.snapshot = self.snapshot, self.snapshot.merged_with(update, topics)
            _warn_about_addresses(before, self.snapshot)
            for listener in self._listeners:
                listener(self.snapshot)
            return self.snapshot
        except KafkaError as exc:
            self._in_flight_error = exc
            raise
        finally:
            event, self._in_flight = self._in_flight, None
            event.set()

    async def wait_for_topic(self, topic: str, max_block_ms: float) -> TopicInfo:
        """The topic's metadata, refreshing until it has partitions, for at most ``max_block_ms``.

        When the time is up, raises :class:`NoBrokersAvailableError` naming each broker
        and why it did not answer if none did, else :class:`UnknownTopicOrPartitionError`
        naming the topic; InvalidTopicError at once for a name Kafka does not accept.
        """
        check_topic_name(topic)
        info = self.snapshot.topic(topic)
        if info is not None and info.partitions and info.error_code == 0:
            return info
        self.add_topic(topic)
        last_problem = "no metadata response yet"
        answered = False
        with anyio.move_on_after(max_block_ms / 1000):
            while True:
                try:
                    snapshot = await self.refresh()
                except AuthenticationError:
                    raise  # every broker refused us (or we them): waiting will not help
                except KafkaError as exc:
                    last_problem = str(exc)
                else:
                    answered = True
                    info = snapshot.topic(topic)
                    if info is not None and info.partitions and info.error_code == 0:
                        return info
                    last_problem = self._describe_topic_problem(topic, info)
                await anyio.sleep(self._retry_backoff)
        if not answered:
            # Java blames the topic here ("not present in metadata"); the topic is not
            # what failed.
            raise NoBrokersAvailableError(
                f"no broker could be reached within max_block_ms={max_block_ms:g} for the "
                f"metadata of topic {topic!r}: {self._reachability_report()}. Check "
                "bootstrap_servers and that the brokers are up and reachable from here"
            )
        raise UnknownTopicOrPartitionError(
            f"topic {topic!r} not present in metadata after max_block_ms={max_block_ms:g} "
            f"({last_problem}). Create the topic, or check its name and the broker's "
            "auto.create.topics.enable"
        )

    def _describe_topic_problem(self, topic: str, info: TopicInfo | None) -> str:
        if info is None:
            return "the broker did not return the topic"
        if info.error_code in _FATAL_TOPIC_ERRORS:
            raise error_for_code(info.error_code, f"topic {topic!r}")
        if info.error_code:
            cls = error_class_for_code(info.error_code)
            return f"last error: {cls.name if cls else info.error_code}"
        return "the topic has no partitions"

    @background_task
    async def run(self) -> None:
        """Refresh every ``metadata_max_age_ms`` and on :meth:`request_update`, forever."""
        failing = False
        while True:
            age = anyio.current_time() - self.snapshot.fetched_at
            with anyio.move_on_after(max(self._max_age - age, 0)):
                await self._update_requested.wait()
            # On-demand refreshes at most once per retry_backoff_ms (Java's metadata
            # refresh backoff): a partition without a leader makes the sender ask on every
            # turn, and every refresh wakes the sender.
            since = anyio.current_time() - self.snapshot.fetched_at
            if since < self._retry_backoff:
                await anyio.sleep(self._retry_backoff - since)
            self._update_requested = anyio.Event()
            try:
                await self.refresh()
            except KafkaError as exc:
                # While no broker answers this repeats every retry_backoff_ms: one warning
                # per outage, not a screenful (the CLI shows warnings).
                log = logger.debug if failing else logger.warning
                log("metadata refresh failed (logged at DEBUG until one succeeds): %s", exc)
                failing = True
                await anyio.sleep(self._retry_backoff)
            else:
                if failing:
                    logger.info("metadata refresh succeeded again")
                failing = False

    async def connect_to_any(self) -> BrokerConnection:
        """A connection to some broker (connected ones first), for cluster-wide requests."""
        failures: list[str] = []
        for address in self._candidates():
            try:
                connection = await self._pool.get(address)
            except KafkaError as exc:
                failures.append(self._failed(address, exc))
                continue
            return connection
        raise NoBrokersAvailableError("no broker is reachable: " + "; ".join(failures))

    async def _fetch(self, topics: Sequence[str]) -> ClusterSnapshot:
        failures: list[str] = []
        refusals: list[AuthenticationError] = []
        for address in self._candidates():
            self._waiting_on = address
            try:
                connection = await self._pool.get(address)
                version = connection.versions.version_for(ApiKey.METADATA)
                response = await connection.send(
                    MetadataRequest(
                        version, topics, allow_auto_topic_creation=self._allow_auto_topic_creation
                    )
                )
                snapshot = parse_metadata_response(response, anyio.current_time(), address)
            except KafkaError as exc:  # down, timed out, too old, impossible: ask the next one
                self._waiting_on = None
                failures.append(self._failed(address, exc))
                if isinstance(exc, AuthenticationError):
                    refusals.append(exc)
                continue
            self._waiting_on = None
            self._last_failures.pop((address.host, address.port), None)
            return snapshot
        if refusals and len(refusals) == len(failures):
            # As Java: an authentication failure is reported as such, at once.
            raise fresh_copy(refusals[0])
        raise NoBrokersAvailableError(
            "no broker answered the metadata request: " + "; ".join(failures)
        )

    def _failed(self, address: BrokerAddress, error: KafkaError) -> str:
        """Remember why ``address`` did not answer; returns the reason, naming it."""
        text = str(error)
        reason = text if str(address) in text else f"{address}: {text}"
        self._last_failures[(address.host, address.port)] = reason
        return reason

    def _reachability_report(self) -> str:
        """Each broker and bootstrap address, and why it has not answered."""
        known = [b.address for _, b in sorted(self.snapshot.brokers.items())]
        reasons: dict[tuple[str, int], str] = {}
        for address in [*known, *self._bootstrap]:
            key = (address.host, address.port)
            if key in reasons:
                continue
            problem = address_problem(address.host, address.port)
            waiting = self._waiting_on
            if problem is not None:
                reasons[key] = f"{address}: {problem}"
            elif key in self._last_failures:
                reasons[key] = self._last_failures[key]
            elif waiting is not None and key == (waiting.host, waiting.port):
                reasons[key] = f"{address}: no answer yet"
            else:
                reasons[key] = f"{address}: not tried yet"
        return "; ".join(reasons.values())

    def _candidates(self) -> list[BrokerAddress]:
        """Connected brokers, then other known brokers, then bootstrap addresses; shuffled
        within each group so that clients spread over the cluster. Addresses whose last
        attempt failed go last (one in reconnect backoff would make the request wait, and
        one that sent an impossible answer would likely send it again); brokers that
        advertise an address no connection can be opened to are left out."""
        known = [
            b.address
            for b in self.snapshot.brokers.values()
            if address_problem(b.host, b.port) is None
        ]
        random.shuffle(known)
        connected = [a for a in known if self._pool.connection_if_open(a) is not None]
        others = [a for a in known if a not in connected]
        bootstrap = list(self._bootstrap)
        random.shuffle(bootstrap)
        seen: set[tuple[str, int]] = set()
        ordered: list[BrokerAddress] = []
        for address in connected + others + bootstrap:
            if (address.host, address.port) not in seen:
                seen.add((address.host, address.port))
                ordered.append(address)
        # A stable sort: the groups' order holds among the addresses that failed too.
        return sorted(ordered, key=lambda a: (a.host, a.port) in self._last_failures)


def _warn_about_addresses(before: ClusterSnapshot, after: ClusterSnapshot) -> None:
    """Log, once per change, a broker that advertises an address no connection can be
    opened to: its partitions' records fail as if it were down, and only its
    configuration (advertised.listeners) can mend that."""
    for node_id, broker in after.brokers.items():
        if before.brokers.get(node_id) == broker:
            continue
        problem = address_problem(broker.host, broker.port)
        if problem is not None:
            logger.warning(
                "broker %s advertises an address no connection can be opened to (%s); "
                "it is treated as unreachable: check its advertised.listeners",
                broker.address,
                problem,
            )
