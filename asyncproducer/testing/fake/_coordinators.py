"""Which broker coordinates a transactional id or a consumer group, as Kafka places them.

Kafka keeps transaction state in the ``__transaction_state`` topic and group state (offsets)
in ``__consumer_offsets``; a key's coordinator is the leader of the partition the key hashes
to: ``Utils.abs(key.hashCode()) % partitions`` (``TransactionStateManager.partitionFor``,
``GroupMetadataManager.partitionFor``), where ``hashCode`` is Java's ``String.hashCode``.
Both topics have 50 partitions by default (``transaction.state.log.num.partitions``,
``offsets.topic.num.partitions``).

The fake does not create those topics (they would show in every Metadata answer): partition
``p`` of either is led by ``broker_ids[p % len(broker_ids)]`` unless a test moved it
(:meth:`FakeCluster.move_coordinator`). The coordinator state itself is shared by the whole
fake cluster, so moving a partition keeps its transactions, as a new Kafka leader loads
them from the log; what changes is which broker answers and which answer NOT_COORDINATOR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP = 0
TRANSACTION = 1
KEY_TYPES = {GROUP: "group", TRANSACTION: "transaction"}

TRANSACTION_STATE_TOPIC = "__transaction_state"
CONSUMER_OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_PARTITIONS = 50
CONSUMER_OFFSETS_PARTITIONS = 50

_INT_MIN = -(2**31)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()``: over UTF-16 code units, wrapping at 32 bits."""
    units = text.encode("utf-16-be")
    value = 0
    for i in range(0, len(units), 2):
        value = (31 * value + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def partition_for(key: str, key_type: int) -> int:
    """The ``__transaction_state`` / ``__consumer_offsets`` partition that holds ``key``."""
    count = TRANSACTION_STATE_PARTITIONS if key_type == TRANSACTION else CONSUMER_OFFSETS_PARTITIONS
    hashed = java_string_hash(key)
    # Kafka's Utils.abs maps Integer.MIN_VALUE to 0 (Math.abs would leave it negative).
    return (0 if hashed == _INT_MIN else abs(hashed)) % count


@dataclass(slots=True)
class CoordinatorPlacement:
    """Leaders of the two internal topics' partitions, and their leader epochs."""

    broker_ids: list[int]
    moved: dict[tuple[int, int], int] = field(default_factory=dict)
    """(key type, partition) -> broker, for partitions a test moved."""
    epochs: dict[tuple[int, int], int] = field(default_factory=dict)
    """(key type, partition) -> leader epoch: Kafka's coordinator epoch, written into every
    transaction marker's value; it grows by one at each move."""

    def coordinator_of(self, key: str, key_type: int) -> int:
        partition = partition_for(key, key_type)
        moved = self.moved.get((key_type, partition))
        if moved is not None:
            return moved
        return self.broker_ids[partition % len(self.broker_ids)]

    def coordinator_epoch(self, key: str, key_type: int) -> int:
        return self.epochs.get((key_type, partition_for(key, key_type)), 0)

    def move(self, key: str, key_type: int, to_broker: int) -> None:
        slot = (key_type, partition_for(key, key_type))
        self.moved[slot] = to_broker
        self.epochs[slot] = self.epochs.get(slot, 0) + 1
