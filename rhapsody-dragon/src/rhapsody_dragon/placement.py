"""Discovering the allocation's GPUs and spreading tasks over them with Dragon policies."""

from __future__ import annotations

from typing import Any


def gpu_slots() -> list[tuple[str, int]]:
    """``(hostname, gpu id)`` of every GPU of the allocation, node by node (empty without GPUs).

    Needs the Dragon runtime (a script started with ``dragon``).
    """
    from dragon.native.machine import Node, System

    slots = []
    for h_uid in System().nodes:
        node = Node(h_uid)
        for gpu in node.gpus or ():  # None on a node without GPUs
            slots.append((node.hostname, gpu))
    return slots


def gpu_policies(count: int | None = None) -> list[Any]:
    """One Dragon ``Policy`` per task, pinning each to one GPU, round-robin over all GPUs.

    ``count`` policies (default: one per GPU). Use each as a task's
    ``process_template={"policy": ...}``.
    """
    from dragon.infrastructure.policy import Policy

    slots = gpu_slots()
    if not slots:
        return []
    n = len(slots) if count is None else count
    return [
        Policy(
            placement=Policy.Placement.HOST_NAME,
            host_name=slots[i % len(slots)][0],
            gpu_affinity=[slots[i % len(slots)][1]],
        )
        for i in range(n)
    ]
