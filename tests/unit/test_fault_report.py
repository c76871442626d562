"""The reliability report's verdict (benchmarks/_faults_ledger.py): each count and which
counts break a guarantee, on hand-made ledgers and logs."""

from __future__ import annotations

import pytest

from asyncproducer import RecordMetadata
from asyncproducer.errors import KafkaConnectionError, KafkaTimeoutError, NotEnoughReplicasError
from benchmarks._faults_ledger import Ledger, Row, Sent, Stored, analyse, error_summary

TIMEOUT_S = 4.0


def acked(ledger: Ledger, partition: int, offset: int, latency: float = 0.01) -> None:
    index = len(ledger.records)
    metadata = RecordMetadata("t", partition, offset, 0, -1, 10)
    ledger.add(index, Sent(index, partition, False, 0.0, latency, metadata=metadata))


def failed(ledger: Ledger, partition: int, *, possibly_written: bool) -> None:
    error = KafkaTimeoutError("expired")
    error.possibly_written = possibly_written
    index = len(ledger.records)
    ledger.add(index, Sent(index, partition, False, 0.0, TIMEOUT_S, error=error))


def stored(ledger: Ledger, *where: tuple[int, int, int]) -> list[Stored]:
    """(partition, offset, ticket) -> what the log holds (the helpers above make the
    ticket of each record its index)."""
    return [Stored(p, offset, ledger.value(index)) for p, offset, index in where]


def verdict(
    ledger: Ledger, log: list[Stored], *, idempotence: bool = True, in_flight: int = 5
) -> Row:
    return analyse(ledger, log, Row("s", idempotence, in_flight, TIMEOUT_S))


def test_everything_acknowledged_where_it_is_stored() -> None:
    ledger = Ledger("run")
    acked(ledger, 0, 0)
    acked(ledger, 0, 1)
    acked(ledger, 1, 0)
    row = verdict(ledger, stored(ledger, (0, 0, 0), (0, 1, 1), (1, 0, 2)))
    assert (row.sent, row.acked, row.found) == (3, 3, 3)
    assert row.violations == []


def test_acknowledged_but_absent_is_lost() -> None:
    ledger = Ledger("run")
    acked(ledger, 0, 0)
    acked(ledger, 0, 1)
    row = verdict(ledger, stored(ledger, (0, 0, 0)))
    assert row.lost == 1
    assert row.violations == ["1 acknowledged but not in the log"]


@pytest.mark.parametrize("idempotence", [True, False])
def test_a_value_stored_twice_is_a_duplicate_not_a_reordering(idempotence: bool) -> None:
    ledger = Ledger("run")
    acked(ledger, 0, 0)
    acked(ledger, 0, 2)
    row = verdict(ledger, stored(ledger, (0, 0, 0), (0, 1, 0), (0, 2, 1)), idempotence=idempotence)
    assert (row.duplicates, row.reorderings, row.offset_mismatches) == (1, 0, 0)
    assert row.violations == (["1 stored more than once"] if idempotence else [])


@pytest.mark.parametrize(
    ("idempotence", "in_flight", "violates"),
    [(True, 5, True), (False, 1, True), (False, 5, False)],
)
def test_reorderings_count_backward_steps_per_partition(
    idempotence: bool, in_flight: int, violates: bool
) -> None:
    ledger = Ledger("run")
    for offset in (0, 2, 1, 3):  # sent in this order, stored by offset: 0 2 1 3
        acked(ledger, 0, offset)
    acked(ledger, 1, 0)  # another partition: its own order
    log = stored(ledger, (0, 0, 0), (0, 1, 2), (0, 2, 1), (0, 3, 3), (1, 0, 4))
    row = verdict(ledger, log, idempotence=idempotence, in_flight=in_flight)
    assert row.reorderings == 1
    assert ("1 reorderings" in row.violations) is violates


@pytest.mark.parametrize(
    ("broker", "unknown_violates"), [("Tansu", False), ("Kafka 4.4.0", True), ("fake", True)]
)
def test_offsets_wrong_and_unknown_are_counted_apart(broker: str, unknown_violates: bool) -> None:
    """Offset -1 for a retried duplicate is Tansu's known answer; anywhere else it breaks
    the promise of the real offset."""
    ledger = Ledger("run")
    acked(ledger, 0, 5)  # stored at 0
    acked(ledger, 0, -1)  # stored at 1: acknowledged without an offset
    log = stored(ledger, (0, 0, 0), (0, 1, 1))
    row = analyse(ledger, log, Row("s", True, 5, TIMEOUT_S, broker=broker))
    assert (row.offset_mismatches, row.offset_unknown) == (1, 1)
    expected = ["1 acknowledged at an offset where they are not stored"]
    if unknown_violates:
        expected.append("1 acknowledged with offset -1 instead of where they are")
    assert row.violations == expected


def test_order_is_the_order_send_returned_not_the_ticket_order() -> None:
    """Concurrent senders take tickets (the values) in one order and are appended in
    another; a partition stored in append order has no reordering."""
    ledger = Ledger("run")
    for ticket in (1, 0, 2):  # ticket 1's send() returned first
        index = len(ledger.records)
        metadata = RecordMetadata("t", 0, index, 0, -1, 10)
        ledger.add(ticket, Sent(index, 0, False, 0.0, 0.01, metadata=metadata))
    row = verdict(ledger, stored(ledger, (0, 0, 1), (0, 1, 0), (0, 2, 2)))
    assert (row.reorderings, row.offset_mismatches, row.lost) == (0, 0, 0)
    assert row.violations == []


def test_only_a_definite_failure_may_not_be_stored() -> None:
    ledger = Ledger("run")
    failed(ledger, 0, possibly_written=True)
    failed(ledger, 0, possibly_written=False)
    row = verdict(ledger, stored(ledger, (0, 0, 0), (0, 1, 1)))
    assert (row.failed_unknown, row.failed_definite, row.failed_but_stored) == (1, 1, 1)
    assert row.violations == ["1 failed as definitely not written, yet stored"]


def test_an_error_without_the_attribute_is_a_definite_failure() -> None:
    ledger = Ledger("run")
    ledger.add(0, Sent(0, 0, False, 0.0, 1.0, error=KafkaConnectionError("x")))
    assert verdict(ledger, []).failed_definite == 1


def test_late_and_unfinished_futures_break_the_timeout_promise() -> None:
    ledger = Ledger("run")
    acked(ledger, 0, 0, latency=TIMEOUT_S + 1.5)
    ledger.add(1, Sent(1, 0, False, 0.0))  # never completed
    row = verdict(ledger, stored(ledger, (0, 0, 0)))
    assert (row.late, row.unfinished, row.max_latency_s) == (1, 1, TIMEOUT_S + 1.5)
    assert len(row.violations) == 2


def test_a_future_completed_only_by_close_counts_as_never_done() -> None:
    ledger = Ledger("run")
    failed(ledger, 0, possibly_written=True)
    ledger.hung.add(0)  # not done when the report stopped waiting; close() failed it later
    row = verdict(ledger, [])
    assert (row.unfinished, row.failed_unknown, row.late) == (1, 0, 0)
    assert row.violations == ["1 futures never completed"]


def test_failed_recovery_records_break_the_run() -> None:
    ledger = Ledger("run")
    error = KafkaTimeoutError("expired")
    ledger.add(0, Sent(0, 0, True, 0.0, 1.0, error=error))
    assert verdict(ledger, []).violations == [
        "1 records sent after the faults ended were not acknowledged"
    ]


def test_values_of_other_runs_are_ignored() -> None:
    ledger = Ledger("run")
    acked(ledger, 0, 1)
    log = [Stored(0, 0, b"other:0000000"), Stored(0, 1, ledger.value(0)), Stored(0, 2, None)]
    row = verdict(ledger, log)
    assert (row.found, row.duplicates, row.offset_mismatches) == (1, 0, 0)


def test_error_summary_names_the_error_behind_a_timeout() -> None:
    ledger = Ledger("run")
    for index in range(3):
        error = KafkaTimeoutError("expired")
        if index:
            error.__cause__ = NotEnoughReplicasError("NOT_ENOUGH_REPLICAS")
        ledger.add(index, Sent(index, 0, False, 0.0, 1.0, error=error))
    assert error_summary(ledger) == (
        "KafkaTimeoutError (last: NotEnoughReplicasError) x2, KafkaTimeoutError x1"
    )
