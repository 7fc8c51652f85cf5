"""``DragonVllmInferenceBackend``: the replicas as Dragon processes placed by policy.

One replica per GPU, or per tensor-parallel group of GPUs, on each node of the allocation (one
per node without GPUs). Without the Dragon runtime (a script not started with ``dragon``) it
starts local processes instead and says so in one log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .backend import LOOPBACK, VllmInferenceBackend, connect_host
from .servers import DragonServer, ServerProcess
from .service import Placement

log = logging.getLogger(__name__)


def dragon_runtime_present() -> bool:
    """True in a process started by Dragon's launcher (with ``dragonhpc`` importable)."""
    if "DRAGON_MY_PUID" not in os.environ:
        return False
    try:
        from dragon.native.process import Process  # noqa: F401

        import rhapsody_dragon  # noqa: F401
    except ImportError:
        return False
    return True


def replica_slots(
    nodes: Sequence[tuple[str, Sequence[int] | None]], tp: int
) -> list[tuple[str, list[int]]]:
    """``(hostname, GPU ids)`` of every replica the nodes can hold: each node's GPUs cut into
    groups of ``tp`` (a remainder smaller than ``tp`` is left idle); a node without GPUs holds
    one CPU replica."""
    slots: list[tuple[str, list[int]]] = []
    for host, gpus in nodes:
        if not gpus:
            slots.append((host, []))
            continue
        for start in range(0, len(gpus) - tp + 1, tp):
            slots.append((host, list(gpus[start : start + tp])))
    return slots


class DragonVllmInferenceBackend(VllmInferenceBackend):
    """:class:`VllmInferenceBackend` whose replicas Dragon places across the allocation.

    ``replicas=None`` (the default) starts one per GPU or tensor-parallel group; a number uses
    the first that many slots, round-robin. With ``host`` left on loopback every replica stays on
    this node (a server on another node would not be reachable through loopback); bind to an
    address of the nodes (``host="0.0.0.0"``) to spread them over the allocation.
    """

    default_name: ClassVar[str] = "dragon_vllm"

    def __init__(self, name: str | None = None, model: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("replicas", None)
        super().__init__(name, model, **kwargs)
        self.uses_dragon = False

    async def _placements(self) -> list[Placement]:
        if not dragon_runtime_present():
            log.warning(
                "%s %r: no Dragon runtime (the script was not started with `dragon`): starting "
                "the vLLM replicas as local processes",
                type(self).__name__,
                self.name,
            )
            return await super()._placements()
        self.uses_dragon = True
        from dragon.infrastructure.policy import Policy
        from dragon.native.machine import Node, System, current

        here = current().hostname
        nodes = [(n.hostname, list(n.gpus or [])) for n in (Node(h) for h in System().nodes)]
        if self._host == LOOPBACK:
            nodes = [n for n in nodes if n[0] == here]
        assert self.config is not None
        slots = replica_slots(nodes, self.config.tensor_parallel_size)
        count = self._replica_count or len(slots)
        placements = []
        for i in range(count):
            host, gpus = slots[i % len(slots)]
            policy = Policy(placement=Policy.Placement.HOST_NAME, host_name=host, gpu_affinity=gpus)
            connect = connect_host(self._host) if host == here else host
            where = f"dragon on {host}" + (f" GPUs {gpus}" if gpus else "")
            placements.append(Placement(self._host, connect, where, policy))
        return placements

    def _launcher(self) -> Any:
        if not self.uses_dragon:
            return super()._launcher()

        def launch(
            argv: list[str], env: Mapping[str, str], log_path: str, placement: Placement
        ) -> ServerProcess:
            return DragonServer(argv, env, log_path, placement.policy, placement.where)

        return launch
