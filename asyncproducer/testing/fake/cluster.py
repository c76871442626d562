"""The fake cluster's state: brokers, topics, partition logs, producer ids, faults, request log.

Everything here is plain synchronous data, mutated by the API handlers (one request at a
time per connection, all on one event loop, so no locks) and by the test through
:class:`FakeCluster`'s methods. The sockets live in :mod:`.server`.
"""

from __future__ import annotations

import itertools
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from asyncproducer.protocol.topics import topic_name_problem
from asyncproducer.testing.fake._coordinators import CoordinatorPlacement
from asyncproducer.testing.fake._quotas import ClientQuotas
from asyncproducer.testing.fake._session import Authentication, AuthenticationFailure, SaslConfig
from asyncproducer.testing.fake._txn_coordinator import (
    DEFAULT_MAX_TIMEOUT_MS,
    TransactionCoordinator,
)
from asyncproducer.testing.fake._txn_log import PartitionTxnState

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
    is_transactional: bool = False
    """Written in a transaction (batch attribute bit 4)."""


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
    """Data records only: control records (transaction markers) are in ``txn.markers``."""
    batches: list[StoredBatch] = field(default_factory=list)
    """Every batch, transaction markers included, as a reader fetches them."""
    txn: PartitionTxnState = field(default_factory=PartitionTxnState)


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

    def __init__(
        self,
        brokers: int,
        auto_create_topics: bool,
        default_partitions: int,
        *,
        transaction_version: int = 2,
        transaction_max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS,
    ) -> None:
        if brokers < 1:
            raise ValueError(f"a fake cluster needs at least one broker, got brokers={brokers}")
        if default_partitions < 1:
            raise ValueError(f"default_partitions must be >= 1, got {default_partitions}")
        if transaction_version not in (0, 1, 2):
            raise ValueError(
                f"transaction_version must be 0, 1 or 2 (Kafka's transaction.version "
                f"feature levels), got {transaction_version}"
            )
        if transaction_max_timeout_ms < 1:
            raise ValueError(
                f"transaction_max_timeout_ms must be >= 1, got {transaction_max_timeout_ms}"
            )
        self.broker_ids: list[int] = list(range(brokers))
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
        self._next_producer_id = itertools.count(FIRST_PRODUCER_ID)
        # Transactions: the finalized transaction.version feature level decides the API
        # versions advertised (KIP-890 part 2 needs level 2).
        self.transaction_version = transaction_version
        self.transaction_max_timeout_ms = transaction_max_timeout_ms
        self.placement: CoordinatorPlacement = CoordinatorPlacement(self.broker_ids)
        self.transactions: TransactionCoordinator = TransactionCoordinator(self)
        self.clock: Callable[[], float] = time.monotonic
        """Seconds, for transaction timeouts; a test may replace it."""
        self._round_robin = itertools.count()
        self.faults: list[Fault] = []
        self.request_log: list[RequestLogEntry] = []
        # Security: set by FakeCluster from its listener arguments.
        self.tls_context: ssl.SSLContext | None = None
        self.sasl: SaslConfig | None = None
        self.authentications: list[Authentication] = []
        self.authentication_failures: list[AuthenticationFailure] = []
        self._connections = itertools.count()
        self.quotas: ClientQuotas = ClientQuotas()
        """Client quotas (``FakeCluster.set_quota``), measured rates, throttles given."""

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

    def new_producer_id(self) -> int:
        return next(self._next_producer_id)

    def now_ms(self) -> float:
        return self.clock() * 1000.0

    def init_producer_id(self, producer_id: int, producer_epoch: int) -> tuple[int, int]:
        """(producer id, epoch) for an InitProducerId request without a transactional id.

        A known producer id sent back with its current epoch bumps the epoch (KIP-360);
        anything else gets a fresh id with epoch 0. (Transactional ids are the
        coordinator's: :class:`._txn_coordinator.TransactionCoordinator`.)
        """
        if producer_id >= 0 and self.producer_epochs.get(producer_id) == producer_epoch:
            epoch = producer_epoch + 1
            self.producer_epochs[producer_id] = epoch
            return producer_id, epoch
        new_id = self.new_producer_id()
        self.producer_epochs[new_id] = 0
        return new_id, 0

    def marker_written(self, topic: str, index: int, producer_id: int, epoch: int) -> None:
        """A partition's producer state after a marker: the marker's epoch is the
        producer's from now on, and a new epoch starts its sequences at 0 (Kafka's
        ``ProducerAppendInfo.appendEndTxnMarker``)."""
        state = self.producers.get((producer_id, topic, index))
        if state is None or state.epoch != epoch:
            self.producers[(producer_id, topic, index)] = ProducerPartitionState(
                epoch=epoch, last_sequence=-1
            )

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
