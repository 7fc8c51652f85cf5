"""Task states and the one rule that governs them: no transition leaves a terminal state."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """Life cycle of a task. ``DONE``, ``FAILED`` and ``CANCELED`` are terminal."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.DONE, TaskState.FAILED, TaskState.CANCELED}
)

# Position of each non-terminal state; a state may only move forward.
_ORDER = {TaskState.NEW: 0, TaskState.SUBMITTED: 1, TaskState.RUNNING: 2}


def is_terminal(state: TaskState) -> bool:
    """True for DONE, FAILED and CANCELED."""
    return state in TERMINAL_STATES


def can_transition(old: TaskState, new: TaskState) -> bool:
    """Whether a task in ``old`` may move to ``new``.

    Terminal states are final; non-terminal states only move forward, and any non-terminal
    state may end in any terminal one.
    """
    if old in TERMINAL_STATES:
        return False
    if new in TERMINAL_STATES:
        return True
    return _ORDER[new] > _ORDER[old]
