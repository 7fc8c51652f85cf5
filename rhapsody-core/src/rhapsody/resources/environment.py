"""What a placed rank finds in its environment, the same on every backend.

``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE`` (the conventions of
torch.distributed and most launchers; LOCAL_* count the job's ranks on the rank's own node),
``OMP_NUM_THREADS`` (its cores, unless the task sets it) and ``CUDA_VISIBLE_DEVICES`` (exactly its
GPUs; empty when it asked for none on a node that has some).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .slots import RankSlot


def rank_environment(
    env: Mapping[str, str] | None,
    rank: int,
    slot: RankSlot,
    slots: Sequence[RankSlot],
    node_has_gpus: bool,
) -> dict[str, str]:
    """``env`` (the task's own) plus what rank ``rank`` of the job placed on ``slots`` gets."""
    added = dict(env or {})
    on_node = [s for s in slots if s.node == slot.node]
    added.update(
        RANK=str(rank),
        LOCAL_RANK=str(on_node.index(slot)),
        WORLD_SIZE=str(len(slots)),
        LOCAL_WORLD_SIZE=str(len(on_node)),
    )
    added.setdefault("OMP_NUM_THREADS", str(len(slot.cpus)))
    if slot.gpu_ids or node_has_gpus:
        added["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpu_ids)
    return added
