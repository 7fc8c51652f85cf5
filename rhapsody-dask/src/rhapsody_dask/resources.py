"""Resource requests on Dask: cores, GPUs and memory become Dask worker resources.

A task's request becomes ``resources={"CPU": cores_per_rank, "GPU": gpus_per_rank,
"MEMORY": mem_per_rank}`` on its Dask task, so a worker runs it only while it has that much of
each left. The backend's own ``LocalCluster`` declares what each worker has (``CPU``: its
threads, ``GPU``: its share of this node's GPUs, ``MEMORY``: its memory limit); a user's cluster
declares them itself (``dask worker --resources "CPU=16 GPU=4"``). Each worker is a node of
the request check: a request no worker can ever hold is refused before anything runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from rhapsody.resources import NodeResources, ResourceRequest, discover_gpus

log = logging.getLogger(__name__)

CPU, GPU, MEMORY = "CPU", "GPU", "MEMORY"


def declare_own_workers(cluster_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cluster_kwargs`` for the backend's own LocalCluster, with each worker's ``CPU``, ``GPU``
    and ``MEMORY`` declared (unless the caller declared resources itself)."""
    if "resources" in cluster_kwargs:
        return cluster_kwargs
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    threads = int(cluster_kwargs.get("threads_per_worker") or 1)
    workers = int(cluster_kwargs.get("n_workers") or max(1, cores // threads))
    declared: dict[str, float] = {CPU: threads, GPU: len(discover_gpus()) // workers}
    memory = _worker_memory(cluster_kwargs.get("memory_limit", "auto"), threads, cores)
    if memory:
        declared[MEMORY] = memory
    return {**cluster_kwargs, "n_workers": workers, "resources": declared}


def _worker_memory(limit: Any, threads: int, cores: int) -> int | None:
    try:
        from distributed.worker_memory import parse_memory_limit

        return parse_memory_limit(limit, threads, cores, logger=log)
    except Exception:  # noqa: BLE001 - not declared: memory requests then fail the check
        return None


def worker_nodes(offered: Mapping[str, Mapping[str, float]]) -> list[NodeResources]:
    """Each worker's declared resources as a node (its ``CPU`` as cores, ``GPU`` as GPUs)."""
    nodes = []
    for address, resources in sorted(offered.items()):
        memory = resources.get(MEMORY)
        nodes.append(
            NodeResources(
                name=f"Dask worker {address}",
                cores=tuple(range(int(resources.get(CPU, 0)))),
                gpus=tuple(str(g) for g in range(int(resources.get(GPU, 0)))),
                memory=int(memory) if memory is not None else 0,
            )
        )
    return nodes


def dask_resources(task: Any, request: ResourceRequest) -> tuple[tuple[str, float], ...]:
    """The Dask resources of one task with ``request`` (one rank), as a sorted tuple.

    ``CPU`` only when the task gave ``cores_per_rank``: a task asking just for a GPU runs on a
    cluster that declares only GPUs, the common Dask set-up."""
    wanted: dict[str, float] = {}
    if task.cores_per_rank is not None or not (request.gpus_per_rank or request.mem_per_rank):
        wanted[CPU] = request.cores_per_rank
    if request.gpus_per_rank:
        wanted[GPU] = request.gpus_per_rank
    if request.mem_per_rank:
        wanted[MEMORY] = request.mem_per_rank
    return tuple(sorted(wanted.items()))


def executable_env(task: Any) -> Mapping[str, str] | None:
    """The environment added to an executable task's: its ``env`` option, and
    ``OMP_NUM_THREADS`` of its cores when it asked for cores (unless it set it itself)."""
    env: Mapping[str, str] | None = task.task_backend_specific_kwargs.get("env")
    cores = task.cores_per_rank
    if cores is None or (env is not None and "OMP_NUM_THREADS" in env):
        return env
    return {**(env or {}), "OMP_NUM_THREADS": str(cores)}
