"""What was sent and what each future said (the ledger), and the verdict against the log.

The ledger is filled while a fault scenario runs; :func:`analyse` compares it with what
the broker actually stored and produces one row of the reliability report. Nothing here
does I/O or knows which broker ran.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio

from asyncproducer import RecordMetadata
from asyncproducer.errors import KafkaError


@dataclass(slots=True)
class Sent:
    """One record: where it was sent, and when and how its future completed."""

    index: int
    partition: int
    recovery: bool  # sent after the faults ended, to show the producer works again
    sent_at: float
    done_at: float | None = None
    metadata: RecordMetadata | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """One record as read back from the log."""

    partition: int
    offset: int
    value: bytes | None


class Ledger:
    """Every record a run sent, with a unique value ``<run id>:<ticket>`` so the log can be
    matched back to it, and the completion of each future."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.records: list[Sent] = []
        self.notes: list[str] = []  # what the run observed besides the counts
        self.problems: list[str] = []  # what went wrong with the run itself (a hang)
        # Records whose future was not done when the report stopped waiting. close()
        # fails them later, but that late failure must not hide that they hung.
        self.hung: set[int] = set()
        self._pending = 0
        self._all_done: anyio.Event | None = None
        self._tickets = 0
        self._index_of_ticket: dict[int, int] = {}

    def value(self, ticket: int) -> bytes:
        return f"{self.run_id}:{ticket:07d}".encode()

    def index_of(self, value: bytes | None) -> int | None:
        """The send index of a stored value, None if another run (or nobody) wrote it."""
        if value is None:
            return None
        run_id, _, ticket = value.decode(errors="replace").rpartition(":")
        if run_id != self.run_id or not ticket.isdigit():
            return None
        return self._index_of_ticket.get(int(ticket))

    async def send(
        self, producer: Any, topic: str, partition: int, *, recovery: bool = False
    ) -> None:
        # A record's value carries a ticket taken before send(); its index is its place
        # among the records send() returned, which is the order the producer appended them
        # (send() yields before it appends, so with concurrent senders the two differ).
        ticket = self._tickets
        self._tickets += 1
        try:
            future = await producer.send(topic, self.value(ticket), partition=partition)
        except KafkaError as exc:
            # Not enqueued (no metadata or buffer within max_block_ms): a definite failure.
            now = time.monotonic()
            self.add(ticket, Sent(len(self.records), partition, recovery, now, now, error=exc))
            return
        sent = Sent(len(self.records), partition, recovery, sent_at=time.monotonic())
        self.add(ticket, sent)
        self._pending += 1
        future.add_done_callback(lambda done: self._complete(sent, done))

    def add(self, ticket: int, sent: Sent) -> None:
        """Record ``sent``, whose value carries ``ticket``."""
        self._index_of_ticket[ticket] = sent.index
        self.records.append(sent)

    def _complete(self, sent: Sent, future: Any) -> None:
        sent.done_at = time.monotonic()
        if future.cancelled():
            sent.error = anyio.get_cancelled_exc_class()()
        elif future.exception() is not None:
            sent.error = future.exception()
        else:
            sent.metadata = future.result()
        self._pending -= 1
        if not self._pending and self._all_done is not None:
            self._all_done.set()

    async def wait(self, seconds: float) -> bool:
        """Wait (at most ``seconds``) for every future sent so far; False, and the ones
        not done are marked hung, if some are not done by then."""
        if not self._pending:
            return True
        self._all_done = anyio.Event()
        with anyio.move_on_after(seconds):
            await self._all_done.wait()
        self.hung.update(s.index for s in self.records if s.done_at is None)
        return not self._pending


def possibly_written(error: BaseException) -> bool:
    # KafkaError.possibly_written: True when the record may be in the log anyway.
    return bool(getattr(error, "possibly_written", False))


@dataclass
class Row:
    """One line of the report: one scenario, idempotence on or off."""

    scenario: str
    idempotence: bool
    max_in_flight: int
    delivery_timeout_s: float
    broker: str = "fake"  # fake, Tansu or Kafka <version>
    sent: int = 0
    acked: int = 0
    failed_definite: int = 0
    failed_unknown: int = 0
    unfinished: int = 0
    found: int = 0
    lost: int = 0
    duplicates: int = 0
    reorderings: int = 0
    offset_mismatches: int = 0
    offset_unknown: int = 0
    failed_but_stored: int = 0
    max_latency_s: float = 0.0
    late: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    skipped: str | None = None


BROKERS_WITHOUT_DUPLICATE_OFFSETS = frozenset({"Tansu"})
"""Brokers that answer a retried duplicate batch without its offset (Kafka and the fake
give the original offset, so -1 there is a broken promise; see docs/reliability.md)."""

LATE_SLACK_S = 1.0
"""A future may complete this much after ``delivery_timeout_ms`` (the sender's tick)."""


def analyse(ledger: Ledger, stored: Iterable[Stored], row: Row) -> Row:
    """Fill ``row`` with the outcome counts and the log's verdict, then its violations."""
    copies: dict[int, list[Stored]] = defaultdict(list)
    for record in sorted(stored, key=lambda r: (r.partition, r.offset)):
        index = ledger.index_of(record.value)
        if index is not None and index < len(ledger.records):
            copies[index].append(record)
    _count_outcomes(ledger, row)
    _check_log(ledger, copies, row)
    row.reorderings = _reorderings(copies)
    row.notes += ledger.notes
    row.violations += _violations(ledger, row)
    return row


def _count_outcomes(ledger: Ledger, row: Row) -> None:
    row.sent = len(ledger.records)
    for sent in ledger.records:
        if sent.done_at is None or sent.index in ledger.hung:
            row.unfinished += 1
            continue
        latency = sent.done_at - sent.sent_at
        row.max_latency_s = max(row.max_latency_s, latency)
        row.late += latency > row.delivery_timeout_s + LATE_SLACK_S
        if sent.metadata is not None:
            row.acked += 1
        elif sent.error is not None and possibly_written(sent.error):
            row.failed_unknown += 1
        else:
            row.failed_definite += 1


def _check_log(ledger: Ledger, copies: dict[int, list[Stored]], row: Row) -> None:
    row.found = len(copies)
    row.duplicates = sum(1 for found in copies.values() if len(found) > 1)
    for sent in ledger.records:
        found = copies.get(sent.index, [])
        if sent.metadata is not None:
            if not found:
                row.lost += 1
            elif sent.metadata.offset == -1:
                # Acknowledged without an offset (a broker answering a retried batch
                # DUPLICATE_SEQUENCE_NUMBER without the original offset): not a wrong
                # offset, but not the promised one either. Counted apart.
                row.offset_unknown += 1
            elif (sent.metadata.partition, sent.metadata.offset) not in {
                (r.partition, r.offset) for r in found
            }:
                row.offset_mismatches += 1
        elif sent.error is not None and not possibly_written(sent.error) and found:
            row.failed_but_stored += 1


def _reorderings(copies: dict[int, list[Stored]]) -> int:
    """Consecutive stored records (first copies, per partition) whose send indexes go
    backwards. Later copies are duplicates, counted as such, not as reorderings."""
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for index, found in copies.items():
        first = found[0]
        by_partition[first.partition].append((first.offset, index))
    inversions = 0
    for entries in by_partition.values():
        indexes = [index for _, index in sorted(entries)]
        inversions += sum(1 for a, b in itertools.pairwise(indexes) if a > b)
    return inversions


def _violations(ledger: Ledger, row: Row) -> list[str]:
    """What makes the report fail. Without idempotence, duplicates are expected, and
    reorderings too when more than one request may be in flight; everything else is a
    broken promise whatever the settings."""
    problems: list[str] = list(ledger.problems)

    def check(count: int, what: str) -> None:
        if count:
            problems.append(f"{count} {what}")

    check(row.lost, "acknowledged but not in the log")
    check(row.offset_mismatches, "acknowledged at an offset where they are not stored")
    check(row.failed_but_stored, "failed as definitely not written, yet stored")
    check(row.unfinished, "futures never completed")
    check(row.late, f"futures completed later than delivery_timeout_ms + {LATE_SLACK_S:g} s")
    if row.broker not in BROKERS_WITHOUT_DUPLICATE_OFFSETS:
        check(row.offset_unknown, "acknowledged with offset -1 instead of where they are")
    if row.idempotence:
        check(row.duplicates, "stored more than once")
    if row.idempotence or row.max_in_flight == 1:
        check(row.reorderings, "reorderings")
    failed_recovery = sum(1 for s in ledger.records if s.recovery and s.metadata is None)
    check(failed_recovery, "records sent after the faults ended were not acknowledged")
    return problems


def error_summary(ledger: Ledger) -> str:
    """The failures by exception type and the error behind it (a timeout's last broker
    error), e.g. ``KafkaTimeoutError (last: NotEnoughReplicasError) x12``."""

    def kind(error: BaseException) -> str:
        cause = error.__cause__
        return type(error).__name__ + (f" (last: {type(cause).__name__})" if cause else "")

    kinds = Counter(kind(s.error) for s in ledger.records if s.error is not None)
    return ", ".join(f"{name} x{count}" for name, count in kinds.most_common())
