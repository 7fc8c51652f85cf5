"""Exactly one terminal state per task; no transition leaves a terminal state."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, Session, TaskState
from rhapsody.api.states import TERMINAL_STATES, can_transition

from .fakes import ManualBackend

ALL = list(TaskState)


@given(old=st.sampled_from(ALL), new=st.sampled_from(ALL))
def test_can_transition_rule(old, new):
    allowed = can_transition(old, new)
    if old in TERMINAL_STATES:
        assert not allowed
    elif new in TERMINAL_STATES:
        assert allowed
    else:
        assert allowed == (ALL.index(new) > ALL.index(old))


@given(reports=st.lists(st.sampled_from(ALL), max_size=8))
def test_reported_sequences_end_in_one_terminal_state(reports):
    async def scenario():
        backend = ManualBackend()
        changes = []

        from rhapsody.plugins import hookimpl, register, unregister

        class Recorder:
            @hookimpl
            def rhapsody_task_state_changed(self, task, old_state, new_state):
                changes.append((old_state, new_state))

        register(Recorder(), name="recorder")
        try:
            async with Session(backends=[backend]) as session:
                task = ComputeTask(function=print)
                (future,) = await session.submit_tasks([task])
                for state in reports:
                    backend.report(task, state)
                terminal_first = next((s for s in reports if s in TERMINAL_STATES), None)
                if terminal_first is None:
                    assert task.state in (TaskState.SUBMITTED, TaskState.RUNNING)
                    assert not future.done()
                else:
                    assert task.state is terminal_first
                    assert future.done()
                # every recorded change is legal and at most one reaches a terminal state
                assert all(can_transition(o, n) for o, n in changes)
                assert sum(n in TERMINAL_STATES for _, n in changes) <= 1
            # closing resolves whatever was left
            assert task.state in TERMINAL_STATES and future.done()
            assert sum(n in TERMINAL_STATES for _, n in changes) == 1
        finally:
            unregister("recorder")

    asyncio.run(scenario())
