"""Resource requests on the real Dragon runtime: each rank a Dragon process placed by a policy
(host, CPUs, GPUs), with the environment every backend gives a placed rank; never more cores or
GPUs in use than the nodes have.

This node has no GPU: the backend is given a GPU inventory (``gpus=[...]``) and the tests check
what the ranks were told. Real GPU placement is checked on a GPU node (see the closing note of
the resources issue).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from rhapsody.api import ComputeTask, ResourceError, Session, TaskState

from ..conftest import peak_use
from . import payloads
from .conftest import dragon_sees_gpus

CPUS = sorted(os.sched_getaffinity(0))
REPORT = (
    "import json, os; print(json.dumps({'rank': os.environ['RANK'], "
    "'cuda': os.environ.get('CUDA_VISIBLE_DEVICES'), 'cpus': sorted(os.sched_getaffinity(0)), "
    "'omp': os.environ['OMP_NUM_THREADS'], 'world': os.environ['WORLD_SIZE']}))"
)


@pytest.fixture
async def placing(tmp_path):
    from rhapsody.backends import DragonExecutionBackendV3

    backend = DragonExecutionBackendV3(num_workers=1, name="dragon", gpus=["0", "1", "2", "3"])
    async with Session(backends=[backend], work_dir=tmp_path) as session:
        yield session


@pytest.mark.skipif(
    dragon_sees_gpus(),
    reason="on a GPU node Dragon places on the real GPUs, not on the inventory this test gives "
    "the backend: there test_on_real_gpus_each_rank_sees_exactly_its_own checks placement",
)
async def test_each_rank_is_placed_and_told_its_rank_and_gpus(placing):
    job = ComputeTask(
        executable=sys.executable,
        arguments=["-c", REPORT],
        ranks=2,
        cores_per_rank=1,
        gpus_per_rank=2,
    )
    function = ComputeTask(function=payloads.placement_report, gpus_per_rank=0.5)
    await placing.submit_tasks([job, function])
    await asyncio.gather(job, function)
    ranks = sorted((json.loads(out) for out in job.return_value), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == ["0", "1"] and {r["world"] for r in ranks} == {"2"}
    assert [r["cuda"] for r in ranks] == ["0,1", "2,3"]  # two GPUs each, never shared
    assert all(len(r["cpus"]) == 1 and r["omp"] == "1" for r in ranks)
    if len(CPUS) > 1:
        assert ranks[0]["cpus"] != ranks[1]["cpus"]  # pinned by the policy's cpu_affinity
    seen = function.return_value
    assert (seen["rank"], seen["world"], len(seen["cuda"].split(","))) == ("0", "1", 1)


async def test_cores_in_use_never_exceed_the_node(placing):
    tasks = [
        ComputeTask(function=payloads.placement_report, args=(0.3,), cores_per_rank=cores)
        for cores in (1, len(CPUS), 1, 1, len(CPUS), 1)
    ]
    await placing.submit_tasks(tasks)
    await placing.wait_tasks(tasks, timeout=120)
    assert all(t.state is TaskState.DONE for t in tasks), [t.exception for t in tasks]
    intervals = [(t.return_value["start"], t.return_value["end"], t.cores_per_rank) for t in tasks]
    assert peak_use(intervals) <= len(CPUS)


async def test_requests_that_cannot_run_or_mix_with_templates_are_refused(placing):
    too_wide = ComputeTask(executable="true", ranks=len(CPUS) + 1)
    too_many_gpus = ComputeTask(executable="true", gpus_per_rank=5)
    mixed = ComputeTask(
        executable="true",
        cores_per_rank=1,
        task_backend_specific_kwargs={"process_template": {}},
    )
    for bad, expected in ((too_wide, "can never run"), (too_many_gpus, "can never run")):
        with pytest.raises(ResourceError, match=expected):
            await placing.submit_tasks([bad])
    with pytest.raises(ResourceError, match="use one of them"):
        await placing.submit_tasks([mixed])


async def test_a_task_waiting_for_cores_can_be_canceled(placing):
    busy = ComputeTask(executable="sleep", arguments=["1"], cores_per_rank=len(CPUS))
    waiting = ComputeTask(executable="true", cores_per_rank=1)
    after = ComputeTask(executable="true", cores_per_rank=1)
    await placing.submit_tasks([busy, waiting, after])
    await asyncio.sleep(0.2)
    assert waiting.state is TaskState.SUBMITTED
    await placing.cancel_tasks([waiting])
    await placing.wait_tasks([busy, waiting, after], timeout=60)
    assert [t.state for t in (busy, waiting, after)] == [
        TaskState.DONE,
        TaskState.CANCELED,
        TaskState.DONE,
    ]


SEE_GPU = (
    "import time; start = time.time(); import torch; n = torch.cuda.device_count(); "
    "print(n, torch.cuda.get_device_properties(0).uuid if n else '-', start, time.time())"
)


async def test_on_real_gpus_each_rank_sees_exactly_its_own(tmp_path):
    import importlib.util

    from rhapsody.backends import DragonExecutionBackendV3

    backend = DragonExecutionBackendV3(num_workers=1, name="dragon")  # the GPUs Dragon finds
    async with Session(backends=[backend], work_dir=tmp_path) as session:
        gpus = sum(len(node.gpus) for node in backend.resource_nodes())
        if not gpus or importlib.util.find_spec("torch") is None:
            pytest.skip("no GPU (and torch) here: real GPU placement is checked on a GPU node")
        job = ComputeTask(
            executable=sys.executable, arguments=["-c", SEE_GPU], ranks=gpus, gpus_per_rank=1
        )
        await session.submit_tasks([job])
        await job
    seen = [line.split() for line in job.stdout.splitlines()]
    assert [count for count, *_ in seen] == ["1"] * gpus  # one GPU visible to each rank
    assert len({uuid for _, uuid, *_ in seen}) == gpus  # never two ranks on one GPU
