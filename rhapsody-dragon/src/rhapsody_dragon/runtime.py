"""The Dragon runtime as the backend sees it: is it there, which nodes, how many cores."""

from __future__ import annotations

import functools
import os
from typing import Any


def runtime_note() -> str | None:
    """What ``rhapsody backends`` says when this process cannot use the Dragon backend."""
    try:
        import dragon  # noqa: F401
    except ImportError as exc:
        return f"dragonhpc does not import: {exc}"
    if "DRAGON_MY_PUID" not in os.environ:
        return "needs the Dragon runtime: run your script with `dragon script.py`"
    return None


def require_runtime(backend: str) -> None:
    """Raise :class:`BackendError` unless this process runs under Dragon's launcher."""
    from rhapsody.api import BackendError  # here: discovery imports this module (runtime_note)

    try:
        import dragon  # noqa: F401
    except ImportError as exc:
        raise BackendError(
            f"backend {backend!r} needs the Dragon runtime: pip install rhapsody-dragon "
            f"(it brings dragonhpc); import failed: {exc}"
        ) from exc
    # Set in every process the launcher starts; without it Dragon calls hang or assert.
    if "DRAGON_MY_PUID" not in os.environ:
        raise BackendError(
            f"backend {backend!r} needs the Dragon runtime, and this process was not started by "
            "Dragon's launcher: run the script as `dragon my_workflow.py` (and pytest as "
            "`dragon $(which pytest) ...`), not with plain `python`"
        )


def node_hostnames() -> list[str]:
    """The hostnames of the allocation's nodes, in Dragon's order."""
    from dragon.native.machine import Node, System

    return [Node(h).hostname for h in System().nodes]


@functools.cache
def hostname_of(huid: Any) -> str:
    """The hostname of Dragon node ``huid`` (asked once per node)."""
    try:
        from dragon.native.machine import Node

        return str(Node(huid).hostname)
    except Exception:  # noqa: BLE001 - only a label: say which node id it was
        return f"node {huid}"


def this_node_huid() -> Any:
    """The Dragon host id of the node this process runs on."""
    from dragon.native.machine import current

    return current().h_uid


def allocation_cores(nodes: int) -> int:
    """Cores the allocation gives this process on its node, times the nodes (not the raw count)."""
    return max(1, len(os.sched_getaffinity(0))) * max(1, nodes)
