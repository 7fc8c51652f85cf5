"""Where a ``DaskExecutionBackend`` runs, from its constructor's arguments: checked (each error
names the argument, what was expected and what was given) before anything connects."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
from distributed import Client

from rhapsody.api import BackendConfigurationError
from rhapsody.api.validators import integer, real

_CLS = "DaskExecutionBackend"


@attrs.frozen
class DaskTarget:
    """At most one of cluster, client and address (none: the backend starts a LocalCluster
    with ``cluster_kwargs``)."""

    cluster: Any
    client: Client | None
    address: str | None
    cluster_kwargs: Mapping[str, Any]
    connect_timeout: float


def where_to_run(
    *,
    cluster: Any,
    client: Client | None,
    address: str | None,
    resources: dict[str, Any] | None,
    n_workers: int | None,
    threads_per_worker: int | None,
    memory_limit: str | float | None,
    connect_timeout: float,
) -> DaskTarget:
    """The backend's target; raises ``BackendConfigurationError`` for a bad argument."""
    if isinstance(cluster, str):
        if address is not None:
            raise BackendConfigurationError(
                _CLS, "address", "no address= when cluster= is an address", address
            )
        cluster, address = None, cluster
    if address is not None and (type(address) is not str or not address):
        raise BackendConfigurationError(
            _CLS, "address", "a scheduler address string ('tcp://host:8786')", address
        )
    seconds = real(connect_timeout)
    if seconds is None or not 0 < seconds < math.inf:
        raise BackendConfigurationError(
            _CLS, "connect_timeout", "a finite number of seconds > 0", connect_timeout
        )
    given = [
        n
        for n, v in (("cluster", cluster), ("client", client), ("address", address))
        if v is not None
    ]
    if len(given) > 1:
        raise BackendConfigurationError(_CLS, given[1], f"only one of {given}", "both")
    if client is not None and not isinstance(client, Client):
        raise BackendConfigurationError(_CLS, "client", "a distributed.Client", client)
    if cluster is not None and not hasattr(cluster, "scheduler_address"):
        raise BackendConfigurationError(
            _CLS, "cluster", "a Dask cluster object or a scheduler address", cluster
        )
    if resources is not None and not isinstance(resources, dict):
        raise BackendConfigurationError(
            _CLS, "resources", "a dict of LocalCluster options", resources
        )
    for field, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and ((integer(value) or 0) < 1):
            raise BackendConfigurationError(_CLS, field, "an integer >= 1", value)
    n_workers = integer(n_workers)
    threads_per_worker = integer(threads_per_worker)
    if given and (resources or n_workers or threads_per_worker or memory_limit):
        raise BackendConfigurationError(
            _CLS,
            "resources",
            f"no LocalCluster options when {given[0]}= is given",
            resources or {"n_workers": n_workers, "threads_per_worker": threads_per_worker},
        )
    sizing = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "memory_limit": memory_limit,
    }
    cluster_kwargs = {
        # Own clusters listen on loopback only and serve no dashboard unless asked.
        "host": "127.0.0.1",
        "dashboard_address": None,
        "threads_per_worker": 1,
        **(resources or {}),
        **{k: v for k, v in sizing.items() if v is not None},
    }
    return DaskTarget(cluster, client, address, cluster_kwargs, seconds)
