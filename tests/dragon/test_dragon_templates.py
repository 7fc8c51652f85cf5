"""process_template / process_templates: checks before anything runs, jobs, and placement."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import ComputeTask, TaskExecutionError, TaskState, TaskValidationError
from rhapsody_dragon import gpu_policies, gpu_slots
from rhapsody_dragon.templates import TEMPLATE_KEYS, check_options

from . import payloads
from .conftest import dragon_sees_gpus


def options(**kwargs):
    return ComputeTask(executable="/bin/true", task_backend_specific_kwargs=kwargs)


@pytest.mark.parametrize("key", ["target", "args", "kwargs"])
def test_a_template_may_not_set_what_the_task_gives(key):
    with pytest.raises(TaskValidationError, match=key) as info:
        check_options(options(process_template={key: "x"}))
    assert "process_template" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"process_template": {"colour": 1}}, "colour"),
        ({"process_template": {"stdout": 42}}, "stdout"),
        ({"process_template": {"policy": "gpu0"}}, "policy"),
        ({"process_template": {"env": {"A": 1}}}, "env"),
        ({"process_template": "nope"}, "process_template"),
        ({"process_templates": []}, "process_templates"),
        ({"process_templates": [(0, {})]}, ".process_templates[0][0]"),
        ({"process_templates": [(2, {}), (2, {"args": []})]}, ".process_templates[1][1]"),
        ({"process_template": {}, "process_templates": [(1, {})]}, "process_templates"),
        ({"nodes": 2}, "nodes"),
    ],
)
def test_bad_options_name_the_field_expected_and_got(kwargs, named):
    with pytest.raises(TaskValidationError) as info:
        check_options(options(**kwargs))
    assert named in str(info.value)
    assert "expected" in str(info.value)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.none(), max_size=4))
def test_only_process_template_keys_are_accepted(template):
    unknown = set(template) - set(TEMPLATE_KEYS)
    if unknown:
        with pytest.raises(TaskValidationError):
            check_options(options(process_template=template))
    else:
        check_options(options(process_template=template))


async def test_a_bad_template_fails_the_batch_before_anything_runs(session, tmp_path):
    marker = tmp_path / "ran"
    good = ComputeTask(executable="/bin/touch", arguments=[str(marker)])
    bad = ComputeTask(
        function=payloads.square,
        task_backend_specific_kwargs={"process_template": {"target": payloads.square}},
    )
    with pytest.raises(TaskValidationError, match="target"):
        await session.submit_tasks([good, bad])
    await asyncio.sleep(0.5)
    assert not marker.exists()


async def test_single_process_templates_for_executables_and_functions(session):
    exe = ComputeTask(
        executable="/bin/bash",
        arguments=["-c", "echo $HOSTNAME"],
        task_backend_specific_kwargs={"process_template": {}},
    )
    fn = ComputeTask(
        function=payloads.square, args=(6,), task_backend_specific_kwargs={"process_template": {}}
    )
    await session.submit_tasks([exe, fn])
    await asyncio.gather(exe, fn)
    assert exe.exit_code == 0 and exe.stdout.strip() == os.environ.get(
        "HOSTNAME", exe.stdout.strip()
    )
    assert fn.return_value == 36


def test_invalid_stream_values_read_cleanly():
    from dragon.native.process import ProcessTemplate

    with pytest.raises(TaskValidationError) as info:
        check_options(options(process_templates=[(2, {"stdout": ProcessTemplate.STDOUT})]))
    assert str(info.value).endswith(
        "task_backend_specific_kwargs.process_templates[0][1].stdout: expected None, a file path, "
        "or ProcessTemplate.PIPE, DEVNULL, got ProcessTemplate.STDOUT"
    )
    with pytest.raises(TaskValidationError, match="got 7$"):
        check_options(options(process_template={"stdin": 7}))


async def test_the_guides_pipe_stdout_and_none_values_are_accepted(session):
    # rhapsody-py's guide documents stdin PIPE/None, stdout PIPE/STDOUT/None, stderr likewise.
    from dragon.native.process import ProcessTemplate as PT

    piped = {"stdin": PT.PIPE, "stdout": PT.PIPE, "stderr": PT.PIPE}
    exe_job = ComputeTask(
        executable="/bin/sh",
        arguments=["-c", "echo out; echo err >&2"],
        task_backend_specific_kwargs={"process_templates": [(2, piped), (1, {"stdout": None})]},
    )
    merged = ComputeTask(
        executable="/bin/sh",
        arguments=["-c", "echo out; echo err >&2"],
        task_backend_specific_kwargs={
            "process_template": {"stdout": PT.PIPE, "stderr": PT.STDOUT, "stdin": None}
        },
    )
    fn = ComputeTask(
        function=payloads.shout,
        args=("hello",),
        task_backend_specific_kwargs={"process_templates": [(2, {"stdout": PT.PIPE})]},
    )
    await session.submit_tasks([exe_job, merged, fn])
    await asyncio.gather(exe_job, merged, fn)
    assert exe_job.return_value == ["out\n"] * 3  # every rank's output, per rank
    assert exe_job.stdout == "out\n" * 3 and exe_job.stderr == "err\n" * 3
    assert sorted(merged.stdout.split()) == ["err", "out"] and merged.stderr == ""
    assert fn.return_value == ["hello", "hello"] and fn.stdout == "shout hello\n" * 2


async def test_jobs_return_per_process_results(session):
    fn = ComputeTask(
        function=payloads.rank_info,
        args=("job",),
        task_backend_specific_kwargs={"process_templates": [(2, {}), (2, {})]},
    )
    exe = ComputeTask(
        executable="/bin/sh",
        arguments=["-c", "echo one"],
        task_backend_specific_kwargs={"process_templates": [(2, {}), (1, {"env": {"X": "1"}})]},
    )
    await session.submit_tasks([fn, exe])
    await asyncio.gather(fn, exe)
    assert [tag for tag, _ in fn.return_value] == ["job"] * 4
    assert len({pid for _, pid in fn.return_value}) == 4  # four processes
    assert exe.return_value == ["one\n"] * 3 and exe.stdout == "one\n" * 3


async def test_a_job_fails_when_one_process_fails_and_the_rest_are_stopped(session):
    exe = ComputeTask(
        executable="/bin/sh",
        arguments=["-c", 'if [ -n "$FAIL" ]; then echo broken >&2; exit 5; fi; sleep 60'],
        task_backend_specific_kwargs={"process_templates": [(2, {}), (1, {"env": {"FAIL": "1"}})]},
    )
    fn = ComputeTask(
        function=payloads.boom,
        task_backend_specific_kwargs={"process_templates": [(2, {})]},
    )
    await session.submit_tasks([exe, fn])
    await session.wait_tasks([exe, fn], timeout=30)
    assert exe.state is TaskState.FAILED and exe.exit_code == 5
    assert isinstance(exe.exception, TaskExecutionError)
    assert "process 2 of 3" in str(exe.exception) and "broken" in str(exe.exception)
    assert fn.state is TaskState.FAILED and "ValueError" in str(fn.exception)
    assert "bad input" in fn.exception.stderr  # the traceback of the failing process


async def test_a_template_function_that_raises_keeps_its_exception(session):
    task = ComputeTask(
        function=payloads.boom,
        args=("oops",),
        task_backend_specific_kwargs={"process_template": {}},
    )
    await session.submit_tasks([task])
    await session.wait_tasks([task])
    assert isinstance(task.exception, ValueError) and "oops" in task.traceback


async def test_host_placement_is_honoured():
    from dragon.infrastructure.policy import Policy
    from dragon.native.machine import Node, System

    node = Node(System().nodes[0])
    here = Policy(placement=Policy.Placement.HOST_NAME, host_name=node.hostname)
    nowhere = Policy(placement=Policy.Placement.HOST_NAME, host_name="no-such-node-xyz")
    from rhapsody.api import Session
    from rhapsody.backends import DragonExecutionBackendV3

    backend = await DragonExecutionBackendV3(num_workers=1)
    async with Session(backends=[backend]) as session:
        placed = ComputeTask(
            function=payloads.where_am_i,
            task_backend_specific_kwargs={"process_template": {"policy": here}},
        )
        job = ComputeTask(
            function=payloads.where_am_i,
            task_backend_specific_kwargs={"process_templates": [(2, {"policy": here})]},
        )
        lost = ComputeTask(
            executable="/bin/true",
            task_backend_specific_kwargs={"process_template": {"policy": nowhere}},
        )
        await session.submit_tasks([placed, job, lost])
        await session.wait_tasks([placed, job, lost], timeout=60)
    assert placed.return_value[1] == node.h_uid
    assert [h for _, h, _ in job.return_value] == [node.h_uid] * 2
    # a policy naming a host that does not exist is not silently ignored
    assert lost.state is TaskState.FAILED, lost.stdout


def test_gpu_discovery_matches_dragon():
    from dragon.native.machine import Node, System

    expected = [(Node(h).hostname, g) for h in System().nodes for g in (Node(h).gpus or ())]
    assert gpu_slots() == expected
    assert len(gpu_policies()) == len(expected)


needs_gpus = pytest.mark.skipif(
    not dragon_sees_gpus(),
    reason="this machine has no GPUs (Node.gpus is None): GPU affinity is checked where GPUs exist",
)


@needs_gpus
async def test_gpu_affinity_sets_cuda_visible_devices(session):
    policies = gpu_policies()
    tasks = [
        ComputeTask(
            function=payloads.where_am_i,
            task_backend_specific_kwargs={"process_template": {"policy": p}},
        )
        for p in policies
    ]
    await session.submit_tasks(tasks)
    await asyncio.gather(*tasks)
    for policy, task in zip(policies, tasks, strict=True):
        assert task.return_value[2] == ",".join(map(str, policy.gpu_affinity))


@needs_gpus
async def test_gpu_affinity_holds_for_executables_started_together(session):
    """Executables submitted together each keep the policy of their own template (those with
    a policy start one by one: see ``fits_in_group``)."""
    policies = gpu_policies()
    tasks = [
        ComputeTask(
            executable="/bin/sh",
            arguments=["-c", "echo $CUDA_VISIBLE_DEVICES"],
            task_backend_specific_kwargs={"process_template": {"policy": p}},
        )
        for p in policies
        for _ in range(3)
    ]
    await session.submit_tasks(tasks)
    await asyncio.gather(*tasks)
    expected = [",".join(map(str, p.gpu_affinity)) for p in policies for _ in range(3)]
    assert [t.stdout.strip() for t in tasks] == expected


def test_rhapsody_py_names_of_the_dragon_backend():
    import rhapsody
    from rhapsody.backends import DragonExecutionBackend
    from rhapsody.backends.execution.dragon import DragonExecutionBackend as by_path
    from rhapsody_dragon import DragonExecutionBackendV3

    assert DragonExecutionBackend is by_path is DragonExecutionBackendV3
    assert rhapsody.BackendRegistry.get_backend_class("dragon_v3") is DragonExecutionBackendV3
    backend = rhapsody.get_backend("dragon_v3", name="old-name")
    assert isinstance(backend, DragonExecutionBackendV3) and backend.name == "old-name"
    assert rhapsody.discover_backends()["dragon"].note() is None  # under the launcher: ready
