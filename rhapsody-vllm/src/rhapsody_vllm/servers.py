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
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

STOP_GRACE = 10.0  # seconds a server gets to exit after SIGTERM before SIGKILL
# Dragon-started servers carry ``RHAPSODY_DRAGON_OWNER=<this prefix><id>`` in their environment.
VLLM_OWNER_PREFIX = "rhapsody-vllm-"


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
        """SIGTERM, then SIGKILL after ``grace`` seconds; blocks until it is gone."""


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

    def exit_code(self) -> int | None:
        return self._proc.poll()

    def stop(self, grace: float = STOP_GRACE) -> None:
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        # The engine core may outlive the front end: the group goes either way.
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)


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

    def exit_code(self) -> int | None:
        code = self._proc.returncode
        return None if code is None else int(code)

    def stop(self, grace: float = STOP_GRACE) -> None:
        from rhapsody_dragon.killing import kill_owner

        if self.exit_code() is None:
            with contextlib.suppress(Exception):
                self._proc.terminate()
            deadline = time.monotonic() + grace
            while self.exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        kill_owner(self._owner, [self._proc.puid], [self._node], self._local_node, grace=1.0)
