"""Idempotent producer state: producer id, epoch, and per-partition sequence numbers (pure).

With a producer id from InitProducerId, every batch carries ``(producer_id, epoch,
base_sequence)``; the broker keeps the last sequences per partition and answers a
batch it already wrote with DUPLICATE_SEQUENCE_NUMBER instead of writing it twice. So a
retry (same bytes, same sequence) can never duplicate a record.

Sequences are assigned when a batch is first drained, in queue order; the accumulator
keeps at most one batch per partition in flight, so they also reach the broker in order.
What this does not do yet (issue 5): more than one batch per partition in flight, epoch
bumps after OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID, and tracking sequences of
batches that expired in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ProducerIdAndEpoch:
    producer_id: int
    epoch: int


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping past int32 max to 0, as Kafka's brokers expect."""
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


class IdempotenceState:
    def __init__(self) -> None:
        self.producer: ProducerIdAndEpoch | None = None
        self._next_sequence: dict[tuple[str, int], int] = {}

    def stamp(self, topic: str, partition: int, record_count: int) -> tuple[int, int, int]:
        """``(producer_id, epoch, base_sequence)`` for the partition's next batch."""
        assert self.producer is not None, "stamp() before the producer id is known"
        key = (topic, partition)
        base = self._next_sequence.get(key, 0)
        self._next_sequence[key] = increment_sequence(base, record_count)
        return self.producer.producer_id, self.producer.epoch, base
