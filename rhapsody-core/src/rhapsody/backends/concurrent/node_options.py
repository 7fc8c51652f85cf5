"""The concurrent backend's ``cores=``, ``gpus=``, ``memory=`` and ``backfill=``: checked when the
backend is made, turned into this node's :class:`NodeResources` when first needed."""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from ...api.errors import BackendConfigurationError
from ...api.validators import integer
from ...resources.inventory import NodeResources, local_node
from ...resources.request import parse_memory

_OWNER = "ConcurrentExecutionBackend"


@attrs.define
class NodeOptions:
    cores: int | tuple[int, ...] | None
    gpus: tuple[str, ...] | None
    memory: int | None
    backfill: int | None

    def find(self) -> tuple[NodeResources, int | None]:
        return local_node(self.cores, self.gpus, self.memory), self.backfill


def node_of(cores: object, gpus: object, memory: object, backfill: object) -> NodeOptions:
    """Check the options (a :class:`BackendConfigurationError` names the bad one)."""
    return NodeOptions(_cores(cores), _gpus(gpus), _memory(memory), _backfill(backfill))


def _cores(value: object) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    count = integer(value)
    if count is not None:
        if count < 1:
            raise BackendConfigurationError(
                _OWNER, "cores", "a count >= 1 or a list of CPU ids", value
            )
        return count
    # CPU ids must be ones this process may run on: a rank is pinned to them
    own = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value:
        ids = [integer(c) for c in value]
        if all(c is not None and (c in own or not own) for c in ids):
            return tuple(ids)  # type: ignore[arg-type]
    raise BackendConfigurationError(
        _OWNER, "cores", f"a count >= 1 or a non-empty list of this process's CPU ids {own}", value
    )


def _gpus(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        ids = [str(g) if integer(g) is not None or isinstance(g, str) else None for g in value]
        if all(ids) and len(set(ids)) == len(ids):
            return tuple(ids)  # type: ignore[arg-type]
    raise BackendConfigurationError(
        _OWNER, "gpus", "a list of distinct GPU ids (ints or strings; [] for none)", value
    )


def _memory(value: object) -> int | None:
    if value is None:
        return None
    parsed = parse_memory(value)
    if parsed is None or parsed <= 0:
        raise BackendConfigurationError(
            _OWNER, "memory", "bytes (an int > 0) or a size such as '64GB'", value
        )
    return parsed


def _backfill(value: object) -> int | None:
    if value is None:
        return None
    count = integer(value)
    if count is None or count < 0:
        raise BackendConfigurationError(_OWNER, "backfill", "an integer >= 0", value)
    return count
