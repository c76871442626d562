"""What the client knows about the cluster: brokers, topics, partitions, leaders (pure data).

A :class:`ClusterSnapshot` is immutable; the metadata manager replaces it whole on every
refresh, so the send path reads it without locks or awaits. Partitioners receive it as
the ``cluster`` argument (Java's ``Cluster``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from asyncproducer._types import Node, PartitionInfo
from asyncproducer._value import Value
from asyncproducer.errors import ConfigError


class BrokerAddress(Value):
    __slots__ = ("host", "node_id", "port")
    _fields = ("host", "port", "node_id")

    host: str
    port: int
    node_id: int | None
    """The broker's id once known from metadata; None for a bootstrap address."""

    def __init__(self, host: str, port: int, node_id: int | None = None) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id

    def __str__(self) -> str:
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return where if self.node_id is None else f"{where} (node {self.node_id})"


class BrokerInfo(Value):
    __slots__ = ("host", "node_id", "port", "rack")
    _fields = ("node_id", "host", "port", "rack")

    node_id: int
    host: str
    port: int
    rack: str | None

    def __init__(self, node_id: int, host: str, port: int, rack: str | None = None) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.rack = rack

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, self.node_id)


class PartitionMetadata(Value):
    __slots__ = (
        "error_code",
        "isr",
        "leader",
        "leader_epoch",
        "offline_replicas",
        "partition",
        "replicas",
        "topic",
    )
    _fields = (
        "topic",
        "partition",
        "leader",
        "leader_epoch",
        "replicas",
        "isr",
        "offline_replicas",
        "error_code",
    )

    topic: str
    partition: int
    leader: int
    """The leader's broker id; -1 while there is none."""
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    error_code: int

    def __init__(
        self,
        topic: str,
        partition: int,
        leader: int,
        leader_epoch: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
        offline_replicas: tuple[int, ...] = (),
        error_code: int = 0,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.leader = leader
        self.leader_epoch = leader_epoch
        self.replicas = replicas
        self.isr = isr
        self.offline_replicas = offline_replicas
        self.error_code = error_code


class TopicInfo(Value):
    __slots__ = (
        "available_partition_ids",
        "available_partitions",
        "error_code",
        "is_internal",
        "name",
        "partitions",
    )
    _fields = ("name", "partitions", "error_code", "is_internal")

    name: str
    partitions: tuple[PartitionMetadata, ...]
    """Indexed by partition id: ``partitions[p].partition == p``."""
    error_code: int
    is_internal: bool
    available_partitions: tuple[PartitionMetadata, ...]
    """Partitions with a leader right now (what the sticky and round-robin
    partitioners pick from), computed once: snapshots are immutable, and this is read
    per record."""
    available_partition_ids: tuple[int, ...]

    def __init__(
        self,
        name: str,
        partitions: tuple[PartitionMetadata, ...],
        error_code: int = 0,
        is_internal: bool = False,
    ) -> None:
        self.name = name
        self.partitions = partitions
        self.error_code = error_code
        self.is_internal = is_internal
        available = tuple(p for p in partitions if p.leader >= 0)
        self.available_partitions = available
        self.available_partition_ids = tuple(p.partition for p in available)


class ClusterSnapshot(Value):
    __slots__ = ("brokers", "cluster_id", "controller_id", "fetched_at", "topics")
    _fields = ("brokers", "topics", "cluster_id", "controller_id", "fetched_at")

    brokers: Mapping[int, BrokerInfo]
    topics: Mapping[str, TopicInfo]
    cluster_id: str | None
    controller_id: int
    fetched_at: float
    """``anyio.current_time()`` of the response; -inf before the first one."""

    def __init__(
        self,
        brokers: Mapping[int, BrokerInfo] | None = None,
        topics: Mapping[str, TopicInfo] | None = None,
        cluster_id: str | None = None,
        controller_id: int = -1,
        fetched_at: float = float("-inf"),
    ) -> None:
        self.brokers = {} if brokers is None else brokers
        self.topics = {} if topics is None else topics
        self.cluster_id = cluster_id
        self.controller_id = controller_id
        self.fetched_at = fetched_at

    def topic(self, name: str) -> TopicInfo | None:
        return self.topics.get(name)

    def partition_infos(self, topic: TopicInfo) -> list[PartitionInfo]:
        """The topic's partitions in Java's public shape (``partitions_for()``): broker ids
        made nodes, a replica whose broker the metadata does not list as Java's
        ``Node(id, "", -1)``."""

        def node(node_id: int) -> Node:
            broker = self.brokers.get(node_id)
            if broker is None:
                return Node(node_id, "", -1)
            return Node(node_id, broker.host, broker.port, broker.rack)

        return [
            PartitionInfo(
                topic.name,
                p.partition,
                node(p.leader) if p.leader >= 0 else None,
                tuple(map(node, p.replicas)),
                tuple(map(node, p.isr)),
                tuple(map(node, p.offline_replicas)),
            )
            for p in topic.partitions
        ]

    def leader_for(self, topic: str, partition: int) -> BrokerInfo | None:
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return None
        return self.brokers.get(info.partitions[partition].leader)

    def with_leader(
        self, topic: str, partition: int, leader: BrokerInfo, leader_epoch: int
    ) -> ClusterSnapshot | None:
        """This snapshot with a partition's new leader, or None if the snapshot does not
        have the partition or already knows this leader epoch or a later one."""
        info = self.topics.get(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return None
        old = info.partitions[partition]
        if leader_epoch <= old.leader_epoch:
            return None
        partitions = list(info.partitions)
        partitions[partition] = old.replace(leader=leader.node_id, leader_epoch=leader_epoch)
        return self.replace(
            brokers={**self.brokers, leader.node_id: leader},
            topics={**self.topics, topic: info.replace(partitions=tuple(partitions))},
        )

    def without_topics(self, names: Iterable[str]) -> ClusterSnapshot:
        """This snapshot, forgetting ``names`` (topics no longer in use)."""
        gone = set(names)
        topics = {name: info for name, info in self.topics.items() if name not in gone}
        return self.replace(topics=topics)

    def merged_with(self, update: ClusterSnapshot, requested: Iterable[str]) -> ClusterSnapshot:
        """This snapshot with ``update`` applied: brokers replaced, requested topics replaced
        (a requested topic missing from the answer is dropped), other topics kept."""
        topics = dict(self.topics)
        for name in requested:
            topics.pop(name, None)
        topics.update(update.topics)
        return ClusterSnapshot(
            brokers=update.brokers,
            topics=topics,
            cluster_id=update.cluster_id,
            controller_id=update.controller_id,
            fetched_at=update.fetched_at,
        )


_MAX_HOST_LENGTH = 253
"""The longest DNS name in text form (RFC 1035: 255 octets on the wire)."""


def address_problem(host: object, port: object) -> str | None:
    """Why no connection can ever be opened to ``host:port``, or None if it may be tried.

    Brokers advertise their own addresses (``advertised.listeners``), so metadata can name
    any int as a port and any string as a host. Checked before connecting, so that such a
    broker is reported as unreachable, saying why, instead of the socket layer raising
    OverflowError or UnicodeError (IDNA) from deep inside a connect.
    """
    if not isinstance(port, int) or not 0 < port < 65536:
        return f"port {port!r} is outside 1..65535"
    if not isinstance(host, str):
        return f"host {host!r} is not a string"
    if not host:
        return "host is empty"
    if len(host) > _MAX_HOST_LENGTH:
        return f"host is {len(host)} characters long (a DNS name has at most {_MAX_HOST_LENGTH})"
    bad = next((c for c in host if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        return f"host {host!r} contains {bad!r}"
    if ":" in host:
        return None  # an IPv6 address; the connect says if it is not one
    try:
        # What asyncio and trio do to a host name before resolving it.
        _encode_idna(host)
    except UnicodeError:
        if "" in host.rstrip(".").split("."):
            return f"host {host!r} has an empty label"
        return f"host {host!r} is not a valid host name (IDNA)"
    return None


def _encode_idna(host: str) -> bytes:
    """``host.encode("idna")``, without importing the IDNA codec (and ``stringprep`` and
    ``unicodedata``: 1 ms of a cold start) for an ASCII name, which it checks so: every
    label but the last 1-63 characters, the last (empty after a trailing dot) under 64."""
    if not host.isascii():
        return host.encode("idna")
    raw = host.encode("ascii")
    *labels, last = raw.split(b".")
    if any(not 0 < len(label) < 64 for label in labels):
        raise UnicodeError("label empty or too long")
    if len(last) >= 64:
        raise UnicodeError("label too long")
    return raw


def parse_bootstrap_servers(value: str | Sequence[str]) -> tuple[BrokerAddress, ...]:
    """``"host:port,host2:port2"`` or a list of ``"host:port"``; IPv6 as ``[::1]:9092``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    addresses = tuple(_parse_address(item.strip()) for item in items if item.strip())
    if not addresses:
        raise ConfigError(
            f"bootstrap_servers={value!r}: give at least one 'host:port' "
            "(comma-separated, or a list)"
        )
    return addresses


def _parse_address(item: str) -> BrokerAddress:
    host, sep, port_text = item.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"bootstrap_servers entry {item!r} is not 'host:port' with a port in 1..65535"
        )
    problem = address_problem(host, int(port_text))
    if problem is not None:
        raise ConfigError(f"bootstrap_servers entry {item!r}: {problem}")
    return BrokerAddress(host, int(port_text))
