"""Inputs the operating system would refuse, and misuse of the API, are clear errors raised
before anything runs (they used to hang in SUBMITTED or raise bare Python errors)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import (
    ComputeTask,
    Session,
    SessionError,
    TaskState,
    TaskValidationError,
)
from rhapsody.backends import ConcurrentExecutionBackend


def add(a: int, b: int = 0) -> int:
    return a + b


@pytest.mark.parametrize(
    "fields",
    [
        {"executable": "/bin/ec\0ho"},
        {"executable": "/bin/echo", "arguments": ["a\0--injected"]},
        {"executable": "/bin/echo", "input_files": ["in\0put"]},
        {"executable": "/bin/echo", "uid": "bad\0uid"},
        {"function": add, "uid": "../../../x"},
        {"function": add, "uid": "/tmp/x"},
        {"function": add, "uid": ".."},
        {"function": add, "uid": "a/b"},
        {"function": add, "uid": "line\nbreak"},
        {"function": add, "uid": "x" * 201},
        {"function": add, "timeout": 10**400},
        {"function": add, "timeout": float("inf")},
    ],
)
def test_refused_at_construction(fields):
    with pytest.raises(TaskValidationError) as info:
        ComputeTask(**fields)
    field = next(k for k in fields if k not in ("executable",) or len(fields) == 1)
    if "uid" in fields:
        field = "uid"
    elif "timeout" in fields:
        field = "timeout"
    assert info.value.field == field
    assert "expected" in str(info.value)


@pytest.mark.parametrize(
    "options, where",
    [
        ({"env": {"A\0B": "1"}}, ".env['A\\x00B']"),
        ({"env": {"A=B": "1"}}, ".env['A=B']"),
        ({"env": {"": "1"}}, ".env['']"),
        ({"env": {"OK": "va\0lue"}}, ".env.OK"),
        ({"cwd": "/tm\0p"}, ".cwd"),
    ],
)
async def test_os_refused_options_fail_the_batch_before_anything_runs(options, where):
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        good = ComputeTask(executable="/bin/true")
        bad = ComputeTask(executable="/bin/true", task_backend_specific_kwargs=options)
        with pytest.raises(TaskValidationError) as info:
            await session.submit_tasks([good, bad])
        assert where in info.value.field
        assert not session.tasks and good.state is TaskState.NEW
        # the good task is untouched and still submittable
        await session.submit_tasks([good])
        await good
        assert good.state is TaskState.DONE


@given(st.text(max_size=6), st.text(max_size=6))
def test_any_argument_with_nul_is_refused(before, after):
    with pytest.raises(TaskValidationError):
        ComputeTask(executable="/bin/echo", arguments=["x", f"{before}\0{after}"])


async def test_submit_tasks_wants_a_list():
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        task = ComputeTask(function=add, args=(1,))
        for wrong in (task, {"function": add}, "task", 5):
            with pytest.raises(TaskValidationError) as info:
                await session.submit_tasks(wrong)  # type: ignore[arg-type]
            assert info.value.field == "tasks"
            assert "a list of tasks" in str(info.value)
        assert not session.tasks


async def test_wait_and_cancel_take_uids_and_reject_junk():
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        task = ComputeTask(function=add, args=(1, 2))
        await session.submit_tasks([task])
        [same] = await session.wait_tasks([task.uid])
        assert same is task and task.return_value == 3
        with pytest.raises(SessionError, match="'nope' was not submitted"):
            await session.wait_tasks(["nope"])
        with pytest.raises(TaskValidationError, match="tasks"):
            await session.wait_tasks(task.uid)  # a bare string, not a list
        with pytest.raises(TaskValidationError):
            await session.cancel_tasks([3.5])  # type: ignore[list-item]


async def test_session_backends_must_be_a_list():
    backend = ConcurrentExecutionBackend()
    with pytest.raises(SessionError, match=r"backends=\[backend\]"):
        Session(backends=backend)  # type: ignore[arg-type]
    await backend.shutdown()


@pytest.mark.parametrize("uid", ["..", ".", "a/b", "/tmp/x", "nul\0", ""])
def test_session_uid_must_be_a_directory_name(uid):
    with pytest.raises(SessionError, match="Session.uid"):
        Session(uid=uid)


async def test_capture_files_never_leave_the_session_dir_nor_overwrite(tmp_path):
    backend = await ConcurrentExecutionBackend()
    session = Session(backends=[backend], uid="run", work_dir=tmp_path)
    async with session:
        precious = os.path.join(session.task_dir, "t1.stdout")
        with open(precious, "w") as f:
            f.write("precious")
        tasks = [
            ComputeTask(uid="t1", executable="/bin/echo", arguments=["new"], capture_stdio=True),
            ComputeTask(uid="t2", function=print, args=("fn",), capture_stdio=True),
        ]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    assert [t.state for t in tasks] == [TaskState.DONE, TaskState.DONE]
    with open(precious) as f:
        assert f.read() == "precious"
    for task in tasks:
        assert os.path.dirname(task.stdout) == session.task_dir
        assert task.stdout != precious
    with open(tasks[0].stdout) as f:
        assert f.read() == "new\n"


@given(st.text(min_size=1, max_size=12))
def test_every_uid_is_refused_or_a_plain_file_name(uid):
    try:
        task = ComputeTask(function=add, uid=uid)
    except TaskValidationError:
        return
    base = "/session/dir"
    path = os.path.normpath(os.path.join(base, task.uid + ".stdout"))
    assert os.path.dirname(path) == base
