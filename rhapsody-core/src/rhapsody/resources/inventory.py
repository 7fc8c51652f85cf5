"""What a node offers tasks: :class:`NodeResources`, and how this node's are found."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import attrs

from .request import format_bytes


@attrs.frozen(slots=True)
class NodeResources:
    """The cores, GPUs and memory of one node that a backend may hand to tasks.

    ``cores`` are CPU ids (what a rank's affinity is set to); ``gpus`` are the ids a rank sees
    in ``CUDA_VISIBLE_DEVICES``; ``memory`` is in bytes (None: not accounted).
    """

    name: str
    cores: tuple[int, ...]
    gpus: tuple[str, ...] = ()
    memory: int | None = None

    def describe(self) -> str:
        memory = "" if self.memory is None else f", {format_bytes(self.memory)} of memory"
        return f"{self.name}: {len(self.cores)} cores, {len(self.gpus)} GPUs{memory}"


def discover_gpus() -> tuple[str, ...]:
    """This node's GPUs as ids for ``CUDA_VISIBLE_DEVICES``.

    ``CUDA_VISIBLE_DEVICES`` when it is set (what this process may use), else every GPU
    nvidia-ml-py (``pynvml``) sees, else none.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return tuple(g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1")
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: no GPUs
        return ()
    try:
        return tuple(str(i) for i in range(pynvml.nvmlDeviceGetCount()))
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def local_node(
    cores: int | Sequence[int] | None = None,
    gpus: Sequence[int | str] | None = None,
    memory: int | None = None,
    name: str | None = None,
) -> NodeResources:
    """This node: the cores of this process's CPU affinity set, :func:`discover_gpus` and its
    physical memory, each replaced by the value given.

    ``cores`` is a list of CPU ids, or a count: the first ``count`` CPUs of the affinity set,
    repeated when the count is larger (deliberate oversubscription, for tests and sleep-bound
    work; each slot is pinned to the CPU it stands for).
    """
    own = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not own:
        own = list(range(os.cpu_count() or 1))
    if cores is None:
        chosen = tuple(own)
    elif isinstance(cores, int):
        chosen = tuple(own[i % len(own)] for i in range(cores))
    else:
        chosen = tuple(cores)
    found = discover_gpus() if gpus is None else tuple(str(g) for g in gpus)
    import socket

    return NodeResources(
        name=name or socket.gethostname(),
        cores=chosen,
        gpus=found,
        memory=physical_memory() if memory is None else memory,
    )
