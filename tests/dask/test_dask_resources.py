"""Resource requests on a real Dask cluster: cores, GPUs and memory become Dask resources, the
backend's own LocalCluster declares them, and a request no worker can hold is refused before
anything runs."""

from __future__ import annotations

import os
import sys
import time

import pytest

from rhapsody.api import ComputeTask, ResourceError, Session, TaskState
from rhapsody_dask import DaskExecutionBackend

from ..conftest import peak_use


def span(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


async def test_own_cluster_declares_its_cores_and_never_runs_more_at_once(tmp_path):
    backend = DaskExecutionBackend(n_workers=1, threads_per_worker=3)
    async with Session([backend]) as session:
        (node,) = backend.resource_nodes()
        assert len(node.cores) == 3 and node.memory
        tasks = [
            ComputeTask(function=span, args=(0.3,), cores_per_rank=cores)
            for cores in (1, 2, 3, 1, 2, 1, 1, 2)
        ]
        omp = ComputeTask(
            executable=sys.executable,
            arguments=["-c", "import os; print(os.environ['OMP_NUM_THREADS'])"],
            cores_per_rank=2,
        )
        await session.submit_tasks([*tasks, omp])
        await session.wait_tasks([*tasks, omp], timeout=120)
        assert all(t.state is TaskState.DONE for t in tasks)
        intervals = [(*t.return_value, t.cores_per_rank) for t in tasks]
        assert peak_use(intervals) <= 3
        assert omp.stdout.strip() == "2"

        marker = tmp_path / "ran"
        good = ComputeTask(executable="touch", arguments=[str(marker)], cores_per_rank=1)
        refused = [
            ComputeTask(function=span, args=(0,), cores_per_rank=4),  # no worker has 4
            ComputeTask(function=span, args=(0,), gpus_per_rank=1),  # no GPU here
            ComputeTask(function=span, args=(0,), mem_per_rank="100TB"),
        ]
        for bad in refused:
            with pytest.raises(ResourceError) as caught:
                await session.submit_tasks([good, bad])
            assert bad.uid in str(caught.value) and "can never run" in str(caught.value)
        assert not marker.exists()


async def test_multi_rank_jobs_and_mixed_requests_are_refused(local_cluster):
    async with Session([DaskExecutionBackend(cluster=local_cluster)]) as session:
        with pytest.raises(ResourceError, match="ranks=2: the Dask backend runs each task as one"):
            await session.submit_tasks([ComputeTask(executable="true", ranks=2)])
        mixed = ComputeTask(
            function=span,
            args=(0,),
            gpus_per_rank=1,
            task_backend_specific_kwargs={"resources": {"GPU": 1}},
        )
        with pytest.raises(ResourceError, match="use one of them"):
            await session.submit_tasks([mixed])


async def test_a_users_cluster_without_declared_cores_refuses_with_a_hint(process_cluster):
    async with Session([DaskExecutionBackend(address=process_cluster.address)]) as session:
        with pytest.raises(ResourceError) as caught:
            await session.submit_tasks([ComputeTask(function=span, args=(0,), cores_per_rank=1)])
        assert "--resources 'CPU=16" in str(caught.value)


async def test_gpu_requests_use_the_workers_declared_gpus(local_cluster):
    """The fixture's workers declare only GPU=1 each, the common Dask set-up (no real GPU here:
    Dask counts what workers declare)."""
    async with Session([DaskExecutionBackend(cluster=local_cluster)]) as session:
        with pytest.raises(ResourceError, match="gpus_per_rank=2"):
            await session.submit_tasks([ComputeTask(function=os.getpid, gpus_per_rank=2)])
        shares = [ComputeTask(function=span, args=(0.2,), gpus_per_rank=0.5) for _ in range(4)]
        await session.submit_tasks(shares)
        await session.wait_tasks(shares, timeout=60)
    assert all(t.state is TaskState.DONE for t in shares)
