"""The partition side of transactions: control batches, open and aborted transactions, LSO.

What a Kafka partition leader keeps for transactions (``ProducerStateManager`` and the
transaction index), reduced to what clients can observe:

* ``open``: producer id -> offset of its first record in the transaction still open on
  this partition. The **last stable offset** (LSO) is the smallest of them, or the log end
  when none is open (the fake has no followers, so the high watermark is the log end).
  A ``read_committed`` reader never gets past the LSO.
* ``aborted``: every aborted transaction's (producer id, first offset, marker offset), the
  transaction index a Fetch at ``read_committed`` returns so consumers drop those records.
* ``markers``: the control records the coordinator wrote, for inspection.

A marker is a control batch (attributes: transactional 0x10 + control 0x20), one record,
base sequence -1, written with the producer id and the epoch the coordinator ends the
transaction with, and stored like any batch so readers the project did not write decode it.
Its record's key is ``int16 version 0, int16 type`` (0 abort, 1 commit) and its value
``int16 version 0, int32 coordinator epoch`` (Kafka's ``ControlRecordType`` and
``EndTransactionMarker``).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import (
    ATTRIBUTES_OFFSET,
    encode_records,
    seal_batch,
    store_crc,
)

if TYPE_CHECKING:
    from asyncproducer.testing.fake.cluster import PartitionState, StoredRecord

CONTROL_MASK = 0x20
ABORT = 0
COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")  # version, type
_MARKER_VALUE = struct.Struct(">hi")  # version, coordinator epoch
_LEADER_EPOCH_OFFSET = 12
_NO_SEQUENCE = -1


@dataclass(frozen=True, slots=True)
class StoredMarker:
    """A transaction marker (control record) in a partition's log."""

    offset: int
    producer_id: int
    producer_epoch: int
    kind: str
    """``"commit"`` or ``"abort"``."""
    coordinator_epoch: int
    timestamp: int


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    """The abort marker's offset."""


@dataclass(slots=True)
class PartitionTxnState:
    open: dict[int, int] = field(default_factory=dict)
    aborted: list[AbortedTxn] = field(default_factory=list)
    markers: list[StoredMarker] = field(default_factory=list)


def last_stable_offset(partition: PartitionState) -> int:
    open_firsts = partition.txn.open.values()
    return min(open_firsts) if open_firsts else partition.next_offset


def control_batch(
    *,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
    timestamp: int,
    leader_epoch: int,
) -> bytes:
    """One marker as a complete v2 batch (base offset 0: the append writes the real one)."""
    key = _CONTROL_KEY.pack(0, COMMIT if commit else ABORT)
    value = _MARKER_VALUE.pack(0, coordinator_epoch)
    records = encode_records(timestamp, [timestamp], [key], [value], [()])
    batch = bytearray(
        seal_batch(
            records,
            count=1,
            base_timestamp=timestamp,
            max_timestamp=timestamp,
            compression=CompressionType.NONE,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=_NO_SEQUENCE,
            is_transactional=True,
        )
    )
    attributes = int.from_bytes(batch[ATTRIBUTES_OFFSET : ATTRIBUTES_OFFSET + 2], "big")
    batch[ATTRIBUTES_OFFSET : ATTRIBUTES_OFFSET + 2] = (attributes | CONTROL_MASK).to_bytes(
        2, "big"
    )
    store_crc(batch)  # the CRC covers the attributes, not the leader epoch set below
    struct.pack_into(">i", batch, _LEADER_EPOCH_OFFSET, leader_epoch)
    return bytes(batch)


def write_marker(
    partition: PartitionState,
    *,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
) -> StoredMarker:
    """Append a commit or abort marker and close the producer's transaction here."""
    # Imported here: cluster imports this module for PartitionState's field.
    from asyncproducer.testing.fake.cluster import StoredBatch

    timestamp = int(time.time() * 1000)
    offset = partition.next_offset
    raw = control_batch(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        commit=commit,
        coordinator_epoch=coordinator_epoch,
        timestamp=timestamp,
        leader_epoch=partition.leader_epoch,
    )
    raw = offset.to_bytes(8, "big", signed=True) + raw[8:]
    partition.batches.append(StoredBatch(base_offset=offset, last_offset=offset, raw=raw))
    partition.next_offset = offset + 1
    txn = partition.txn
    # A transaction that wrote nothing here still gets its marker; Kafka then takes the
    # marker's own offset as the transaction's first (ProducerStateManager.completeTxn).
    first = txn.open.pop(producer_id, offset)
    if not commit:
        txn.aborted.append(AbortedTxn(producer_id, first, offset))
    marker = StoredMarker(
        offset, producer_id, producer_epoch, "commit" if commit else "abort",
        coordinator_epoch, timestamp,
    )  # fmt: skip
    txn.markers.append(marker)
    return marker


def is_aborted(partition: PartitionState, record: StoredRecord) -> bool:
    if not record.is_transactional:
        return False
    return any(
        entry.producer_id == record.producer_id
        and entry.first_offset <= record.offset < entry.last_offset
        for entry in partition.txn.aborted
    )


def committed_records(partition: PartitionState) -> list[StoredRecord]:
    """What a ``read_committed`` consumer sees: below the LSO, aborted records dropped."""
    stable = last_stable_offset(partition)
    return [
        record
        for record in partition.records
        if record.offset < stable and not is_aborted(partition, record)
    ]


def aborted_in_range(partition: PartitionState, start: int, end: int) -> list[AbortedTxn]:
    """Aborted transactions a Fetch of offsets ``start .. end - 1`` must report
    (Kafka's ``collectAbortedTransactions``: ending at or after ``start``, beginning
    before ``end``)."""
    return [
        entry
        for entry in partition.txn.aborted
        if entry.last_offset >= start and entry.first_offset < end
    ]
