"""The replicas of a service and the rule that picks one: least outstanding requests among the
healthy ones; with none healthy, wait for one that is starting; with none left, fail."""

from __future__ import annotations

import asyncio
import enum

import attrs

from rhapsody.api import BackendError

from .servers import ServerProcess


class ReplicaState(enum.Enum):
    STARTING = "starting"
    HEALTHY = "healthy"
    DEAD = "dead"  # exited, or could not start; may be restarted
    STOPPED = "stopped"  # shut down on purpose


@attrs.define(eq=False)
class Replica:
    """One OpenAI-compatible server: started by the backend (``server``) or external."""

    index: int
    root: str  # http://host:port (``/health`` lives here, the API under ``/v1``)
    server: ServerProcess | None = None
    state: ReplicaState = ReplicaState.STARTING
    outstanding: int = 0  # requests sent and not answered
    restarts: int = 0
    why: str = ""  # what ended it, for error messages

    @property
    def api(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"{self.root}/v1"


class ReplicaSet:
    """Picks replicas and lets requests wait for one while replicas (re)start."""

    def __init__(self) -> None:
        self.replicas: list[Replica] = []
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, replica: Replica) -> None:
        self.replicas.append(replica)

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is ReplicaState.HEALTHY]

    def pick(self, avoid: Replica | None = None) -> Replica | None:
        """The healthy replica with the fewest outstanding requests, other than ``avoid`` when
        there is another (None if none is healthy)."""
        best: Replica | None = None
        for replica in self.replicas:
            if (
                replica.state is ReplicaState.HEALTHY
                and replica is not avoid
                and (best is None or replica.outstanding < best.outstanding)
            ):
                best = replica
        if best is None and avoid is not None and avoid.state is ReplicaState.HEALTHY:
            return avoid
        return best

    async def acquire(self, avoid: Replica | None = None) -> Replica:
        """A replica to send a request to (preferably not ``avoid``, where one just failed);
        raises :class:`BackendError` when none is left."""
        while True:
            replica = self.pick(avoid)
            if replica is not None:
                return replica
            if not any(r.state is ReplicaState.STARTING for r in self.replicas):
                raise BackendError(self.none_left())
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def changed(self) -> None:
        """A replica changed state: wake every request waiting for one."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def none_left(self) -> str:
        reasons = "; ".join(f"replica {r.index}: {r.why or r.state.value}" for r in self.replicas)
        return f"no vLLM replica is left to answer ({reasons or 'none was started'})"
