"""Telemetry of a session on a real Dask cluster: events, spans and per-worker samples."""

from __future__ import annotations

import asyncio

import pytest

from rhapsody import ComputeTask, Session
from rhapsody_dask import DaskExecutionBackend

pytestmark = pytest.mark.timeout(180)


def work(x: int) -> int:
    import time

    time.sleep(0.05)
    return x + 1


async def test_dask_workers_are_sampled_and_tasks_traced(local_cluster, tmp_path) -> None:
    backend = await DaskExecutionBackend(cluster=local_cluster)
    session = Session(backends=[backend])
    telemetry = await session.start_telemetry(resource_poll_interval=0.1, checkpoint_path=tmp_path)
    samples = []
    telemetry.subscribe(lambda e: samples.append(e) if e.event_type == "ResourceUpdate" else None)
    tasks = [ComputeTask(function=work, args=(i,)) for i in range(20)]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        await asyncio.sleep(0.3)  # a poll or two more
    workers = set(local_cluster.scheduler_info["workers"])
    assert {e.node_id for e in samples} == workers
    assert all(e.backend == "dask" and 0 <= e.cpu_percent for e in samples)
    assert all(0 < e.memory_percent < 100 for e in samples)
    assert all(e.attributes["host"] == "127.0.0.1" for e in samples)
    assert all(e.attributes["nthreads"] == 1 for e in samples)
    spans = [s for s in telemetry.read_traces() if s.name == "task"]
    assert len(spans) == 20 and {s.attributes["worker"] for s in spans} <= workers
    assert all(s.attributes["run_seconds"] >= 0.05 for s in spans)
    summary = telemetry.summary()
    assert summary["tasks"]["completed"] == 20
    assert {r["node_id"] for r in summary["resources"].values()} == workers
