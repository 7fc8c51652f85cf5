"""Resource requests on Dragon: the allocation's nodes as the slot scheduler's inventory, and a
placed job's ranks as processes pinned by Dragon policies.

Each node offers its CPUs (``Node.cpus``) and GPUs (``Node.gpus``), unless the backend was given
``cores=``/``gpus=`` (a count or ids, the same on every node: for tests on nodes without GPUs,
where GPUs are then only named in ``CUDA_VISIBLE_DEVICES``). The ranks of one job may spread over
nodes. Each rank runs as a Dragon process with a ``Policy`` naming its host, its CPUs
(``cpu_affinity``) and its GPUs (``gpu_affinity``, real GPUs only), plus the environment every
backend gives a placed rank (:func:`rhapsody.resources.rank_environment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rhapsody.api import ComputeTask
from rhapsody.resources import NodeResources, RankSlot, rank_environment

from .templates import Template, apply_common


def allocation_nodes(
    cores: int | None = None, gpus: Sequence[str] | None = None
) -> list[NodeResources]:
    """Every node of the allocation (needs the Dragon runtime)."""
    from dragon.native.machine import Node, System

    nodes = []
    for h_uid in System().nodes:
        node = Node(h_uid)
        cpus = tuple(node.cpus or range(node.num_cpus or 1))
        if cores is not None:
            cpus = tuple(cpus[i % len(cpus)] for i in range(cores))
        found = tuple(str(g) for g in (node.gpus or ())) if gpus is None else tuple(gpus)
        nodes.append(
            NodeResources(
                name=str(node.hostname),
                cores=cpus,
                gpus=found,
                memory=int(node.physical_mem) if node.physical_mem else None,
            )
        )
    return nodes


def placed_plan(
    task: ComputeTask,
    slots: Sequence[RankSlot],
    nodes: Sequence[NodeResources],
    real_gpus: bool,
) -> list[Template]:
    """One process template per rank of ``task``, placed on ``slots``."""
    from dragon.infrastructure.policy import Policy

    env = task.task_backend_specific_kwargs.get("env")
    plan: list[Template] = []
    for rank, slot in enumerate(slots):
        node = nodes[slot.node]
        policy: Any = Policy(
            placement=Policy.Placement.HOST_NAME,
            host_name=node.name,
            cpu_affinity=sorted(set(slot.cpus)),
            gpu_affinity=[int(g) for g in slot.gpu_ids] if real_gpus else [],
        )
        plan.append(
            {
                "policy": policy,
                "env": rank_environment(env, rank, slot, slots, bool(node.gpus)),
            }
        )
    return apply_common(task, plan)
