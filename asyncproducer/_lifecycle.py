"""The producer's lifecycle: its states and the moves between them, in one table."""

from __future__ import annotations

import enum


class State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"
    """The sender task died; sends raise, close() cleans up."""


TRANSITIONS: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.STARTING, State.CLOSED}),
    State.STARTING: frozenset({State.RUNNING, State.FAILED}),
    State.RUNNING: frozenset({State.CLOSING, State.FAILED}),
    State.FAILED: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def transition_allowed(state: State, to: State) -> bool:
    return to in TRANSITIONS[state]
