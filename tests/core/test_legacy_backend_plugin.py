"""Backends written for rhapsody-py 0.6 (tests/plugins/legacy-plugin, pip-installed and
published in rhapsody-py's ``rhapsody.backends`` entry-point group) run in a RHAPSODY session
through the one adapter in core, with the session's guarantees."""

from __future__ import annotations

import asyncio

import pytest

import rhapsody
from rhapsody.api import ComputeTask, Session, TaskState, TaskTimeoutError
from rhapsody.compat.legacy_backend import LegacyBackendAdapter


def triple(x):
    return 3 * x


def test_legacy_entry_points_are_discovered_like_any_backend():
    found = rhapsody.discover_backends()
    assert found["legacy_queue"] and found["legacy_queue"].distribution == "rhapsody-legacy-example"
    assert found["legacy_queue"].kind == "execution"
    assert not found["legacy_broken"] and "rhapsody_legacy_example" in found["legacy_broken"].reason
    from rhapsody_legacy_example.backend import QueueExecutionBackend

    # the registry answers with the plugin's own class, as rhapsody-py's did
    assert rhapsody.BackendRegistry.get_backend_class("legacy_queue") is QueueExecutionBackend
    from rhapsody.backends import QueueExecutionBackend as by_name

    assert by_name.legacy_class is QueueExecutionBackend


async def test_a_legacy_backend_runs_functions_and_executables_in_a_session():
    backend = await rhapsody.get_backend("legacy_queue", workers=2)
    assert isinstance(backend, LegacyBackendAdapter) and backend.legacy.started
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(function=triple, args=(i,), priority=i) for i in range(5)] + [
            ComputeTask(executable="/bin/echo", arguments=["legacy"]),
            ComputeTask(executable="/bin/sh", arguments=["-c", "echo no >&2; exit 3"]),
            ComputeTask(function=triple, args=("x", "y")),  # raises TypeError in the backend
        ]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
        assert backend.queue_length() == 0  # the plugin's own method, through the adapter
    assert [t.return_value for t in tasks[:5]] == [0, 3, 6, 9, 12]
    assert all(t.backend == "legacy_queue" and t.state is TaskState.DONE for t in tasks[:6])
    assert tasks[5].stdout == "legacy\n"
    assert tasks[6].state is TaskState.FAILED and tasks[6].exit_code == 3
    assert "exited with code 3; stderr: no" in str(tasks[6].exception)
    assert tasks[7].state is TaskState.FAILED and isinstance(tasks[7].exception, TypeError)


async def test_a_legacy_backend_instance_given_to_a_session_is_adapted():
    from rhapsody_legacy_example.backend import QueueExecutionBackend

    legacy = QueueExecutionBackend(name="mine")
    async with Session(backends=[legacy]) as session:
        adapter = session.backends["mine"]
        assert isinstance(adapter, LegacyBackendAdapter) and adapter.legacy is legacy
        task = ComputeTask(function=triple, args=(7,))
        await session.submit_tasks([task])
        assert (await task).return_value == 21
        assert legacy.attached_to == [session.uid] and legacy._work_dir == session.task_dir
        assert await adapter.state() == "RUNNING"  # the plugin's own state()
    assert await legacy.state() == "SHUTDOWN"


async def test_timeouts_and_cancel_reach_the_legacy_backend():
    async with Session(backends=[await rhapsody.get_backend("legacy_queue")]) as session:
        slow = ComputeTask(executable="/bin/sleep", arguments=["30"], timeout=0.5)
        other = ComputeTask(executable="/bin/sleep", arguments=["30"])
        await session.submit_tasks([slow, other])
        with pytest.raises(TaskTimeoutError):
            await slow
        while other.state is not TaskState.RUNNING:
            await asyncio.sleep(0.01)
        assert await session.cancel_tasks([other]) == 1
        await asyncio.sleep(0.2)  # the backend's own ABORTED callback comes later: ignored
    assert slow.state is TaskState.FAILED and other.state is TaskState.CANCELED


async def test_a_sloppy_legacy_backend_cannot_break_the_session_guarantees():
    backend = await rhapsody.get_backend("legacy_sloppy")
    seen = []
    backend.register_callback(lambda task, state: seen.append((task.uid, str(state))))
    async with Session(backends=[backend]) as session:
        twice = [ComputeTask(executable="/bin/true") for _ in range(20)]
        hang = ComputeTask(executable="/bin/true", arguments=["hang"], timeout=0.3)
        never = ComputeTask(executable="/bin/true", arguments=["hang"])
        await session.submit_tasks([*twice, hang, never])
        await session.wait_tasks([*twice, hang], timeout=30)
        # DONE, then FAILED from a worker thread: the first terminal state is the one kept
        assert all(t.state is TaskState.DONE and t.stdout == "first" for t in twice)
        assert hang.state is TaskState.FAILED and isinstance(hang.exception, TaskTimeoutError)
        assert backend.legacy.canceled == [hang.uid]
    # close() ends the task the backend never reported, and shuts the backend down
    assert never.state is TaskState.CANCELED and backend.legacy.shut_down
    terminal = [state for _, state in seen if state in ("DONE", "FAILED", "CANCELED")]
    assert len(terminal) == 22  # exactly one terminal state per task


async def test_register_backend_by_class_and_by_import_path():
    from rhapsody_legacy_example.backend import QueueExecutionBackend

    rhapsody.BackendRegistry.register_backend("queue2", QueueExecutionBackend)
    rhapsody.BackendRegistry.register_backend(
        "queue3", "rhapsody_legacy_example.backend.QueueExecutionBackend"
    )
    rhapsody.BackendRegistry.register_backend("queue4", "rhapsody_legacy_example.nope.Missing")
    try:
        assert rhapsody.BackendRegistry.get_backend_class("queue3") is QueueExecutionBackend
        found = rhapsody.discover_backends()
        assert found["queue2"] and found["queue3"] and not found["queue4"]
        with pytest.raises(ImportError, match="rhapsody_legacy_example.nope"):
            rhapsody.get_backend("queue4")
        backend = await rhapsody.get_backend("queue2", name="queue2")
        async with Session(backends=[backend]) as session:
            task = ComputeTask(function=triple, args=(2,))
            await session.submit_tasks([task])
            assert (await task).return_value == 6
    finally:
        host = rhapsody.plugins.get_plugin_host()
        host.unregister("BackendRegistry")


class Incomparable:
    """A result no comparison can be made with (an array, say)."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of this result is ambiguous")

    __hash__ = object.__hash__


async def test_a_legacy_report_whose_results_cannot_be_taken_fails_that_task_only():
    from rhapsody_legacy_example.sloppy import SloppyExecutionBackend

    class OddResults(SloppyExecutionBackend):
        async def submit_tasks(self, tasks):
            for task in tasks:
                if task["arguments"] == ["odd"]:
                    task["exit_code"] = Incomparable()
                self._callback_func(task, "RUNNING")
                self._callback_func(task, "DONE")

    async with Session(backends=[OddResults(name="odd")]) as session:
        odd = ComputeTask(executable="/bin/true", arguments=["odd"])
        fine = ComputeTask(executable="/bin/true")
        await session.submit_tasks([odd, fine])
        await session.wait_tasks([odd, fine], timeout=10)
    assert fine.state is TaskState.DONE
    assert odd.state is TaskState.FAILED
    assert "results that could not be taken" in str(odd.exception)
