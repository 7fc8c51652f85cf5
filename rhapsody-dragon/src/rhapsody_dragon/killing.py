"""Killing what a task started, on whichever node it runs.

Dragon's kill signals only the process it started, and its join then waits for that process's
children too. Every process the backend starts carries marks in its environment (inherited by
whatever it starts), so the whole tree is found on its node (rhapsody-core's psutil-based
``process_tree``): here directly, on another node through a short-lived Dragon process placed
there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from .global_services import exited, kill_process, start_process
from .worker_side import MARK_OWNER, kill_marked

log = logging.getLogger(__name__)


def kill_owner(
    owner: str, puids: Iterable[int], nodes: Iterable[Any], local_node: Any, grace: float = 0.0
) -> None:
    """Stop every process marked with ``owner`` on ``nodes`` (Dragon host ids); see
    :func:`~rhapsody_dragon.worker_side.kill_marked` for ``grace``."""
    kill_marked(owner, MARK_OWNER, grace)
    for node in set(nodes) - {local_node}:
        _kill_on_node(owner, node, grace)
    for puid in puids:  # whatever is left, through Dragon, wherever it runs
        kill_process(puid)


def _kill_on_node(owner: str, node: Any, grace: float) -> None:
    from dragon.infrastructure.policy import Policy
    from dragon.native.process import Process

    try:
        helper = Process(
            target=kill_marked,
            args=(owner, MARK_OWNER, grace),
            policy=Policy(placement=Policy.Placement.HOST_ID, host_id=node),
        )
        puid, _ = start_process(helper)
        deadline = time.monotonic() + 10 + grace  # bounded, and never waiting inside GS_LOCK
        while not exited([puid]) and time.monotonic() < deadline:
            time.sleep(0.05)
    except Exception as exc:  # noqa: BLE001 - best effort: Dragon killed the main process already
        log.warning("could not reach node %s to kill processes of %s: %s", node, owner, exc)
