"""The batch-outcome decision (``_outcome.decide``): every error code a broker can send, with
and without idempotence, and the rules around retries, time, splits and leader hints.

The expected outcomes are written out here, not derived from the errors' classes: a change
to a class's ``retriable`` flag or to a rule shows up as a failing row."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from asyncproducer._batch import ProducerBatch
from asyncproducer._idempotence import IdempotenceState, ProducerIdAndEpoch, SequenceVerdict
from asyncproducer._outcome import BatchFacts, Decision, Outcome, decide
from asyncproducer.errors import (
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    RecordTooLargeError,
    RequestTimeoutError,
    error_for_code,
)

RETRY = {2, 7, 14, 15, 16, 19, 20, 41, 51, 70, 71, 72, 78, 80, 83, 84, 88, 89, 106, 122, 123, 133}
REFRESH_METADATA_AND_RETRY = {3, 5, 6, 9, 13, 56, 74, 75, 100, 103}
FATAL = {31, 47, 53, 90}  # cluster authorization, our epoch taken, transactional id, fenced
SPLIT = {10}  # MESSAGE_TOO_LARGE, for a batch of several records
COMPLETE = {46}  # DUPLICATE_SEQUENCE_NUMBER: written before
UNKNOWN_CODE = 32_000
SOON = {51}  # CONCURRENT_TRANSACTIONS: retried within SOON_MS

WITHOUT_IDEMPOTENCE = {
    **dict.fromkeys(RETRY, Outcome.RETRY),
    **dict.fromkeys(REFRESH_METADATA_AND_RETRY, Outcome.REFRESH_METADATA_AND_RETRY),
    **dict.fromkeys(FATAL, Outcome.FATAL),
    **dict.fromkeys(SPLIT, Outcome.SPLIT),
    **dict.fromkeys(COMPLETE, Outcome.COMPLETE),
}
# With idempotence, the sequence errors are retried (the rules re-stamp or bump the epoch):
# for the batch right after the last acknowledged one, both mean the broker lost our state.
WITH_IDEMPOTENCE = {
    **WITHOUT_IDEMPOTENCE,
    45: Outcome.RETRY,  # OUT_OF_ORDER_SEQUENCE_NUMBER
    59: Outcome.RETRY,  # UNKNOWN_PRODUCER_ID
}
BUMPS_WITH_IDEMPOTENCE = {45, 59}

ALL_CODES = sorted({int(code) for code in ErrorCode if code != ErrorCode.none} | {UNKNOWN_CODE})
FRESH = BatchFacts(record_count=3, attempts=0, in_time=True)


def stamped_batch() -> tuple[IdempotenceState, ProducerBatch]:
    """One batch in flight, right after the last acknowledged sequence."""
    state = IdempotenceState()
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(7, 0))
    batch = ProducerBatch("t", 0, 0, 0, batch_size=10_000)
    for index in range(3):
        assert batch.try_append(None, (0, None, b"v%d" % index, ()))
    state.stamp(batch)
    return state, batch


def test_the_table_names_only_codes_that_exist() -> None:
    assert set(WITH_IDEMPOTENCE) <= set(ALL_CODES)


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_error_code_without_idempotence(code: int) -> None:
    decision = decide(error_for_code(code), FRESH, retries=10)
    assert decision == Decision(WITHOUT_IDEMPOTENCE.get(code, Outcome.FAIL), soon=code in SOON)


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_error_code_with_idempotence(code: int) -> None:
    state, batch = stamped_batch()
    error = error_for_code(code)
    verdict = state.judge(batch, error, log_start_offset=0)
    decision = decide(error, FRESH, retries=10, sequence_verdict=verdict)
    expected = Decision(
        WITH_IDEMPOTENCE.get(code, Outcome.FAIL),
        bump_epoch=code in BUMPS_WITH_IDEMPOTENCE,
        soon=code in SOON,
    )
    assert decision == expected


def test_success_completes() -> None:
    assert decide(None, FRESH, retries=0) == Decision(Outcome.COMPLETE)


@pytest.mark.parametrize(
    "error", [KafkaConnectionError("dropped"), RequestTimeoutError("no answer")]
)
def test_client_side_failures_of_a_request_are_retried(error: KafkaError) -> None:
    assert decide(error, FRESH, retries=10).outcome is Outcome.RETRY


def test_retries_run_out_by_count_as_a_failure_and_by_time_as_an_expiry() -> None:
    error = NotLeaderOrFollowerError("moved")
    spent = BatchFacts(record_count=3, attempts=10, in_time=True)
    late = BatchFacts(record_count=3, attempts=0, in_time=False)
    both = BatchFacts(record_count=3, attempts=10, in_time=False)
    assert decide(error, spent, retries=10).outcome is Outcome.FAIL
    assert decide(error, late, retries=10).outcome is Outcome.EXPIRE
    assert decide(error, both, retries=10).outcome is Outcome.EXPIRE  # time names the end


def test_a_leader_hint_spares_the_metadata_refresh() -> None:
    error = NotLeaderOrFollowerError("moved")
    assert decide(error, FRESH, retries=10, leader_known=True).outcome is Outcome.RETRY


def test_only_a_batch_of_several_records_is_split_and_only_in_time() -> None:
    error = RecordTooLargeError("too large")
    one = BatchFacts(record_count=1, attempts=0, in_time=True)
    late = BatchFacts(record_count=3, attempts=0, in_time=False)
    assert decide(error, one, retries=10).outcome is Outcome.FAIL
    assert decide(error, late, retries=10).outcome is Outcome.FAIL


def test_a_stale_epoch_for_a_restamped_batch_is_not_fatal() -> None:
    # It answers for the stamp it was sent with, before our own bump.
    restamped = BatchFacts(record_count=3, attempts=0, in_time=True, sequence_reset=True)
    error = InvalidProducerEpochError("old epoch")
    assert decide(error, restamped, retries=10).outcome is Outcome.FAIL
    assert decide(error, FRESH, retries=10).outcome is Outcome.FATAL


def test_the_sequence_verdict_overrides_the_errors_own_flag() -> None:
    error = OutOfOrderSequenceNumberError("gap")
    assert decide(error, FRESH, retries=10).outcome is Outcome.FAIL
    verdict = SequenceVerdict(retriable=True)
    assert decide(error, FRESH, retries=10, sequence_verdict=verdict) == Decision(Outcome.RETRY)
    # An epoch bump is asked for even when the batch cannot be retried any more.
    bump = SequenceVerdict(retriable=True, bump_epoch=True)
    spent = BatchFacts(record_count=3, attempts=10, in_time=True)
    assert decide(error, spent, retries=10, sequence_verdict=bump) == Decision(
        Outcome.FAIL, bump_epoch=True
    )


def test_the_verdict_says_when_the_broker_lost_acknowledged_records() -> None:
    state, batch = stamped_batch()
    verdict = state.judge(batch, OutOfOrderSequenceNumberError("lost"), 0)
    assert verdict == SequenceVerdict(True, bump_epoch=True, lost_acknowledged=True)


def test_concurrent_transactions_is_retried_soon() -> None:
    """The previous transaction's markers are being written: retry within SOON_MS, not
    after the whole backoff; every other retry waits it out."""
    facts = BatchFacts(record_count=1, attempts=0, in_time=True)
    assert decide(error_for_code(51), facts, retries=5) == Decision(Outcome.RETRY, soon=True)
    assert decide(error_for_code(7), facts, retries=5) == Decision(Outcome.RETRY)
