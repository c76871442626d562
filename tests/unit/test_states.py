"""The explicit state tables: a batch's life (``_batch.BATCH_TRANSITIONS``) and the
producer id's (``_idempotence.PRODUCER_ID_TRANSITIONS``). Each table is complete, its
final states are final, a move it does not list raises, and the code walks through it
as the table says."""

from __future__ import annotations

import logging

import pytest

from asyncproducer._batch import BATCH_TRANSITIONS, BatchState, ProducerBatch
from asyncproducer._idempotence import (
    PRODUCER_ID_TRANSITIONS,
    IdempotenceState,
    ProducerIdAndEpoch,
    ProducerIdState,
)
from asyncproducer.errors import UnknownProducerIdError
from asyncproducer.interceptors import InterceptorChain

NO_INTERCEPTORS = InterceptorChain([])


def new_batch(records: int = 4) -> ProducerBatch:
    """Records without futures report to a send_batch() result list."""
    batch = ProducerBatch("t", 0, 0, 0, batch_size=10_000)
    for index in range(records):
        assert batch.try_append(None, (0, None, b"v%d" % index, ()))
    batch.add_sink(0, [None] * records, 0, records)
    return batch


# --------------------------------------------------------------------------- batches


def test_every_batch_state_has_a_row_and_the_final_ones_lead_nowhere() -> None:
    assert set(BATCH_TRANSITIONS) == set(BatchState)
    for final in (BatchState.SPLIT, BatchState.COMPLETE, BatchState.FAILED):
        assert BATCH_TRANSITIONS[final] == frozenset()


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        ([], BatchState.COMPLETE),  # acknowledged without being sent
        ([], BatchState.REQUEUED),
        ([BatchState.SENDING], BatchState.COMPLETE),  # answered before written
        ([BatchState.SENDING, BatchState.FAILED], BatchState.SENDING),  # failed is final
    ],
)
def test_a_move_the_table_does_not_list_raises_and_changes_nothing(
    path: list[BatchState], wrong: BatchState
) -> None:
    batch = new_batch()
    for state in path:
        batch.move_to(state)
    before = batch.state
    with pytest.raises(AssertionError, match=f"to {wrong.value}"):
        batch.move_to(wrong)
    assert batch.state is before


def test_a_batch_sent_retried_and_acknowledged() -> None:
    batch = new_batch()
    assert batch.state is BatchState.QUEUED
    assert not batch.done
    for state in (
        BatchState.SENDING,
        BatchState.AWAITING_RESPONSE,
        BatchState.REQUEUED,
        BatchState.SENDING,
        BatchState.AWAITING_RESPONSE,
    ):
        batch.move_to(state)
    batch.close()
    batch.complete(0, -1, NO_INTERCEPTORS)
    assert batch.state is BatchState.COMPLETE
    assert batch.done


def test_a_failed_batch_is_done() -> None:
    batch = new_batch()
    batch.fail(RuntimeError("closed"), NO_INTERCEPTORS)
    assert batch.state is BatchState.FAILED
    assert batch.done


def test_a_split_batch_hands_over_to_halves_that_were_sent() -> None:
    batch = new_batch()
    batch.order = (1, 0)
    batch.move_to(BatchState.SENDING)
    batch.close()
    batch.move_to(BatchState.AWAITING_RESPONSE)
    halves = batch.split(10_000)
    batch.move_to(BatchState.SPLIT)
    assert [half.state for half in halves] == [BatchState.REQUEUED, BatchState.REQUEUED]
    assert batch.done  # its records are the halves' now


# --------------------------------------------------------------------------- producer id


def test_every_producer_id_state_has_a_row_and_fatal_leads_nowhere() -> None:
    assert set(PRODUCER_ID_TRANSITIONS) == set(ProducerIdState)
    assert PRODUCER_ID_TRANSITIONS[ProducerIdState.FATAL] == frozenset()


def test_an_id_then_a_bump_then_fatal_each_change_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncproducer.producer")
    state = IdempotenceState()
    assert state.state is ProducerIdState.UNINITIALIZED
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(7, 0))
    assert state.state is ProducerIdState.READY
    batch = new_batch()
    state.stamp(batch)
    state.request_bump(batch)
    assert state.state is ProducerIdState.BUMPING_EPOCH
    state.bump_epoch_if_needed()
    assert state.state is ProducerIdState.READY
    assert state.producer == ProducerIdAndEpoch(7, 1)
    state.fatal()
    state.fatal()  # once fatal, always fatal
    changes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("producer id:")]
    assert changes == [
        "producer id: uninitialized -> initializing",
        "producer id: initializing -> ready",
        "producer id: ready -> bumping epoch",
        "producer id: bumping epoch -> ready",
        "producer id: ready -> fatal",
    ]


def test_an_exhausted_epoch_goes_back_to_uninitialized_for_a_new_id() -> None:
    state = IdempotenceState()
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(7, 2**15 - 1))
    batch = new_batch()
    state.stamp(batch)
    verdict = state.judge(batch, UnknownProducerIdError("lost"), log_start_offset=0)
    assert verdict.bump_epoch
    state.request_bump(batch)
    state.bump_epoch_if_needed()
    assert state.state is ProducerIdState.UNINITIALIZED
    assert state.producer is None
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(8, 0))
    assert state.state is ProducerIdState.READY


def test_a_producer_id_out_of_turn_raises() -> None:
    state = IdempotenceState()
    with pytest.raises(AssertionError, match="from uninitialized to ready"):
        state.set_producer(ProducerIdAndEpoch(7, 0))  # never asked for
    state.fatal()
    with pytest.raises(AssertionError, match="from fatal to initializing"):
        state.initializing()
