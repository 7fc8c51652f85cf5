"""Telemetry's view of a Dragon allocation: each node's CPU and memory, sampled on the node.

One small Dragon process per node (placed by host name) reads psutil every second and puts the
reading on a Dragon queue; the head takes the latest of each node whenever telemetry polls.
They start with the first poll and are killed when telemetry stops.
"""

from __future__ import annotations

import contextlib
import logging
import queue as stdlib_queue
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rhapsody.telemetry.sampling import ResourceSample

from .global_services import GS_LOCK, destroy_queue, kill_process, new_queue, start_process
from .worker_side import MARK_OWNER

if TYPE_CHECKING:
    from .backend import DragonExecutionBackendV3

log = logging.getLogger(__name__)

EVERY = 1.0  # seconds between readings on a node


def node_reader(readings: Any, host: str, every: float = EVERY) -> None:
    """Runs on node ``host``: put ``(host, cpu %, memory %, time)`` on ``readings`` every
    ``every`` seconds."""
    import psutil

    psutil.cpu_percent(None)
    while True:
        time.sleep(every)
        reading = (host, psutil.cpu_percent(None), psutil.virtual_memory().percent, time.time())
        with contextlib.suppress(Exception):  # full: the head is behind, this one is dropped
            readings.put(reading, timeout=every)


class DragonNodeSampler:
    """CPU % and memory % of each node of the allocation, as ``node_id`` = its host name."""

    def __init__(self, backend: DragonExecutionBackendV3) -> None:
        self._backend = backend
        self._readings: Any = None
        self._puids: list[int] = []
        self._latest: dict[str, tuple[float, float]] = {}
        self._closed = False
        # the readers carry this mark in their environment (so tests can see them gone)
        self.owner = f"rhapsody-telemetry-{uuid.uuid4().hex[:12]}"

    def _start(self) -> None:
        from dragon.infrastructure.policy import Policy
        from dragon.native.process import Process

        from .runtime import node_hostnames

        hosts = node_hostnames()
        self._readings = new_queue(4 * len(hosts) + 4)
        for host in hosts:
            policy = Policy(placement=Policy.Placement.HOST_NAME, host_name=host)
            process = Process(
                node_reader, (self._readings, host), policy=policy, env={MARK_OWNER: self.owner}
            )
            puid, _ = start_process(process)
            self._puids.append(puid)

    async def sample(self) -> Sequence[ResourceSample]:
        import asyncio

        if self._closed:
            return []
        if self._readings is None:
            await asyncio.to_thread(self._start)
        await asyncio.to_thread(self._drain)
        return [
            ResourceSample(node_id=host, cpu_percent=cpu, memory_percent=memory)
            for host, (cpu, memory) in sorted(self._latest.items())
        ]

    def _drain(self) -> None:
        while True:
            try:
                with GS_LOCK:
                    host, cpu, memory, _ = self._readings.get(timeout=0)
            except (stdlib_queue.Empty, TimeoutError):
                return
            except Exception as exc:  # noqa: BLE001 - a broken queue ends the samples
                log.debug("Dragon node readings: %s", exc)
                return
            self._latest[host] = (float(cpu), float(memory))

    def close(self) -> None:
        self._closed = True
        for puid in self._puids:
            kill_process(puid)
        self._puids.clear()
        if self._readings is not None:
            destroy_queue(self._readings)
            self._readings = None
