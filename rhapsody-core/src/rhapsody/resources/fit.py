"""Whether a request can ever run on a backend's nodes (checked before anything runs)."""

from __future__ import annotations

from collections.abc import Sequence

from .inventory import NodeResources
from .request import GPU_UNITS, ResourceRequest


def ranks_that_fit(node: NodeResources, request: ResourceRequest) -> int:
    """How many ranks of ``request`` an idle ``node`` holds at once."""
    fit = len(node.cores) // request.cores_per_rank
    units = request.gpu_units
    if units:
        if units < GPU_UNITS:  # shares of one GPU each
            fit = min(fit, len(node.gpus) * (GPU_UNITS // units))
        else:
            fit = min(fit, len(node.gpus) // (units // GPU_UNITS))
    if request.mem_per_rank:
        if node.memory is not None:
            fit = min(fit, node.memory // request.mem_per_rank)
    return fit


def check_request(
    backend: str,
    uid: str,
    request: ResourceRequest,
    nodes: Sequence[NodeResources],
    *,
    spans_nodes: bool,
) -> None:
    """Raise :class:`ResourceError` when ``request`` can never run on ``nodes``.

    ``spans_nodes``: the backend may place the ranks of one job on several nodes; otherwise
    the whole job must fit one node.
    """
    fits = [ranks_that_fit(node, request) for node in nodes]
    enough = sum(fits) if spans_nodes else max(fits, default=0)
    if enough >= request.ranks:
        return
    from ..api.errors import ResourceError, task_label  # rhapsody.api imports this package

    where = "together" if spans_nodes else "on one node"
    offered = "; ".join(node.describe() for node in nodes[:4])
    if len(nodes) > 4:
        offered += f"; and {len(nodes) - 4} more nodes"
    raise ResourceError(
        f"{task_label(uid)} asks for {request.describe()}: backend {backend!r} can never run "
        f"it ({where}, its nodes hold at most {enough} such ranks at once). The backend "
        f"offers {offered or 'no nodes'}."
    )
