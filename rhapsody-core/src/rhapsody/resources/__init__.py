"""Backend-agnostic resource requests and the slot scheduling that honours them.

A :class:`~rhapsody.api.ComputeTask` asks for ``ranks``, ``cores_per_rank``, ``gpus_per_rank``
and ``mem_per_rank`` (RADICAL-Pilot's vocabulary); ``task.resources`` is that request as a
:class:`ResourceRequest` (None when the task asked for nothing). A backend describes what its
nodes offer as :class:`NodeResources`; :func:`check_request` refuses a request no node can ever
satisfy, and :class:`SlotScheduler` places ranks on free cores and GPUs, never oversubscribing.
"""

from .environment import rank_environment
from .fit import check_request, ranks_that_fit
from .inventory import NodeResources, discover_gpus, local_node
from .request import ResourceRequest, parse_memory
from .slots import RankSlot, SlotScheduler

__all__ = [
    "NodeResources",
    "RankSlot",
    "ResourceRequest",
    "SlotScheduler",
    "check_request",
    "discover_gpus",
    "local_node",
    "parse_memory",
    "rank_environment",
    "ranks_that_fit",
]
