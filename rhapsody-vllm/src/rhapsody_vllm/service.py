"""A managed service: start N vLLM server replicas, wait for ``/health``, watch them, restart
the ones that die (a bounded number of times) and stop them all at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import aiohttp
import attrs

from rhapsody.api import BackendError
from rhapsody.backends.exit_status import describe_exit

from .config import VllmModelConfig
from .http_client import is_healthy
from .ports import INTERNAL_SPAN, free_port
from .replicas import Replica, ReplicaSet, ReplicaState
from .server_env import replica_env
from .servers import ServerProcess, log_tail

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5  # seconds between liveness checks of running replicas
HEALTH_INTERVAL = 0.5  # seconds between /health probes during start-up
CONFIRM_WITHIN = 10.0  # seconds a broken request waits to see its server exit or answer
# vLLM's ZeroMQ sockets are ``<VLLM_RPC_BASE_PATH>/<uuid4>``; a Unix socket path has 107 bytes.
SOCKET_PATH_MAX = 107 - 1 - 36


@attrs.frozen
class Placement:
    """Where one replica runs: the address it binds, the one clients use, and (under Dragon)
    the policy that places it."""

    bind_host: str
    connect_host: str
    where: str = "local"
    policy: Any = None


# Starts a server (blocking): (argv, env, log path, placement) -> the running process.
Launch = Callable[[list[str], Mapping[str, str], str, Placement], ServerProcess]


class ManagedService:
    def __init__(
        self,
        *,
        config: VllmModelConfig,
        placements: list[Placement],
        launch: Launch,
        replicas: ReplicaSet,
        http: aiohttp.ClientSession,
        api_key: str | None,
        startup_timeout: float,
        max_restarts: int,
        log_dir: str,
    ) -> None:
        self._config, self._placements, self._launch = config, placements, launch
        self._set, self._http, self._api_key = replicas, http, api_key
        self._startup_timeout, self._max_restarts = startup_timeout, max_restarts
        self._log_dir = log_dir
        self._ports: set[int] = set()
        self._socket_dirs: dict[int, str] = {}
        self._confirming: dict[int, tuple[ServerProcess, asyncio.Future[None]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Start every replica side by side; all must become healthy, or none is kept."""
        for i, _ in enumerate(self._placements):
            self._set.add(Replica(index=i, root=""))
        results = await asyncio.gather(
            *(self._start(r) for r in self._set.replicas), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]
        self._spawn(self._watch())

    async def _start(self, replica: Replica) -> None:
        placement = self._placements[replica.index]
        port = free_port(placement.bind_host, self._ports)
        internal = free_port(placement.bind_host, self._ports, INTERNAL_SPAN)
        argv = self._config.server_args(placement.bind_host, port, self._api_key)
        env = replica_env(self._config.env, internal)
        env.setdefault("VLLM_RPC_BASE_PATH", self._socket_dir(replica.index))
        log_path = os.path.join(self._log_dir, f"replica-{replica.index}.{replica.restarts}.log")
        replica.state, replica.root = (
            ReplicaState.STARTING,
            f"http://{placement.connect_host}:{port}",
        )
        launching = asyncio.ensure_future(
            asyncio.to_thread(self._launch, argv, env, log_path, placement)
        )
        try:
            replica.server = await asyncio.shield(launching)
        except asyncio.CancelledError:
            # The process starts anyway: keep hold of it, so that stop() stops it.
            with contextlib.suppress(Exception):
                replica.server = await launching
            raise
        except Exception as exc:
            self._dead(replica, f"could not be started: {exc}")
            raise BackendError(
                f"vLLM replica {replica.index} ({placement.where}) could not be started: {exc}"
            ) from exc
        try:
            await self._wait_healthy(replica, replica.server)
        except BaseException:
            await asyncio.to_thread(replica.server.stop)
            raise
        # Known once the engine is up: what to remove should the server die without cleaning.
        await asyncio.to_thread(replica.server.note_shared_memory)
        replica.state = ReplicaState.HEALTHY
        self._set.changed()

    async def _wait_healthy(self, replica: Replica, server: ServerProcess) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            code = server.exit_code()
            if code is not None:
                why = f"{describe_exit(code)} during start-up"
                self._dead(replica, why)
                raise BackendError(self._failure(replica, server, why))
            if await is_healthy(self._http, replica.root):
                return
            if time.monotonic() > deadline:
                why = f"was not healthy after {self._startup_timeout:g} s (start-up timeout)"
                self._dead(replica, why)
                raise BackendError(self._failure(replica, server, why))
            await asyncio.sleep(HEALTH_INTERVAL)

    def _socket_dir(self, index: int) -> str:
        """Where a replica's vLLM puts its IPC sockets (by default, ``/tmp``, and never removed,
        least of all by a server that was killed): inside the log directory where the socket
        paths fit, else a directory of its own; removed by :meth:`stop`."""
        path = self._socket_dirs.get(index)
        if path is None:
            path = os.path.join(self._log_dir, f"sockets-{index}")
            if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
                os.makedirs(path, exist_ok=True)
            else:
                path = tempfile.mkdtemp(prefix=f"rhapsody-vllm-{index}-")
            self._socket_dirs[index] = path
        return path

    def _failure(self, replica: Replica, server: ServerProcess, why: str) -> str:
        tail = log_tail(server.log_path)
        return (
            f"vLLM server for {self._config.model!r} (replica {replica.index}, {server.where}, "
            f"{replica.root}) {why}; last lines of its log:\n{tail}"
        )

    def _dead(self, replica: Replica, why: str) -> None:
        replica.state, replica.why = ReplicaState.DEAD, why
        self._set.changed()

    # -- while running ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(WATCH_INTERVAL)
            for replica in self._set.replicas:
                if replica.state is ReplicaState.HEALTHY:
                    try:
                        self.check(replica)
                    except Exception:  # looked at again next time: ending the watch would
                        # leave every later death of a replica unseen
                        log.exception("checking vLLM replica %d failed", replica.index)

    async def confirm(self, replica: Replica, within: float = CONFIRM_WITHIN) -> None:
        """A request to ``replica`` broke. Either the server still answers ``/health`` (a stale
        connection, say: retry at once) or it is dying: give it ``within`` seconds to be seen
        exiting and handle the death. A reset connection arrives before the exit status, and a
        killed server with gigabytes mapped takes a while to exit on a busy node: a retry sent
        before its death is seen would go to the dead server again. The requests that broke
        together share one look at the server."""
        server = replica.server
        if server is None:
            return
        looking = self._confirming.get(replica.index)
        if looking is None or looking[0] is not server:
            future = asyncio.ensure_future(self._confirm(replica, server, within))
            looking = self._confirming[replica.index] = (server, future)
            future.add_done_callback(partial(self._confirmed, replica.index))
        await asyncio.shield(looking[1])

    def _confirmed(self, index: int, future: asyncio.Future[None]) -> None:
        if self._confirming.get(index, (None, None))[1] is future:
            del self._confirming[index]

    async def _confirm(self, replica: Replica, server: ServerProcess, within: float) -> None:
        deadline = time.monotonic() + within
        while not self._closing and server.exit_code() is None and time.monotonic() < deadline:
            if await is_healthy(self._http, replica.root, timeout=0.5):
                return
            await asyncio.sleep(0.02)
        self.check(replica)

    def check(self, replica: Replica) -> None:
        """If the server of ``replica`` exited, handle the death (restart it or give it up)."""
        server = replica.server
        code = None if server is None else server.exit_code()
        if code is None or replica.state is not ReplicaState.HEALTHY or self._closing:
            return
        assert server is not None
        log.warning(
            "vLLM replica %d (%s) %s; last lines of its log:\n%s",
            replica.index,
            replica.root,
            describe_exit(code),
            log_tail(server.log_path, 10),
        )
        if replica.restarts < self._max_restarts:
            replica.restarts += 1
            replica.state = ReplicaState.STARTING  # requests wait for it
            self._spawn(self._restart(replica))
        else:
            self._dead(replica, f"{describe_exit(code)} after {replica.restarts} restart(s)")
            # What is left of its tree (an engine outliving its API server), and its shared
            # memory, goes now rather than at shutdown. stop() is idempotent.
            self._spawn(asyncio.to_thread(server.stop, 1.0))
        self._set.changed()

    async def _restart(self, replica: Replica) -> None:
        if replica.server is not None:
            await asyncio.to_thread(replica.server.stop, 1.0)  # what is left of its tree
        try:
            await self._start(replica)
        except Exception as exc:  # noqa: BLE001 - the replica stays DEAD, with the reason
            log.warning("vLLM replica %d could not be restarted: %s", replica.index, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- shutdown ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every replica (and its process tree). Idempotent."""
        self._closing = True
        for task in list(self._background):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._background, return_exceptions=True)
        servers = [r.server for r in self._set.replicas if r.server is not None]
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in servers))
        for replica in self._set.replicas:
            replica.state = ReplicaState.STOPPED
            replica.server = None
        for path in self._socket_dirs.values():
            shutil.rmtree(path, ignore_errors=True)
        self._socket_dirs.clear()
        self._set.changed()
