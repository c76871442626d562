"""IdempotenceState rules (pure): stamping, retry order, sequence errors, epoch bumps."""

from __future__ import annotations

from asyncproducer._batch import ProducerBatch
from asyncproducer._idempotence import (
    IdempotenceState,
    ProducerIdAndEpoch,
    decrement_sequence,
    increment_sequence,
)
from asyncproducer.errors import (
    KafkaError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from asyncproducer.protocol.records import decode_batches

PRODUCER = ProducerIdAndEpoch(7, 0)


def can_retry(
    state: IdempotenceState, batch: ProducerBatch, error: KafkaError, log_start_offset: int
) -> bool:
    """The verdict, with its epoch bump carried out as the sender does."""
    verdict = state.judge(batch, error, log_start_offset)
    if verdict.bump_epoch:
        state.request_bump(batch)
    return verdict.retriable


def batch(records: int = 2, partition: int = 0) -> ProducerBatch:
    created = ProducerBatch("t", partition, 0, 0, batch_size=10_000)
    for index in range(records):
        assert created.try_append(None, (0, None, b"v%d" % index, ()))
    return created


def sent(state: IdempotenceState, *batches: ProducerBatch) -> list[ProducerBatch]:
    """Stamp and encode, as a drain does."""
    for each in batches:
        assert state.may_drain(each)
        state.stamp(each)
        each.close()
    return list(batches)


def on_the_wire(each: ProducerBatch) -> tuple[int, int, int]:
    (decoded,) = decode_batches(each.payload or b"")
    return decoded.producer_id, decoded.producer_epoch, decoded.base_sequence


def new_state() -> IdempotenceState:
    state = IdempotenceState()
    state.initializing()
    state.set_producer(PRODUCER)
    return state


def test_nothing_drains_before_the_producer_id() -> None:
    assert not IdempotenceState().may_drain(batch())


def test_sequences_are_contiguous_per_partition_and_wrap() -> None:
    state = new_state()
    a, b, other = sent(state, batch(2), batch(3), batch(1, partition=1))
    assert [on_the_wire(x) for x in (a, b, other)] == [(7, 0, 0), (7, 0, 2), (7, 0, 0)]
    state._partitions[("t", 0)].next_sequence = 2**31 - 2
    (c,) = sent(state, batch(3))
    assert c.base_sequence == 2**31 - 2
    (d,) = sent(state, batch(1))
    assert d.base_sequence == 1  # 2**31-2, 2**31-1, 0 went to c
    assert increment_sequence(2**31 - 1, 1) == 0
    assert decrement_sequence(1, 3) == 2**31 - 2


def test_a_retry_goes_only_as_the_partitions_first_batch_in_flight() -> None:
    state = new_state()
    a, b = sent(state, batch(), batch())
    assert not state.may_drain(b)  # a is still out
    assert state.may_drain(a)
    state.acknowledged(a, base_offset=10)
    assert state.may_drain(b)


def test_out_of_order_behind_a_failed_batch_is_retried_without_a_bump() -> None:
    state = new_state()
    a, b, c = sent(state, batch(), batch(), batch())
    oos = OutOfOrderSequenceNumberError("gap")
    assert can_retry(state, a, NotLeaderOrFollowerError("moved"), 0)
    assert can_retry(state, b, oos, 0)
    assert can_retry(state, c, oos, 0)
    state.bump_epoch_if_needed()
    assert state.epoch_bumps == 0
    assert [on_the_wire(x) for x in (a, b, c)] == [(7, 0, 0), (7, 0, 2), (7, 0, 4)]


def test_out_of_order_for_the_next_sequence_bumps_and_restamps_in_flight() -> None:
    state = new_state()
    a, b, c = sent(state, batch(), batch(), batch())
    state.acknowledged(a, base_offset=0)
    # b follows the last acknowledged batch, yet the broker wants another sequence: it
    # lost state. The epoch is bumped and b, c start over from 0.
    assert can_retry(state, b, OutOfOrderSequenceNumberError("lost"), 0)
    state.bump_epoch_if_needed()
    assert state.producer == ProducerIdAndEpoch(7, 1)
    assert [on_the_wire(x) for x in (b, c)] == [(7, 1, 0), (7, 1, 2)]
    assert b.sequence_reset
    assert c.sequence_reset
    # c's answer for its old stamp must not bump again.
    assert can_retry(state, c, OutOfOrderSequenceNumberError("old stamp"), 0)
    state.bump_epoch_if_needed()
    assert state.epoch_bumps == 1
    (d,) = sent(state, batch())
    assert on_the_wire(d) == (7, 1, 4)


def test_unknown_producer_id_bumps_unless_the_log_start_is_unknown() -> None:
    state = new_state()
    (a,) = sent(state, batch())
    assert can_retry(state, a, UnknownProducerIdError("?"), -1)
    state.bump_epoch_if_needed()
    assert state.epoch_bumps == 0
    assert can_retry(state, a, UnknownProducerIdError("lost"), 0)
    state.bump_epoch_if_needed()
    assert on_the_wire(a) == (7, 1, 0)


def test_other_partitions_move_to_a_new_epoch_once_nothing_is_in_flight() -> None:
    state = new_state()
    a, other = sent(state, batch(), batch(partition=1))
    can_retry(state, a, UnknownProducerIdError("lost"), 0)
    state.bump_epoch_if_needed()
    later = batch(partition=1)
    assert not state.may_drain(later)  # partition 1 still has an epoch-0 batch out
    state.acknowledged(other, base_offset=0)
    sent(state, later)
    assert on_the_wire(later) == (7, 1, 0)


def test_a_batch_refused_for_good_closes_its_gap() -> None:
    state = new_state()
    a, b, c = sent(state, batch(2), batch(3), batch(2))
    state.failed(b)  # e.g. INVALID_RECORD: the broker did not write it
    assert [on_the_wire(x) for x in (a, c)] == [(7, 0, 0), (7, 0, 2)]
    assert c.sequence_reset
    (d,) = sent(state, batch())
    assert d.base_sequence == 4


def test_an_unknown_outcome_holds_new_batches_until_resolved() -> None:
    state = new_state()
    a, b = sent(state, batch(), batch())
    a.possibly_written = True
    state.failed(a)  # expired in flight: maybe written
    waiting = batch()
    assert not state.may_drain(waiting)
    state.acknowledged(b, base_offset=3)  # b follows a, so a was written after all
    state.resolve_sequences()
    state.bump_epoch_if_needed()
    assert state.epoch_bumps == 0
    sent(state, waiting)
    assert on_the_wire(waiting) == (7, 0, 4)


def test_an_unknown_outcome_never_settled_bumps_the_epoch() -> None:
    state = new_state()
    (a,) = sent(state, batch())
    a.possibly_written = True
    state.failed(a)
    state.resolve_sequences()
    state.bump_epoch_if_needed()
    (b,) = sent(state, batch())
    assert on_the_wire(b) == (7, 1, 0)


def test_refused_right_after_an_unknown_outcome_bumps() -> None:
    state = new_state()
    a, b = sent(state, batch(), batch())
    a.possibly_written = True
    state.failed(a)
    # b's sequence is the one after a: being refused, a was not written.
    assert can_retry(state, b, OutOfOrderSequenceNumberError("gap"), 0)
    state.bump_epoch_if_needed()
    assert on_the_wire(b) == (7, 1, 0)


def test_an_exhausted_epoch_asks_for_a_new_producer_id() -> None:
    state = IdempotenceState()
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(7, 2**15 - 1))
    (a,) = sent(state, batch())
    can_retry(state, a, UnknownProducerIdError("lost"), 0)
    state.bump_epoch_if_needed()
    assert state.producer is None
    assert not state.may_drain(a)
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(8, 0))
    assert on_the_wire(a) == (8, 0, 0)
    assert state.may_drain(a)


def test_split_halves_take_over_the_sequence_range() -> None:
    state = new_state()
    big, after = sent(state, batch(5), batch(1))
    big.order = (1, 0)
    halves = big.split(10_000)
    state.split(big, halves)
    assert [h.base_sequence for h in halves] == [0, 2]
    assert [h.record_count for h in halves] == [2, 3]
    assert state.may_drain(halves[0])
    assert not state.may_drain(halves[1])
    for half in halves:
        half.close()
        state.acknowledged(half, base_offset=0)
    assert state.may_drain(after)
    assert [on_the_wire(h) for h in halves] == [(7, 0, 0), (7, 0, 2)]


# ----------------------------------------------------------------------- transactional


def new_transactional_state() -> IdempotenceState:
    state = IdempotenceState(transactional=True)
    state.initializing()
    state.set_producer(PRODUCER)
    return state


def test_a_transactional_producer_marks_its_batches_and_never_bumps_by_itself() -> None:
    """Its batches carry the transactional bit; a partition whose sequences must start
    over only sets epoch_bump_due (the coordinator bumps, after the abort), the epoch on
    the wire stays."""
    state = new_transactional_state()
    a, b = sent(state, batch(), batch())
    (decoded,) = decode_batches(a.payload or b"")
    assert decoded.is_transactional
    # Refused right after the last acknowledged: the broker lost our state.
    assert can_retry(state, a, OutOfOrderSequenceNumberError("lost"), 0)
    assert state.epoch_bump_due
    state.bump_epoch_if_needed()
    assert state.epoch_bumps == 0
    assert on_the_wire(a) == (7, 0, 0)
    assert on_the_wire(b) == (7, 0, 2)


def test_a_plain_idempotent_batch_is_not_transactional() -> None:
    state = new_state()
    (a,) = sent(state, batch())
    (decoded,) = decode_batches(a.payload or b"")
    assert not decoded.is_transactional


def test_restart_starts_every_partition_over_under_the_new_epoch() -> None:
    state = new_transactional_state()
    a, b = sent(state, batch(), batch(partition=1))
    state.acknowledged(a, base_offset=0)
    state.acknowledged(b, base_offset=0)
    state.epoch_bump_due = True
    state.restart(ProducerIdAndEpoch(7, 1))
    assert not state.epoch_bump_due
    c, d = sent(state, batch(), batch(partition=1))
    assert on_the_wire(c) == (7, 1, 0)
    assert on_the_wire(d) == (7, 1, 0)


def test_the_partition_gate_holds_partitions_back() -> None:
    allowed: set[tuple[str, int]] = {("t", 0)}
    state = new_transactional_state()
    state.partition_gate = allowed.__contains__
    assert state.may_drain(batch(partition=0))
    assert not state.may_drain(batch(partition=1))
    allowed.add(("t", 1))
    assert state.may_drain(batch(partition=1))
