"""The transactional producer's state (``_transactions``): the table of its states, what
each public call does from each of them, the partitions of the open transaction, which
record errors spoil the transaction and which end the producer, and what every
coordinator answer asks for (``coordinator_action``).

The expected tables are written out here, not read from the module or the errors'
classes: a move added to the table, a changed rule or a changed ``retriable`` flag shows
up as a failing row."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kio.schema.errors import ErrorCode

from asyncproducer._transactions import (
    FATAL_FOR_TRANSACTIONS,
    TRANSACTION_TRANSITIONS,
    Action,
    TransactionManager,
    TransactionState,
    TxnApi,
    coordinator_action,
)
from asyncproducer.errors import (
    ClusterAuthorizationFailedError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    KafkaConnectionError,
    KafkaError,
    ProducerFencedError,
    RequestTimeoutError,
    TopicAuthorizationFailedError,
    TransactionAbortableError,
    TransactionalIdAuthorizationFailedError,
    TransactionStateError,
    UnsupportedVersionError,
    error_for_code,
)

S = TransactionState
TXN_ID = "orders-1"
PARTITION = ("t", 0)

EXPECTED_TRANSITIONS: dict[TransactionState, frozenset[TransactionState]] = {
    S.UNINITIALIZED: frozenset({S.INITIALIZING, S.FATAL_ERROR}),
    S.INITIALIZING: frozenset({S.READY, S.UNINITIALIZED, S.FATAL_ERROR}),
    S.READY: frozenset({S.IN_TRANSACTION, S.FATAL_ERROR}),
    S.IN_TRANSACTION: frozenset({S.COMMITTING, S.ABORTING, S.ABORTABLE_ERROR, S.FATAL_ERROR}),
    S.COMMITTING: frozenset({S.READY, S.INITIALIZING, S.ABORTABLE_ERROR, S.FATAL_ERROR}),
    S.ABORTING: frozenset({S.READY, S.INITIALIZING, S.FATAL_ERROR}),
    S.ABORTABLE_ERROR: frozenset({S.ABORTING, S.FATAL_ERROR}),
    S.FATAL_ERROR: frozenset(),
}
"""Java's ``TransactionManager.isTransitionValid`` (without two-phase commit), plus the
epoch bump after an ended transaction (-> INITIALIZING) and a failed InitProducerId
(INITIALIZING -> UNINITIALIZED)."""


def fenced() -> ProducerFencedError:
    return ProducerFencedError("from the call: a newer instance took the transactional id")


def spoiled() -> TopicAuthorizationFailedError:
    return TopicAuthorizationFailedError("from the call: not allowed to write to t")


def manager_in(
    state: TransactionState, on_change: Callable[[TransactionState], object] | None = None
) -> TransactionManager:
    """A manager brought to ``state`` by its public calls, with PARTITION in the
    transaction for the states inside one."""
    manager = TransactionManager(TXN_ID, 60_000, on_change)
    if state is S.UNINITIALIZED:
        return manager
    manager.initializing()
    if state is S.INITIALIZING:
        return manager
    manager.initialized()
    if state is S.READY:
        return manager
    manager.begin()
    assert not manager.may_send_to(PARTITION)
    assert manager.take_new_partitions() == [PARTITION]
    manager.partitions_added([PARTITION])
    if state is S.COMMITTING:
        manager.begin_commit()
    elif state is S.ABORTING:
        manager.begin_abort()
    elif state is S.ABORTABLE_ERROR:
        manager.abortable(TransactionAbortableError("the first error"))
    elif state is S.FATAL_ERROR:
        manager.fatal(ProducerFencedError("the first error"))
    assert manager.state is state
    return manager


# --------------------------------------------------------------------------- the table


PUBLIC_MOVES: dict[
    tuple[TransactionState, TransactionState], Callable[[TransactionManager], object]
]
PUBLIC_MOVES = {
    (S.UNINITIALIZED, S.INITIALIZING): lambda m: m.initializing(),
    (S.UNINITIALIZED, S.FATAL_ERROR): lambda m: m.fatal(fenced()),
    (S.INITIALIZING, S.READY): lambda m: m.initialized(),
    (S.INITIALIZING, S.UNINITIALIZED): lambda m: m.initialization_failed(RequestTimeoutError("")),
    (S.INITIALIZING, S.FATAL_ERROR): lambda m: m.initialization_failed(fenced()),
    (S.READY, S.IN_TRANSACTION): lambda m: m.begin(),
    (S.READY, S.FATAL_ERROR): lambda m: m.fatal(fenced()),
    (S.IN_TRANSACTION, S.COMMITTING): lambda m: m.begin_commit(),
    (S.IN_TRANSACTION, S.ABORTING): lambda m: m.begin_abort(),
    (S.IN_TRANSACTION, S.ABORTABLE_ERROR): lambda m: m.record_failed(spoiled()),
    (S.IN_TRANSACTION, S.FATAL_ERROR): lambda m: m.record_failed(fenced()),
    (S.COMMITTING, S.READY): lambda m: m.ended(),
    (S.COMMITTING, S.INITIALIZING): lambda m: m.ended(epoch_bump_due=True),
    (S.COMMITTING, S.ABORTABLE_ERROR): lambda m: m.abortable(spoiled()),
    (S.COMMITTING, S.FATAL_ERROR): lambda m: m.fatal(fenced()),
    (S.ABORTING, S.READY): lambda m: m.ended(),
    (S.ABORTING, S.INITIALIZING): lambda m: m.ended(epoch_bump_due=True),
    (S.ABORTING, S.FATAL_ERROR): lambda m: m.fatal(fenced()),
    (S.ABORTABLE_ERROR, S.ABORTING): lambda m: m.begin_abort(),
    (S.ABORTABLE_ERROR, S.FATAL_ERROR): lambda m: m.fatal(fenced()),
}
"""One public call per move the table lists."""

ALL_PAIRS = [(source, target) for source in S for target in S]


def test_the_table_is_the_expected_one_and_fatal_leads_nowhere() -> None:
    assert set(TRANSACTION_TRANSITIONS) == set(TransactionState)
    assert dict(TRANSACTION_TRANSITIONS) == EXPECTED_TRANSITIONS
    assert TRANSACTION_TRANSITIONS[S.FATAL_ERROR] == frozenset()


def test_every_listed_move_has_a_public_call() -> None:
    listed = {
        (source, target) for source, targets in EXPECTED_TRANSITIONS.items() for target in targets
    }
    assert set(PUBLIC_MOVES) == listed


@pytest.mark.parametrize(
    ("source", "target"), ALL_PAIRS, ids=[f"{s.name}->{t.name}" for s, t in ALL_PAIRS]
)
def test_every_state_to_every_state(
    source: TransactionState, target: TransactionState, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[TransactionState] = []
    manager = manager_in(source, changes.append)
    changes.clear()
    error_before = manager.error
    caplog.set_level(logging.DEBUG, logger="asyncproducer.transactions")
    if target in EXPECTED_TRANSITIONS[source]:
        PUBLIC_MOVES[source, target](manager)
        assert manager.state is target
        assert changes == [target]
        assert [r.getMessage() for r in caplog.records] == [
            f"transactional id {TXN_ID!r}: {source.value} -> {target.value}"
            + (f" ({manager.error})" if manager.error is not None else "")
        ]
    else:
        with pytest.raises(
            AssertionError,
            match=re.escape(f"transaction: no transition from {source.value} to {target.value}"),
        ):
            manager._move_to(target)
        assert manager.state is source
        assert manager.error is error_before
        assert changes == []
        assert caplog.records == []


def test_a_transaction_committed_then_one_aborted_each_change_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncproducer.transactions")
    changes: list[TransactionState] = []
    manager = TransactionManager(TXN_ID, 60_000, on_change=changes.append)
    assert manager.state is S.UNINITIALIZED
    assert manager.transactional_id == TXN_ID
    assert manager.timeout_ms == 60_000
    manager.initializing()
    manager.initialized()
    manager.begin()
    assert manager.begin_commit() is True
    manager.ended()
    manager.begin()
    error = TransactionAbortableError("record failed")
    manager.record_failed(error)
    assert manager.begin_abort() is True
    manager.ended(epoch_bump_due=True)
    manager.initialized()
    assert changes == [
        S.INITIALIZING,
        S.READY,
        S.IN_TRANSACTION,
        S.COMMITTING,
        S.READY,
        S.IN_TRANSACTION,
        S.ABORTABLE_ERROR,
        S.ABORTING,
        S.INITIALIZING,
        S.READY,
    ]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"transactional id 'orders-1': {line}")
        for line in (
            "uninitialized -> initializing",
            "initializing -> ready",
            "ready -> in transaction",
            "in transaction -> committing",
            "committing -> ready",
            "ready -> in transaction",
            f"in transaction -> abortable error ({error})",
            "abortable error -> aborting",
            "aborting -> initializing",
            "initializing -> ready",
        )
    ]


def test_without_a_callback_moves_still_happen() -> None:
    manager = TransactionManager(TXN_ID, 1000)
    manager.initializing()
    manager.initialized()
    assert manager.state is S.READY


# --------------------------------------------------------------------------- each call


@dataclass(frozen=True)
class Ok:
    """The call returns ``returns`` and leaves the manager in ``state``."""

    state: TransactionState
    returns: object = None


@dataclass(frozen=True)
class Refused:
    """TransactionStateError whose message matches ``match`` (a regex); ``chained``: raised
    from the transaction's error."""

    match: str
    chained: bool = False


class _Fatal:
    """The fatal error itself is raised, a fresh copy each time."""


class _AbortableRaised:
    """A fresh copy of the error that spoiled the transaction is raised, with a note on
    the way on (abort, then begin the next one)."""


class _OutOfTurn:
    """The table has no such move: AssertionError (a bug in the caller)."""


FATAL = _Fatal()
ABORTABLE_RAISED = _AbortableRaised()
OUT_OF_TURN = _OutOfTurn()
Expected = Ok | Refused | _Fatal | _AbortableRaised | _OutOfTurn

NOT_STARTED = "before the producer is started"
MUST_ABORT = "the transaction failed and must be aborted"
IGNORED = {state: Ok(state) for state in S}  # the call leaves every state as it is

CALLS: list[tuple[str, Callable[[TransactionManager], object], dict[TransactionState, Expected]]]
CALLS = [
    (
        "begin",
        lambda m: m.begin(),
        {
            S.UNINITIALIZED: Refused(f"cannot begin a transaction {NOT_STARTED}"),
            S.INITIALIZING: Refused(f"cannot begin a transaction {NOT_STARTED}"),
            S.READY: Ok(S.IN_TRANSACTION),
            S.IN_TRANSACTION: Refused("cannot begin a transaction while in transaction"),
            S.COMMITTING: Refused("cannot begin a transaction while committing a transaction"),
            S.ABORTING: Refused("cannot begin a transaction while aborting a transaction"),
            S.ABORTABLE_ERROR: Refused(f"cannot begin a transaction: {MUST_ABORT}", True),
            S.FATAL_ERROR: FATAL,
        },
    ),
    (
        "check_send",
        lambda m: m.check_send(),
        {
            S.UNINITIALIZED: Refused(f"cannot send {NOT_STARTED}"),
            S.INITIALIZING: Refused(f"cannot send {NOT_STARTED}"),
            S.READY: Refused("only be sent inside a transaction.*producer is not in a transaction"),
            S.IN_TRANSACTION: Ok(S.IN_TRANSACTION),
            S.COMMITTING: Refused("inside a transaction.*producer is committing a transaction"),
            S.ABORTING: Refused("inside a transaction.*producer is aborting a transaction"),
            S.ABORTABLE_ERROR: Refused(f"cannot send: {MUST_ABORT}", True),
            S.FATAL_ERROR: FATAL,
        },
    ),
    (
        "begin_commit",
        lambda m: m.begin_commit(),
        {
            S.UNINITIALIZED: Refused(f"cannot commit {NOT_STARTED}"),
            S.INITIALIZING: Refused(f"cannot commit {NOT_STARTED}"),
            S.READY: Refused("no transaction to commit; the producer is not in a transaction"),
            S.IN_TRANSACTION: Ok(S.COMMITTING, True),
            S.COMMITTING: Ok(S.COMMITTING, False),  # a retried commit()
            S.ABORTING: Refused("no transaction to commit; the producer is aborting"),
            S.ABORTABLE_ERROR: ABORTABLE_RAISED,  # the record's error, as commit()'s answer
            S.FATAL_ERROR: FATAL,
        },
    ),
    (
        "begin_abort",
        lambda m: m.begin_abort(),
        {
            S.UNINITIALIZED: Refused(f"cannot abort {NOT_STARTED}"),
            S.INITIALIZING: Refused(f"cannot abort {NOT_STARTED}"),
            S.READY: Refused("no transaction to abort; the producer is not in a transaction"),
            S.IN_TRANSACTION: Ok(S.ABORTING, True),
            S.COMMITTING: Refused("no transaction to abort; the producer is committing"),
            S.ABORTING: Ok(S.ABORTING, False),  # a retried abort()
            S.ABORTABLE_ERROR: Ok(S.ABORTING, True),
            S.FATAL_ERROR: FATAL,
        },
    ),
    (
        "ended",
        lambda m: m.ended(),
        {
            S.UNINITIALIZED: OUT_OF_TURN,
            S.INITIALIZING: OUT_OF_TURN,  # only a commit or an abort ends
            S.READY: OUT_OF_TURN,
            S.IN_TRANSACTION: OUT_OF_TURN,
            S.COMMITTING: Ok(S.READY),
            S.ABORTING: Ok(S.READY),
            S.ABORTABLE_ERROR: OUT_OF_TURN,
            S.FATAL_ERROR: OUT_OF_TURN,
        },
    ),
    (
        "ended(epoch_bump_due=True)",
        lambda m: m.ended(epoch_bump_due=True),
        {
            S.UNINITIALIZED: OUT_OF_TURN,  # only a commit or an abort ends
            S.INITIALIZING: OUT_OF_TURN,
            S.READY: OUT_OF_TURN,
            S.IN_TRANSACTION: OUT_OF_TURN,
            S.COMMITTING: Ok(S.INITIALIZING),
            S.ABORTING: Ok(S.INITIALIZING),
            S.ABORTABLE_ERROR: OUT_OF_TURN,
            S.FATAL_ERROR: OUT_OF_TURN,
        },
    ),
    (
        "abortable",
        lambda m: m.abortable(spoiled()),
        {
            **IGNORED,  # the first error is kept in ABORTABLE_ERROR and FATAL_ERROR
            S.IN_TRANSACTION: Ok(S.ABORTABLE_ERROR),
            S.COMMITTING: Ok(S.ABORTABLE_ERROR),
        },
    ),
    (
        "record_failed(abortable)",
        lambda m: m.record_failed(spoiled()),
        {
            **IGNORED,  # READY, ABORTING: not a record of an open transaction
            S.IN_TRANSACTION: Ok(S.ABORTABLE_ERROR),
            S.COMMITTING: Ok(S.ABORTABLE_ERROR),
        },
    ),
    ("fatal", lambda m: m.fatal(fenced()), {state: Ok(S.FATAL_ERROR) for state in S}),
    (
        "record_failed(fatal)",
        lambda m: m.record_failed(fenced()),
        {state: Ok(S.FATAL_ERROR) for state in S},
    ),
    (
        "initializing",
        lambda m: m.initializing(),
        {
            **dict.fromkeys(S, OUT_OF_TURN),
            S.UNINITIALIZED: Ok(S.INITIALIZING),
            S.COMMITTING: Ok(S.INITIALIZING),
            S.ABORTING: Ok(S.INITIALIZING),
        },
    ),
    (
        "initialized",
        lambda m: m.initialized(),
        {
            **dict.fromkeys(S, OUT_OF_TURN),
            S.INITIALIZING: Ok(S.READY),
            S.COMMITTING: Ok(S.READY),
            S.ABORTING: Ok(S.READY),
        },
    ),
    (
        "initialization_failed(timeout)",
        lambda m: m.initialization_failed(RequestTimeoutError("from the call: no answer")),
        {**dict.fromkeys(S, OUT_OF_TURN), S.INITIALIZING: Ok(S.UNINITIALIZED)},
    ),
    (
        "initialization_failed(fenced)",
        lambda m: m.initialization_failed(fenced()),
        {state: Ok(S.FATAL_ERROR) for state in S},
    ),
]

CALL_CASES = [(name, call, state, expected[state]) for name, call, expected in CALLS for state in S]


def test_every_call_has_a_row_for_every_state() -> None:
    for name, _call, expected in CALLS:
        assert set(expected) == set(TransactionState), name


@pytest.mark.parametrize(
    ("name", "call", "state", "expected"),
    CALL_CASES,
    ids=[f"{name}-{state.name}" for name, _c, state, _e in CALL_CASES],
)
def test_each_call_from_each_state(
    name: str,
    call: Callable[[TransactionManager], object],
    state: TransactionState,
    expected: Expected,
) -> None:
    changes: list[TransactionState] = []
    manager = manager_in(state, changes.append)
    changes.clear()
    error_before = manager.error
    if isinstance(expected, Ok):
        assert call(manager) == expected.returns
        assert manager.state is expected.state
        assert changes == ([] if expected.state is state else [expected.state])
        if expected.state is state:
            assert manager.error is error_before  # the first error is the one kept
        elif expected.state in (S.ABORTABLE_ERROR, S.FATAL_ERROR):
            assert manager.error is not None
            assert "from the call" in str(manager.error)
        else:
            assert manager.error is None
        return
    if isinstance(expected, Refused):
        with pytest.raises(TransactionStateError, match=expected.match) as refused:
            call(manager)
        assert TXN_ID in str(refused.value)
        if expected.chained:
            assert error_before is not None
            assert refused.value.__cause__ is error_before
            assert str(error_before) in str(refused.value)
    elif isinstance(expected, _Fatal | _AbortableRaised):
        assert error_before is not None
        with pytest.raises(type(error_before)) as raised:
            call(manager)
        assert raised.value is not error_before  # a fresh copy: its traceback is its own
        assert raised.value.args == error_before.args
        assert str(raised.value) == str(error_before)
        notes = getattr(raised.value, "__notes__", [])
        if isinstance(expected, _AbortableRaised):
            assert notes == [
                f"transactional id {TXN_ID!r}: the transaction cannot commit; abort it "
                "(abort_transaction()), then begin the next one"
            ]
        else:
            assert notes == []
    else:
        # The table refuses the move, or ended() its caller (only a commit or an abort ends).
        with pytest.raises(AssertionError, match=f"from {state.value} to |while {state.value}"):
            call(manager)
    assert manager.state is state
    assert manager.error is error_before
    assert changes == []


def test_a_fatal_error_is_raised_afresh_each_time() -> None:
    manager = manager_in(S.READY)
    error = ProducerFencedError("newer instance")
    manager.fatal(error)
    raised = []
    for call in (manager.begin, manager.check_send, manager.begin_commit, manager.begin_abort):
        with pytest.raises(ProducerFencedError) as info:
            call()
        raised.append(info.value)
    assert all(copy is not error for copy in raised)
    assert len({id(copy) for copy in raised}) == len(raised)
    assert manager.error is error


def test_after_an_abortable_error_only_an_abort_leads_on() -> None:
    manager = manager_in(S.IN_TRANSACTION)
    first = TransactionAbortableError("first")
    manager.record_failed(first)
    manager.record_failed(TransactionAbortableError("second"))
    assert manager.error is first
    for call in (manager.begin, manager.check_send):
        with pytest.raises(TransactionStateError, match="must be aborted") as info:
            call()
        assert info.value.__cause__ is first
    with pytest.raises(TransactionAbortableError, match="first") as failed_commit:
        manager.begin_commit()
    assert failed_commit.value is not first
    assert not getattr(first, "__notes__", [])  # the note went on the copy only
    assert manager.state is S.ABORTABLE_ERROR
    assert manager.begin_abort() is True
    assert manager.error is None
    manager.ended()
    manager.begin()
    manager.check_send()
    assert manager.state is S.IN_TRANSACTION


def test_ended_out_of_turn_changes_nothing() -> None:
    # A refused move changes nothing: the transaction's partitions stay as they were.
    manager = manager_in(S.IN_TRANSACTION)
    with pytest.raises(AssertionError, match="ended\\(\\) while in transaction"):
        manager.ended()
    assert manager.state is S.IN_TRANSACTION
    assert manager.started
    assert manager.may_send_to(PARTITION)


# --------------------------------------------------------------------------- record errors

FATAL_RECORD_ERRORS: list[type[KafkaError]] = [
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnsupportedVersionError,
    InvalidProducerIdMappingError,
]
"""Java's ``maybeTransitionToErrorState``: these end the producer."""
FATAL_RECORD_CODES = {90, 53, 31, 35, 49}

UNKNOWN_CODE = 32_000
ALL_CODES = sorted({int(code) for code in ErrorCode if code != ErrorCode.none} | {UNKNOWN_CODE})


def test_the_fatal_record_errors_are_javas() -> None:
    assert set(FATAL_FOR_TRANSACTIONS) == set(FATAL_RECORD_ERRORS)
    assert {type(error_for_code(code)) for code in FATAL_RECORD_CODES} == set(FATAL_RECORD_ERRORS)


@pytest.mark.parametrize("code", ALL_CODES)
@pytest.mark.parametrize("state", [S.IN_TRANSACTION, S.COMMITTING], ids=lambda state: state.name)
def test_a_failed_record_with_every_error_code(code: int, state: TransactionState) -> None:
    manager = manager_in(state)
    error = error_for_code(code, "a record failed")
    manager.record_failed(error)
    # INVALID_PRODUCER_EPOCH (47) on a produce answer spoils only the transaction (KIP-588).
    assert manager.state is (S.FATAL_ERROR if code in FATAL_RECORD_CODES else S.ABORTABLE_ERROR)
    assert manager.error is error


@pytest.mark.parametrize("error_class", FATAL_RECORD_ERRORS)
@pytest.mark.parametrize(
    "state",
    [S.READY, S.IN_TRANSACTION, S.ABORTING, S.ABORTABLE_ERROR],
    ids=lambda state: state.name,
)
def test_a_fatal_record_error_ends_the_producer_from_any_state(
    error_class: type[KafkaError], state: TransactionState
) -> None:
    manager = manager_in(state)
    error = error_class("fatal")
    manager.record_failed(error)
    assert manager.state is S.FATAL_ERROR
    assert manager.error is error


@pytest.mark.parametrize("state", [S.READY, S.ABORTING], ids=lambda state: state.name)
def test_an_abortable_record_error_outside_an_open_transaction_is_ignored(
    state: TransactionState,
) -> None:
    manager = manager_in(state)
    manager.record_failed(TransactionAbortableError("late"))
    manager.record_failed(RuntimeError("late"))
    assert manager.state is state
    assert manager.error is None


def test_a_record_failing_with_a_foreign_exception_spoils_the_transaction() -> None:
    manager = manager_in(S.IN_TRANSACTION)
    manager.record_failed(RuntimeError("serializer exploded"))
    assert manager.state is S.ABORTABLE_ERROR
    assert isinstance(manager.error, TransactionAbortableError)
    assert "serializer exploded" in str(manager.error)


@pytest.mark.parametrize(
    "error",
    [*(cls("init") for cls in FATAL_RECORD_ERRORS), InvalidProducerEpochError("init")],
    ids=lambda e: type(e).__name__,
)
def test_a_fatal_init_producer_id_answer_ends_the_producer(error: KafkaError) -> None:
    manager = manager_in(S.INITIALIZING)
    manager.initialization_failed(error)
    assert manager.state is S.FATAL_ERROR
    assert manager.error is error


@pytest.mark.parametrize(
    "error",
    [RequestTimeoutError("late"), KafkaConnectionError("dropped"), error_for_code(51)],
    ids=lambda e: type(e).__name__,
)
def test_another_init_producer_id_failure_leaves_the_producer_uninitialized(
    error: KafkaError,
) -> None:
    manager = manager_in(S.INITIALIZING)
    manager.initialization_failed(error)
    assert (manager.state, manager.error) == (S.UNINITIALIZED, None)
    manager.initializing()  # start() may be tried again
    manager.initialized()
    assert manager.state is S.READY


# --------------------------------------------------------------------------- partitions


def in_transaction() -> TransactionManager:
    manager = TransactionManager(TXN_ID, 60_000)
    manager.initializing()
    manager.initialized()
    manager.begin()
    return manager


def test_a_partition_seen_first_is_not_sendable_and_is_taken_once_in_first_seen_order() -> None:
    manager = in_transaction()
    assert not manager.adding_partitions
    assert manager.take_new_partitions() == []
    for key in [("b", 1), ("a", 0), ("b", 1), ("a", 2), ("a", 0)]:
        assert not manager.may_send_to(key)
    assert manager.adding_partitions
    assert not manager.started
    assert manager.take_new_partitions() == [("b", 1), ("a", 0), ("a", 2)]
    assert manager.take_new_partitions() == []  # pending, not asked for twice
    assert not manager.may_send_to(("b", 1))  # still pending
    assert manager.take_new_partitions() == []
    assert manager.adding_partitions


def test_while_a_request_is_out_nothing_more_is_taken() -> None:
    manager = in_transaction()
    manager.may_send_to(("t", 0))
    assert manager.take_new_partitions() == [("t", 0)]
    manager.may_send_to(("t", 1))
    manager.may_send_to(("t", 2))
    assert manager.take_new_partitions() == []  # one request at a time, as Java
    manager.partitions_added([("t", 0)])
    assert manager.take_new_partitions() == [("t", 1), ("t", 2)]


def test_added_partitions_are_sendable_and_start_the_transaction() -> None:
    manager = in_transaction()
    manager.may_send_to(("t", 0))
    manager.may_send_to(("t", 1))
    taken = manager.take_new_partitions()
    manager.partitions_added(taken)
    assert manager.started
    assert manager.may_send_to(("t", 0))
    assert manager.may_send_to(("t", 1))
    assert not manager.adding_partitions
    assert manager.take_new_partitions() == []


def test_partitions_not_added_are_taken_again_only_when_retried() -> None:
    manager = in_transaction()
    for key in [("t", 0), ("t", 1)]:
        manager.may_send_to(key)
    taken = manager.take_new_partitions()
    manager.partitions_not_added(taken, retry=True)
    assert not manager.started
    assert not manager.may_send_to(("t", 0))
    assert manager.take_new_partitions() == [("t", 0), ("t", 1)]
    manager.partitions_not_added([("t", 0), ("t", 1)], retry=False)
    assert not manager.adding_partitions
    assert manager.take_new_partitions() == []
    assert not manager.started


def test_partitions_are_taken_only_while_a_transaction_is_open_or_committing() -> None:
    manager = in_transaction()
    manager.may_send_to(("t", 0))
    manager.begin_commit()  # records sent just before commit() still join
    assert manager.take_new_partitions() == [("t", 0)]
    manager.partitions_added([("t", 0)])
    manager.may_send_to(("t", 1))
    manager.abortable(spoiled())
    assert manager.take_new_partitions() == []  # the transaction will be aborted anyway


def test_an_abort_forgets_the_partitions_not_yet_asked_for() -> None:
    manager = in_transaction()
    manager.may_send_to(("t", 0))
    manager.begin_abort()
    assert not manager.adding_partitions
    assert manager.take_new_partitions() == []


def test_ended_forgets_every_partition() -> None:
    manager = in_transaction()
    manager.may_send_to(("t", 0))
    manager.partitions_added(manager.take_new_partitions())  # added
    manager.may_send_to(("t", 1))
    manager.take_new_partitions()  # pending
    manager.may_send_to(("t", 2))  # new
    manager.begin_commit()
    manager.ended()
    assert not manager.started
    assert not manager.adding_partitions
    manager.begin()
    assert not manager.may_send_to(("t", 0))  # to be added again in the next transaction
    assert manager.take_new_partitions() == [("t", 0)]


def test_with_implicit_partitions_a_partition_joins_with_its_first_batch() -> None:
    # Transaction version 2 (KIP-890 part 2): no AddPartitionsToTxn.
    manager = in_transaction()
    manager.implicit_partitions = True
    assert manager.may_send_to(("t", 0))
    assert manager.started
    assert not manager.adding_partitions
    assert manager.take_new_partitions() == []
    manager.begin_commit()
    manager.ended()
    assert not manager.started  # the next transaction starts with its own first batch
    manager.begin()
    assert manager.may_send_to(("t", 0))
    assert manager.started


def test_offsets_added_start_the_transaction() -> None:
    manager = in_transaction()
    assert not manager.started
    manager.offsets_added()
    assert manager.started
    manager.begin_commit()
    manager.ended()
    assert not manager.started


# --------------------------------------------------------------------------- coordinator


LOOKUP = {15, 16}  # COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
FATAL_CODES = {
    31,  # CLUSTER_AUTHORIZATION_FAILED
    35,  # UNSUPPORTED_VERSION
    47,  # INVALID_PRODUCER_EPOCH
    49,  # INVALID_PRODUCER_ID_MAPPING
    53,  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    90,  # PRODUCER_FENCED
}
INVALID_TXN_STATE = 48  # FATAL, but for TxnOffsetCommit: ABORTABLE
ABORTABLE_CODES = {
    22,  # ILLEGAL_GENERATION
    25,  # UNKNOWN_MEMBER_ID
    29,  # TOPIC_AUTHORIZATION_FAILED
    30,  # GROUP_AUTHORIZATION_FAILED
    59,  # UNKNOWN_PRODUCER_ID
    82,  # FENCED_INSTANCE_ID
    120,  # TRANSACTION_ABORTABLE
}
RETRY_CODES = {
    *(14, 51),  # COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS: retried in place
    # every other retriable code (Kafka's Errors.java)
    *(2, 3, 5, 6, 7, 9, 13, 19, 20, 41, 56, 70, 71, 72, 74, 75, 78, 80, 83, 84, 88, 89),
    *(100, 103, 106, 122, 123, 133),
}
# Every other code, known or not, is unexpected: FATAL.


def expected_action(api: TxnApi, code: int) -> Action:
    if code in LOOKUP:
        return Action.RETRY if api is TxnApi.FIND_COORDINATOR else Action.FIND_COORDINATOR
    if code == INVALID_TXN_STATE:
        return Action.ABORTABLE if api is TxnApi.TXN_OFFSET_COMMIT else Action.FATAL
    if code in ABORTABLE_CODES:
        return Action.ABORTABLE
    if code in RETRY_CODES:
        return Action.RETRY
    return Action.FATAL


def test_the_coordinator_table_names_only_codes_that_exist_once() -> None:
    groups = [LOOKUP, FATAL_CODES, {INVALID_TXN_STATE}, ABORTABLE_CODES, RETRY_CODES]
    named = [code for group in groups for code in group]
    assert len(named) == len(set(named))
    assert set(named) <= set(ALL_CODES)


@pytest.mark.parametrize("api", list(TxnApi), ids=lambda api: api.name)
@pytest.mark.parametrize("code", ALL_CODES)
def test_every_error_code_for_every_coordinator_request(api: TxnApi, code: int) -> None:
    assert coordinator_action(api, error_for_code(code)) is expected_action(api, code)


@pytest.mark.parametrize("api", list(TxnApi), ids=lambda api: api.name)
def test_a_coordinator_answer_without_error_is_done(api: TxnApi) -> None:
    assert coordinator_action(api, None) is Action.DONE


@pytest.mark.parametrize(
    "error",
    [KafkaConnectionError("dropped"), RequestTimeoutError("no answer in 30000 ms")],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("api", list(TxnApi), ids=lambda api: api.name)
def test_a_failed_connection_looks_the_coordinator_up_again(api: TxnApi, error: KafkaError) -> None:
    expected = Action.RETRY if api is TxnApi.FIND_COORDINATOR else Action.FIND_COORDINATOR
    assert coordinator_action(api, error) is expected


@pytest.mark.parametrize("api", list(TxnApi), ids=lambda api: api.name)
def test_the_interesting_codes_spelled_out(api: TxnApi) -> None:
    lookup = Action.RETRY if api is TxnApi.FIND_COORDINATOR else Action.FIND_COORDINATOR
    for code in (15, 16):
        assert coordinator_action(api, error_for_code(code)) is lookup
    for code in (47, 90, 53, 35, 49, 31):
        assert coordinator_action(api, error_for_code(code)) is Action.FATAL
    for code in (59, 30, 29, 25, 22, 82, 120):
        assert coordinator_action(api, error_for_code(code)) is Action.ABORTABLE
    for code in (51, 14):
        assert coordinator_action(api, error_for_code(code)) is Action.RETRY
    invalid_txn_state = coordinator_action(api, error_for_code(48))
    if api is TxnApi.TXN_OFFSET_COMMIT:
        assert invalid_txn_state is Action.ABORTABLE
    else:
        assert invalid_txn_state is Action.FATAL
    assert coordinator_action(api, error_for_code(-1)) is Action.FATAL  # UNKNOWN_SERVER_ERROR
    assert coordinator_action(api, error_for_code(UNKNOWN_CODE)) is Action.FATAL
