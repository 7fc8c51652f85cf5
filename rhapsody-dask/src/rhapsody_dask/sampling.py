"""Telemetry's view of a Dask cluster: each worker, as its scheduler last heard from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rhapsody.telemetry.sampling import ResourceSample

if TYPE_CHECKING:
    from .backend import DaskExecutionBackend


class DaskWorkerSampler:
    """CPU % and memory % (of the worker's limit) per worker, from the scheduler's heartbeat
    metrics (one RPC per poll); tasks executing and ready, threads and host in ``attributes``."""

    def __init__(self, backend: DaskExecutionBackend) -> None:
        self._backend = backend

    async def sample(self) -> Sequence[ResourceSample]:
        scheduler: Any = self._backend.client.scheduler
        identity: dict[str, Any] = await scheduler.identity()
        samples = []
        for address, worker in sorted(identity.get("workers", {}).items()):
            metrics = worker.get("metrics") or {}
            limit, memory = worker.get("memory_limit") or 0, metrics.get("memory")
            samples.append(
                ResourceSample(
                    node_id=str(address),
                    cpu_percent=_float(metrics.get("cpu")),
                    memory_percent=100.0 * memory / limit if limit and memory is not None else None,
                    attributes={
                        "host": worker.get("host"),
                        "nthreads": worker.get("nthreads"),
                        "executing": metrics.get("executing"),
                        "ready": metrics.get("ready"),
                    },
                )
            )
        return samples

    def close(self) -> None:
        pass


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
