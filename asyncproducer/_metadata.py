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
import re
from collections.abc import Callable, Sequence

import anyio

from asyncproducer._cluster import (
    BrokerAddress,
    BrokerInfo,
    ClusterSnapshot,
    PartitionInfo,
    TopicInfo,
)
from asyncproducer._connection import BrokerConnection
from asyncproducer._host import background_task
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    UnknownTopicOrPartitionError,
    error_class_for_code,
    error_for_code,
    fresh_copy,
)
from asyncproducer.protocol.messages import metadata_request
from asyncproducer.protocol.versions import ApiKey

logger = logging.getLogger("asyncproducer.metadata")


def parse_metadata_response(response: object, now: float) -> ClusterSnapshot:
    """The snapshot a MetadataResponse (any version) describes."""
    brokers = {
        int(b.node_id): BrokerInfo(int(b.node_id), b.host, int(b.port), b.rack)
        for b in response.brokers  # type: ignore[attr-defined]
    }
    topics: dict[str, TopicInfo] = {}
    for t in response.topics:  # type: ignore[attr-defined]
        if t.name is None:
            continue
        partitions = sorted(
            (
                PartitionInfo(
                    topic=t.name,
                    partition=int(p.partition_index),
                    leader=int(p.leader_id),
                    leader_epoch=int(getattr(p, "leader_epoch", -1)),
                    replicas=tuple(int(r) for r in p.replica_nodes),
                    isr=tuple(int(r) for r in p.isr_nodes),
                    offline_replicas=tuple(int(r) for r in getattr(p, "offline_replicas", ())),
                    error_code=int(p.error_code),
                )
                for p in t.partitions
            ),
            key=lambda p: p.partition,
        )
        topics[t.name] = TopicInfo(
            name=t.name,
            partitions=tuple(partitions),
            error_code=int(t.error_code),
            is_internal=bool(t.is_internal),
        )
    return ClusterSnapshot(
        brokers=brokers,
        topics=topics,
        cluster_id=getattr(response, "cluster_id", None),
        controller_id=int(getattr(response, "controller_id", -1)),
        fetched_at=now,
    )


# --------------------------------------------------------------------------- manager


# Topic-level errors after which waiting longer cannot help (Java fails the send at once).
_FATAL_TOPIC_ERRORS = frozenset({17, 29})  # INVALID_TOPIC_EXCEPTION, TOPIC_AUTHORIZATION_FAILED

_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
"""Kafka's rule for topic names (``org.apache.kafka.common.internals.Topic``)."""


def topic_name_problem(topic: object) -> str | None:
    """What makes ``topic`` a name Kafka refuses (None: it accepts it)."""
    if not isinstance(topic, str):
        return f"a topic name is a str, got {type(topic).__name__} {topic!r}"
    if not _LEGAL_TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        return (
            f"topic {topic!r} is not a legal name: 1 to 249 characters from "
            "[a-zA-Z0-9._-], and not '.' or '..'"
        )
    return None


def check_topic_name(topic: object) -> None:
    """Raise InvalidTopicError unless ``topic`` is a name Kafka accepts. Checked before a
    topic joins the metadata requests: a name the request cannot encode (not a str) would
    break every later refresh, and one the broker refuses fails clearer here."""
    problem = topic_name_problem(topic)
    if problem is not None:
        raise InvalidTopicError(problem)


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
    ) -> None:
        self._pool = pool
        self._bootstrap = tuple(bootstrap)
        self._max_age = metadata_max_age_ms / 1000
        self._retry_backoff = retry_backoff_ms / 1000
        self._allow_auto_topic_creation = allow_auto_topic_creation
        self._topics: dict[str, None] = {}  # topics in use, in first-use order
        self.snapshot = ClusterSnapshot()
        self._in_flight: anyio.Event | None = None
        self._in_flight_error: KafkaError | None = None
        self._update_requested = anyio.Event()
        self._listeners: list[Callable[[ClusterSnapshot], object]] = []

    def add_listener(self, listener: Callable[[ClusterSnapshot], object]) -> None:
        """Call ``listener(snapshot)`` after every successful refresh (the sender's wakeup)."""
        self._listeners.append(listener)

    @property
    def topics_in_use(self) -> tuple[str, ...]:
        return tuple(self._topics)

    def add_topic(self, topic: str) -> bool:
        """Track ``topic``; True if it is new (the caller should then refresh)."""
        if topic in self._topics:
            return False
        self._topics[topic] = None
        return True

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
            topics = self.topics_in_use
            update = await self._fetch(topics)
            self.snapshot = self.snapshot.merged_with(update, topics)
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

        Raises :class:`UnknownTopicOrPartitionError` naming the topic when the time is up,
        and InvalidTopicError at once for a name Kafka does not accept.
        """
        check_topic_name(topic)
        info = self.snapshot.topic(topic)
        if info is not None and info.partitions and info.error_code == 0:
            return info
        self.add_topic(topic)
        last_problem = "no metadata response yet"
        with anyio.move_on_after(max_block_ms / 1000):
            while True:
                try:
                    snapshot = await self.refresh()
                except KafkaError as exc:
                    last_problem = str(exc)
                else:
                    info = snapshot.topic(topic)
                    if info is not None and info.partitions and info.error_code == 0:
                        return info
                    last_problem = self._describe_topic_problem(topic, info)
                await anyio.sleep(self._retry_backoff)
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
                logger.warning("metadata refresh failed: %s", exc)
                await anyio.sleep(self._retry_backoff)

    async def connect_to_any(self) -> BrokerConnection:
        """A connection to some broker (connected ones first), for cluster-wide requests."""
        failures: list[str] = []
        for address in self._candidates():
            try:
                return await self._pool.get(address)
            except KafkaError as exc:
                failures.append(f"{address}: {exc}")
        raise KafkaConnectionError("no broker is reachable: " + "; ".join(failures))

    async def _fetch(self, topics: Sequence[str]) -> ClusterSnapshot:
        failures: list[str] = []
        for address in self._candidates():
            try:
                connection = await self._pool.get(address)
                version = connection.versions.version_for(ApiKey.METADATA)
                response = await connection.send(
                    metadata_request(
                        version, topics, allow_auto_topic_creation=self._allow_auto_topic_creation
                    )
                )
            except KafkaError as exc:  # down, timed out, too old: ask the next one
                failures.append(f"{address}: {exc}")
                continue
            return parse_metadata_response(response, anyio.current_time())
        raise KafkaConnectionError(
            "no broker answered the metadata request: " + "; ".join(failures)
        )

    def _candidates(self) -> list[BrokerAddress]:
        """Connected brokers, then other known brokers, then bootstrap addresses; shuffled
        within each group so that clients spread over the cluster."""
        known = [b.address for b in self.snapshot.brokers.values()]
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
        return ordered
