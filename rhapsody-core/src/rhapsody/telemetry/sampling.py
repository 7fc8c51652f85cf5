"""Resource samplers: what a backend's nodes, workers or replicas are using, polled by telemetry.

A backend's plugin provides its samplers through the ``rhapsody_resource_samplers`` hook; each
is polled every ``resource_poll_interval`` seconds and each sample becomes a ``ResourceUpdate``
event. :class:`LocalNodeSampler` (psutil, and GPUs through nvidia-ml-py when it is installed and
finds one) is the concurrent backend's, and any backend running on this node can reuse it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

log = logging.getLogger(__name__)


@attrs.frozen
class ResourceSample:
    """One reading of one node (``gpu_id`` None) or one GPU; see ``ResourceUpdate``."""

    node_id: str
    cpu_percent: float | None = None
    memory_percent: float | None = None
    gpu_percent: float | None = None
    gpu_id: int | None = None
    disk_read_bytes: float | None = None
    disk_write_bytes: float | None = None
    net_sent_bytes: float | None = None
    net_recv_bytes: float | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class ResourceSampler(Protocol):
    """Polled by telemetry; ``sample`` must not block for long (run slow calls in a thread)."""

    async def sample(self) -> Sequence[ResourceSample]: ...

    def close(self) -> None: ...


class LocalNodeSampler:
    """This node: CPU and memory percent, disk and network bytes since the last sample (psutil),
    and each GPU's utilisation (nvidia-ml-py)."""

    def __init__(self, node_id: str | None = None) -> None:
        import psutil

        self._psutil = psutil
        self.node_id = node_id or socket.gethostname()
        psutil.cpu_percent(None)  # the first reading is meaningless: start the interval now
        self._disk = self._disk_counters()
        self._net = self._net_counters()
        self._gpus = GpuReader.open()

    def _disk_counters(self) -> tuple[int, int] | None:
        counters = self._psutil.disk_io_counters()
        return None if counters is None else (counters.read_bytes, counters.write_bytes)

    def _net_counters(self) -> tuple[int, int] | None:
        counters = self._psutil.net_io_counters()
        return None if counters is None else (counters.bytes_sent, counters.bytes_recv)

    async def sample(self) -> Sequence[ResourceSample]:
        psutil = self._psutil
        disk, net = self._disk_counters(), self._net_counters()
        d_read = d_write = n_sent = n_recv = None
        if disk is not None and self._disk is not None:
            d_read, d_write = float(disk[0] - self._disk[0]), float(disk[1] - self._disk[1])
        if net is not None and self._net is not None:
            n_sent, n_recv = float(net[0] - self._net[0]), float(net[1] - self._net[1])
        self._disk, self._net = disk, net
        gpus = self._gpus.read() if self._gpus is not None else []
        samples = [
            ResourceSample(
                node_id=self.node_id,
                cpu_percent=float(psutil.cpu_percent(None)),
                memory_percent=float(psutil.virtual_memory().percent),
                gpu_percent=max((u for _, u, _ in gpus), default=None),
                disk_read_bytes=d_read,
                disk_write_bytes=d_write,
                net_sent_bytes=n_sent,
                net_recv_bytes=n_recv,
            )
        ]
        for index, utilisation, memory in gpus:
            samples.append(
                ResourceSample(
                    node_id=self.node_id,
                    gpu_percent=utilisation,
                    gpu_id=index,
                    attributes={"gpu_memory_percent": memory},
                )
            )
        return samples

    def close(self) -> None:
        if self._gpus is not None:
            self._gpus.close()
            self._gpus = None


class GpuReader:
    """NVIDIA GPUs through NVML (``pip install nvidia-ml-py``); absent when it or a GPU is."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml, self._handles = nvml, handles

    @classmethod
    def open(cls) -> GpuReader | None:
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]  # nvidia-ml-py
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # noqa: BLE001 - no driver, no GPU: no GPU samples
            log.debug("no NVIDIA GPU to sample: %s", exc)
            return None
        return cls(pynvml, handles) if handles else None

    def read(self) -> list[tuple[int, float, float]]:
        """(index, utilisation percent, memory used percent) per GPU."""
        out = []
        for index, handle in enumerate(self._handles):
            try:
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:  # noqa: BLE001
                log.debug("GPU %d could not be read: %s", index, exc)
                continue
            used = 100.0 * memory.used / memory.total if memory.total else 0.0
            out.append((index, float(rates.gpu), used))
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - nothing to do about it at shutdown
            pass
