"""Starting tasks as Dragon processes: executables waiting together start in one request (a
Dragon group), a process that cannot start fails its own task only, and every group is
destroyed once its processes exited (or at shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from rhapsody.api import ComputeTask, Session, TaskState
from rhapsody_dragon import global_services, launcher

from ..conftest import wait_until

NOWHERE = "/nonexistent-rhapsody-directory"


class GroupSpy:
    """Wraps the real ``start_group``/``destroy_group``: what was asked and what came back."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.results: list[list[Any]] = []
        self.created: list[int] = []
        self.destroyed: list[int] = []

    def start_group(self, templates: list[Any]) -> tuple[int, list[Any]]:
        self.sizes.append(len(templates))
        g_uid, started = global_services.start_group(templates)
        self.created.append(g_uid)
        self.results.append(started)
        return g_uid, started

    def destroy_group(self, g_uid: int) -> None:
        self.destroyed.append(g_uid)
        global_services.destroy_group(g_uid)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[GroupSpy]:
    found = GroupSpy()
    monkeypatch.setattr(launcher, "start_group", found.start_group)
    monkeypatch.setattr(launcher, "destroy_group", found.destroy_group)
    yield found


@contextlib.asynccontextmanager
async def launchers_held(seconds: float = 0.3):
    """Holds the global-services lock while the body submits and for ``seconds`` after: the
    launcher threads take what was queued and wait, so that it starts in few requests."""
    global_services.GS_LOCK.acquire()
    try:
        yield
        await asyncio.sleep(seconds)
    finally:
        global_services.GS_LOCK.release()


async def test_executables_waiting_together_start_in_one_request_and_each_gets_its_own(
    dragon, session, spy
):
    tasks = [ComputeTask(executable="/bin/echo", arguments=[f"task {i}"]) for i in range(24)]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert [t.state for t in tasks] == [TaskState.DONE] * 24
    assert [t.stdout for t in tasks] == [f"task {i}\n" for i in range(24)]
    # at most one request per launcher thread while they waited: some took several
    assert max(spy.sizes) > 1 and sum(spy.sizes) <= 24
    assert all(t.worker and t.worker.startswith("puid ") for t in tasks)
    assert len({t.worker for t in tasks}) == 24
    # every group is destroyed once its processes exited, off the tasks' path
    assert wait_until(lambda: sorted(spy.destroyed) == sorted(spy.created), timeout=15)
    assert not dragon._launcher._groups and not dragon._launcher._group_of


async def test_a_process_that_cannot_start_fails_its_own_task_only(dragon, session, spy):
    good = [ComputeTask(executable="/bin/echo", arguments=[str(i)]) for i in range(10)]
    bad = ComputeTask(
        executable="/bin/true", task_backend_specific_kwargs={"process_template": {"cwd": NOWHERE}}
    )
    tasks = [*good[:5], bad, *good[5:]]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert [t.state for t in good] == [TaskState.DONE] * 10
    assert bad.state is TaskState.FAILED
    assert "Dragon could not start it" in str(bad.exception)
    # it was in a request with the others (all queued while the launchers waited), and
    # Dragon said of it alone that it did not start
    assert [isinstance(r, str) for res in spy.results for r in res].count(True) == 1
    assert wait_until(lambda: sorted(spy.destroyed) == sorted(spy.created), timeout=15)


def test_start_group_reports_each_process_and_what_did_not_start():
    from dragon.globalservices.process import multi_join
    from dragon.native.process import ProcessTemplate

    templates = [
        ProcessTemplate(target="/bin/true", cwd="/tmp"),
        ProcessTemplate(target="/bin/true", cwd=NOWHERE),
        ProcessTemplate(target="/bin/false", cwd="/tmp"),
    ]
    g_uid, started = global_services.start_group(templates)
    try:
        assert isinstance(started[1], str) and started[1]
        first, third = started[0], started[2]
        assert isinstance(first, tuple) and isinstance(third, tuple)
        puids = [first[0], third[0]]
        codes: dict[int, int] = {}

        def both_exited() -> bool:
            found, _ = multi_join(puids, timeout=0)
            codes.update((int(p), c) for p, c in found or ())
            return len(codes) == 2

        assert wait_until(both_exited, timeout=30)
        assert codes == {first[0]: 0, third[0]: 1}
    finally:
        global_services.destroy_group(g_uid)


async def test_a_group_request_that_fails_as_a_whole_starts_each_task_alone(
    dragon, session, monkeypatch
):
    asked = []

    def refuse(templates: list[Any]) -> tuple[int, list[Any]]:
        asked.append(len(templates))
        raise RuntimeError("global services said no")

    monkeypatch.setattr(launcher, "start_group", refuse)
    tasks = [ComputeTask(executable="/bin/echo", arguments=[str(i)]) for i in range(12)]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert asked and max(asked) > 1
    assert [t.stdout for t in tasks] == [f"{i}\n" for i in range(12)]
    assert {t.state for t in tasks} == {TaskState.DONE}


async def test_shutdown_destroys_the_groups_of_processes_still_running(tmp_path, spy):
    from rhapsody.backends import DragonExecutionBackendV3

    backend = await DragonExecutionBackendV3(num_workers=1)
    session = Session(backends=[backend], work_dir=tmp_path)
    await session.start()
    tasks = [ComputeTask(executable="/bin/sleep", arguments=["60"]) for _ in range(6)]
    async with launchers_held():
        await session.submit_tasks(tasks)
    try:
        for _ in range(300):  # the states change on the event loop: wait on it
            if all(t.state is TaskState.RUNNING for t in tasks):
                break
            await asyncio.sleep(0.1)
        assert {t.state for t in tasks} == {TaskState.RUNNING}
        assert spy.created
    finally:
        await asyncio.wait_for(session.close(), 60)
    assert {t.state for t in tasks} == {TaskState.CANCELED}
    assert sorted(spy.destroyed) == sorted(spy.created)
    # the autouse fixture checks that no process of the backend is left


async def test_jobs_of_several_ranks_start_together_and_fail_as_a_whole(dragon, session, spy):
    echo = {"executable": "/bin/sh", "arguments": ["-c", "echo rank"]}
    job = ComputeTask(**echo, task_backend_specific_kwargs={"process_templates": [(3, {})]})
    # its second rank cannot start: the whole job fails, its first rank is stopped
    broken = ComputeTask(
        executable="/bin/sleep",
        arguments=["60"],
        task_backend_specific_kwargs={"process_templates": [(1, {}), (1, {"cwd": NOWHERE})]},
    )
    single = ComputeTask(**echo)
    async with launchers_held():
        await session.submit_tasks([job, broken, single])
    await session.wait_tasks([job, broken, single], timeout=60)
    assert spy.sizes == [6]  # one request: 3 + 2 + 1 processes
    assert job.state is TaskState.DONE and job.return_value == ["rank\n"] * 3
    assert single.state is TaskState.DONE
    assert broken.state is TaskState.FAILED
    assert "Dragon could not start it" in str(broken.exception)
    # its first rank (sleep 60) was killed: the autouse fixture checks no process is left
    assert wait_until(lambda: sorted(spy.destroyed) == sorted(spy.created), timeout=15)


async def test_a_bug_while_starting_fails_the_tasks_instead_of_leaving_them_waiting(
    dragon, session, monkeypatch
):
    def broken(self: Any, jobs: list[Any]) -> None:
        raise RuntimeError("a bug in the launcher")

    monkeypatch.setattr(launcher.ProcessLauncher, "_start_group", broken)
    tasks = [ComputeTask(executable="/bin/true") for _ in range(8)]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert {t.state for t in tasks} == {TaskState.FAILED}
    assert all("a bug in the launcher" in str(t.exception) for t in tasks)
    # the launcher threads live on: a later task starts
    later = ComputeTask(executable="/bin/echo", arguments=["still here"])
    await session.submit_tasks([later])
    await session.wait_tasks([later], timeout=60)
    assert later.stdout == "still here\n"


async def test_functions_with_templates_start_together_and_return_their_values(
    dragon, session, spy
):
    from . import payloads

    singles = [
        ComputeTask(
            function=payloads.add,
            args=(i,),
            kwargs={"b": 100},
            task_backend_specific_kwargs={"process_template": {}},
        )
        for i in range(5)
    ]
    job = ComputeTask(
        function=payloads.square,
        args=(7,),
        task_backend_specific_kwargs={"process_templates": [(3, {})]},
    )
    # a call larger than a group's request may carry is started on its own
    large = ComputeTask(
        function=len,
        args=(b"x" * 300_000,),
        task_backend_specific_kwargs={"process_template": {}},
    )
    tasks = [*singles, job, large]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert [t.return_value for t in singles] == [100, 101, 102, 103, 104]
    assert job.return_value == [49, 49, 49]
    assert large.state is TaskState.DONE and large.return_value == 300_000
    assert spy.sizes == [5 + 3]  # one request, without the large one
    assert wait_until(lambda: sorted(spy.destroyed) == sorted(spy.created), timeout=15)


async def test_processes_with_a_policy_of_their_own_start_alone(dragon, session, spy):
    """A policy global services cannot place, in a group's request, ended the whole Dragon
    runtime (dragonhpc 0.15); started alone, it fails its own task."""
    from dragon.infrastructure.policy import Policy

    nowhere = Policy(placement=Policy.Placement.HOST_NAME, host_name="no-such-node-xyz")
    lost = [
        ComputeTask(
            executable="/bin/true",
            task_backend_specific_kwargs={"process_template": {"policy": nowhere}},
        )
        for _ in range(3)
    ]
    plain = [ComputeTask(executable="/bin/echo", arguments=[str(i)]) for i in range(3)]
    tasks = [lost[0], *plain, *lost[1:]]
    async with launchers_held():
        await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    assert spy.sizes == [3]  # the plain ones, together
    assert [t.stdout for t in plain] == ["0\n", "1\n", "2\n"]
    assert {t.state for t in lost} == {TaskState.FAILED}
    later = ComputeTask(executable="/bin/echo", arguments=["the runtime lives"])
    await session.submit_tasks([later])
    await session.wait_tasks([later], timeout=60)
    assert later.stdout == "the runtime lives\n"
