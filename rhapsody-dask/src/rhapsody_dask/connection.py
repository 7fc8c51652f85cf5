"""Getting an asynchronous Dask client on the session's loop, and knowing what we own.

A cluster or client the backend creates is closed on shutdown; one the user passed is left
running. A synchronous client or cluster (running its own loop in a thread) is reached through a
new asynchronous client to the same scheduler, which the backend owns.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import attrs
from distributed import Client, LocalCluster

from rhapsody.api import BackendError


@attrs.define
class DaskConnection:
    client: Client
    owns_client: bool
    cluster: Any = None
    owns_cluster: bool = False

    async def close(self, timeout: float = 10.0) -> None:
        if self.owns_client:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await self.client.close()
        if self.owns_cluster and self.cluster is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await self.cluster.close()


def _in_this_loop(client: Client) -> bool:
    try:
        loop = getattr(client.loop, "asyncio_loop", None)
        return bool(client.asynchronous) and loop is asyncio.get_running_loop()
    except Exception:  # noqa: BLE001 - any doubt: do not share it
        return False


async def _client_for(address: str, security: Any, timeout: float) -> Client:
    try:
        client: Client = await Client(
            address, asynchronous=True, security=security, timeout=timeout
        )
        return client
    except Exception as exc:
        raise BackendError(f"could not connect to the Dask scheduler at {address}: {exc}") from exc


async def connect(
    cluster: Any,
    client: Client | None,
    address: str | None,
    cluster_kwargs: dict[str, Any],
    timeout: float,
) -> DaskConnection:
    """Resolve the backend's arguments into a client usable from the running loop."""
    if client is not None:
        if _in_this_loop(client):
            return DaskConnection(client=client, owns_client=False)
        address = getattr(client.scheduler, "address", None)
        if address is None:
            raise BackendError("the Dask client given as client= is not connected to a scheduler")
        return DaskConnection(
            client=await _client_for(address, client.security, timeout), owns_client=True
        )
    if cluster is not None:
        return DaskConnection(
            client=await _client_for(
                cluster.scheduler_address, getattr(cluster, "security", None), timeout
            ),
            owns_client=True,
            cluster=cluster,
        )
    if address is not None:
        return DaskConnection(client=await _client_for(address, None, timeout), owns_client=True)
    try:
        own = await LocalCluster(asynchronous=True, **cluster_kwargs)
    except Exception as exc:
        raise BackendError(f"could not start a Dask LocalCluster({cluster_kwargs}): {exc}") from exc
    return DaskConnection(
        client=await Client(own, asynchronous=True),
        owns_client=True,
        cluster=own,
        owns_cluster=True,
    )
