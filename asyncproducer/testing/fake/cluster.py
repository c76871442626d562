"""The fake cluster's state: brokers, topics, partition logs, producer ids, faults, request log.

Everything here is plain synchronous data, mutated by the API handlers (one request at a
time per connection, all on one event loop, so no locks) and by the test through
:class:`FakeCluster`'s methods. The sockets live in :mod:`.server`.
"""

from __future__ import annotations

import itertools
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from asyncproducer.protocol.topics import topic_name_problem
from asyncproducer.testing.fake._session import Authentication, AuthenticationFailure, SaslConfig

# Kafka keeps the metadata of the last five batches per producer and partition, which is
# why max.in.flight.requests.per.connection may be at most 5 with idempotence.
RECENT_BATCHES = 5
FIRST_PRODUCER_ID = 1000
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes default


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record as the fake stored it (absolute offset; sequence -1 if not idempotent)."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    producer_id: int
    producer_epoch: int
    sequence: int


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch exactly as stored: the received bytes with the assigned base offset written in.

    Kept so tests can decode what the fake stored with a reader the project did not write.
    """

    base_offset: int
    last_offset: int
    raw: bytes


class RequestLogEntry(NamedTuple):
    broker: int
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    at: float


@dataclass(slots=True)
class PartitionState:
    leader: int
    leader_epoch: int = 0
    next_offset: int = 0
    records: list[StoredRecord] = field(default_factory=list)
    batches: list[StoredBatch] = field(default_factory=list)


@dataclass(slots=True)
class TopicState:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionState]
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    base_offset: int


@dataclass(slots=True)
class ProducerPartitionState:
    """What the leader of one partition remembers about one producer id."""

    epoch: int
    last_sequence: int
    recent: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES))


@dataclass(slots=True)
class Fault:
    """One armed fault. ``remaining`` None means until replaced; 0 means used up."""

    kind: str  # "error" | "delay" | "drop_before" | "drop_after"
    api: int
    broker: int | None
    remaining: int | None
    error_code: int = 0
    seconds: float | Callable[[int], float] = 0.0
    """A delay: fixed, or a function of the matching request's index (0, 1, 2, ...)."""
    taken: int = 0

    def delay_for_this_request(self) -> float:
        """The delay for the request just taken (``take_fault`` counted it)."""
        if callable(self.seconds):
            return self.seconds(self.taken - 1)
        return self.seconds

    def matches(self, kind: str, api: int, broker: int) -> bool:
        return (
            self.kind == kind
            and self.api == api
            and (self.broker is None or self.broker == broker)
            and (self.remaining is None or self.remaining > 0)
        )


class ClusterState:
    """Topics, partitions, producer state and armed faults of one fake cluster."""

    def __init__(self, brokers: int, auto_create_topics: bool, default_partitions: int) -> None:
        if brokers < 1:
            raise ValueError(f"a fake cluster needs at least one broker, got brokers={brokers}")
        if default_partitions < 1:
            raise ValueError(f"default_partitions must be >= 1, got {default_partitions}")
        self.broker_ids = list(range(brokers))
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions
        self.cluster_id = "fake-cluster"
        self.ports: dict[int, int] = {}
        self.advertised: dict[int, tuple[str, int]] = {}
        """Addresses given in metadata instead of a broker's own listener (``advertise``)."""
        self.live: set[int] = set()
        self.black_holed: set[int] = set()
        self.topics: dict[str, TopicState] = {}
        self.producers: dict[tuple[int, str, int], ProducerPartitionState] = {}
        # producer id -> current epoch, as handed out by InitProducerId
        self.producer_epochs: dict[int, int] = {}
        self.transactional_ids: dict[str, int] = {}
        self._next_producer_id = itertools.count(FIRST_PRODUCER_ID)
        self._round_robin = itertools.count()
        self.faults: list[Fault] = []
        self.request_log: list[RequestLogEntry] = []
        # Security: set by FakeCluster from its listener arguments.
        self.tls_context: ssl.SSLContext | None = None
        self.sasl: SaslConfig | None = None
        self.authentications: list[Authentication] = []
        self.authentication_failures: list[AuthenticationFailure] = []
        self._connections = itertools.count()

    def new_connection(self) -> int:
        """A number for a connection just accepted (unique in this cluster)."""
        return next(self._connections)

    # ------------------------------------------------------------------ topics

    def create_topic(self, name: str, partitions: int, leaders: list[int] | None = None) -> None:
        problem = topic_name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        if name in self.topics:
            raise ValueError(f"topic {name!r} already exists")
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
        if leaders is not None:
            if len(leaders) != partitions:
                raise ValueError(
                    f"topic {name!r}: {len(leaders)} leaders given for {partitions} partitions"
                )
            for leader in leaders:
                self.check_broker(leader)
        else:
            leaders = [self._spread() for _ in range(partitions)]
        self.topics[name] = TopicState(
            name, uuid.uuid4(), [PartitionState(leader=leader) for leader in leaders]
        )

    def _spread(self) -> int:
        # Round-robin over the whole cluster (not per topic), so many one-partition topics
        # still land on different brokers.
        return self.broker_ids[next(self._round_robin) % len(self.broker_ids)]

    def partition(self, topic: str, partition: int) -> PartitionState:
        state = self.topics.get(topic)
        if state is None:
            raise KeyError(f"no topic {topic!r} in the fake cluster")
        if not 0 <= partition < len(state.partitions):
            raise KeyError(
                f"topic {topic!r} has partitions 0..{len(state.partitions) - 1}, not {partition}"
            )
        return state.partitions[partition]

    def grow(self, topic: str, count: int) -> None:
        state = self.topics.get(topic)
        if state is None:
            raise KeyError(f"no topic {topic!r} in the fake cluster")
        if count < len(state.partitions):
            raise ValueError(
                f"topic {topic!r} has {len(state.partitions)} partitions; Kafka can only grow "
                f"a topic, not shrink it to {count}"
            )
        while len(state.partitions) < count:
            state.partitions.append(PartitionState(leader=self._spread()))

    def address_of(self, broker: int) -> tuple[str, int]:
        """Where clients are told to find ``broker`` (Kafka's advertised listener)."""
        return self.advertised.get(broker) or ("127.0.0.1", self.ports.get(broker, -1))

    def check_broker(self, broker: int) -> None:
        if broker not in self.broker_ids:
            raise ValueError(f"no broker {broker}: the fake cluster has brokers {self.broker_ids}")

    # ------------------------------------------------------------------ producer ids

    def init_producer_id(
        self, transactional_id: str | None, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        """(producer id, epoch) for an InitProducerId request.

        A known producer id sent back with its current epoch bumps the epoch (KIP-360), as
        does a transactional id seen before; anything else gets a fresh id with epoch 0.
        """
        known = self.transactional_ids.get(transactional_id) if transactional_id else None
        if (
            known is None
            and producer_id >= 0
            and self.producer_epochs.get(producer_id) == producer_epoch
        ):
            known = producer_id
        if known is not None:
            epoch = self.producer_epochs[known] + 1
            self.producer_epochs[known] = epoch
            return known, epoch
        new_id = next(self._next_producer_id)
        self.producer_epochs[new_id] = 0
        if transactional_id:
            self.transactional_ids[transactional_id] = new_id
        return new_id, 0

    # ------------------------------------------------------------------ faults

    def take_fault(self, kind: str, api: int, broker: int) -> Fault | None:
        """The first armed fault of ``kind`` for this request, with one use consumed."""
        for fault in self.faults:
            if fault.matches(kind, api, broker):
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.taken += 1
                return fault
        return None

    def arm(self, fault: Fault) -> None:
        # Used-up faults are dropped here rather than on use, so the list stays short.
        self.faults = [f for f in self.faults if f.remaining is None or f.remaining > 0]
        self.faults.append(fault)
