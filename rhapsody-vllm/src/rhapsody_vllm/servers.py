"""Server processes: a replica runs as a local process or as a Dragon process with a policy.

Either way its output goes to a log file (whose last lines explain a failed start-up) and
stopping it stops the whole tree vLLM starts (its engine core runs in a child process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

STOP_GRACE = 10.0  # seconds a server gets to exit after SIGTERM before SIGKILL
# Dragon-started servers carry ``RHAPSODY_DRAGON_OWNER=<this prefix><id>`` in their environment.
VLLM_OWNER_PREFIX = "rhapsody-vllm-"


def shared_memory_of(pids: list[int]) -> set[str]:
    """The ``/dev/shm`` files (segments, named semaphores) that ``pids`` have mapped."""
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    path = line.rstrip("\n").split(None, 5)[-1]
                    if path.startswith("/dev/shm/"):
                        found.add(path.removesuffix(" (deleted)"))
        except OSError:
            continue
    return found


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a server started with ``start_new_session``: its
    tree)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry))
    return members


def unlink_all(paths: set[str]) -> None:
    """Remove those of ``paths`` no live process maps any more (the server's tree is gone).

    A server killed with SIGKILL never unlinks its segments: they would stay until reboot.
    Whatever another process still maps (a runtime's own pools, say) is left alone.
    """
    if not paths:
        return
    everyone = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    for path in paths - shared_memory_of(everyone):
        with contextlib.suppress(OSError):
            os.unlink(path)


def log_tail(path: str, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ""


class ServerProcess(Protocol):
    """What the backend needs of a running server, wherever it runs."""

    log_path: str
    where: str

    def exit_code(self) -> int | None:
        """None while running, else the exit status (negative: killed by that signal)."""

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; blocks until it is gone, then removes
        the shared memory it left."""

    def note_shared_memory(self) -> None:
        """Remember the ``/dev/shm`` files the running server uses (to remove them if it dies)."""


class LocalServer:
    """A server started with ``subprocess.Popen`` in its own session (its group is its tree)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: str) -> None:
        self.log_path, self.where = log_path, "local"
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )
        self.pid = self._proc.pid
        self._shm: set[str] = set()

    def note_shared_memory(self) -> None:
        self._shm |= shared_memory_of(session_members(self.pid))

    def exit_code(self) -> int | None:
        return self._proc.poll()

    def stop(self, grace: float = STOP_GRACE) -> None:
        # Segments made since start-up, and those of an engine outliving its killed API server.
        self.note_shared_memory()
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(grace)
        # multiprocessing's resource tracker ignores SIGTERM and unlinks the tree's semaphores
        # and segments once the others are gone: give it that moment before SIGKILL.
        _wait_for(lambda: not session_members(self.pid), deadline + 2.0 - time.monotonic())
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)
        # A SIGKILLed engine still maps its segments while the kernel tears it down: unlinking
        # skips what a live process maps, so wait for the tree to be gone first.
        _wait_for(lambda: not session_members(self.pid), 5.0)
        unlink_all(self._shm)


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class DragonServer:
    """A server started as a ``dragon.native.process.Process`` with a placement ``policy``.

    Dragon signals only the process it started, so every process of the tree carries an
    environment mark and is found by it on its node (see :mod:`rhapsody_dragon.killing`).
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: str,
        policy: Any,
        where: str,
    ) -> None:
        from dragon.native.process import Process

        from rhapsody_dragon.runtime import this_node_huid
        from rhapsody_dragon.worker_side import MARK_OWNER

        self.log_path, self.where = log_path, where
        self._owner = f"{VLLM_OWNER_PREFIX}{uuid.uuid4().hex[:12]}"
        self._local_node = this_node_huid()
        self._proc = Process(
            argv[0],
            list(argv[1:]),
            cwd=os.getcwd(),
            env={**os.environ, **env, MARK_OWNER: self._owner},
            stdout=log_path,
            stderr=Process.STDOUT,
            policy=policy,
        )
        self._proc.start()
        self._node = self._proc._descr.h_uid
        self._shm: set[str] = set()

    def note_shared_memory(self) -> None:
        from rhapsody_dragon.worker_side import MARK_OWNER, marked_pids

        if self._node == self._local_node:  # another node's /dev/shm is not visible here
            self._shm |= shared_memory_of(marked_pids(self._owner, MARK_OWNER))

    def exit_code(self) -> int | None:
        code = self._proc.returncode
        return None if code is None else int(code)

    def stop(self, grace: float = STOP_GRACE) -> None:
        from rhapsody_dragon.killing import kill_owner
        from rhapsody_dragon.worker_side import MARK_OWNER, marked_pids

        self.note_shared_memory()  # see LocalServer.stop
        if self.exit_code() is None:
            with contextlib.suppress(Exception):
                self._proc.terminate()
            deadline = time.monotonic() + grace
            while self.exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        kill_owner(self._owner, [self._proc.puid], [self._node], self._local_node, grace=1.0)
        if self._node == self._local_node:
            _wait_for(lambda: not marked_pids(self._owner, MARK_OWNER), 5.0)
        unlink_all(self._shm)
