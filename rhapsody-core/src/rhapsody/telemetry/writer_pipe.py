"""The session's end of the pipe to the checkpoint writer process (:mod:`.writer`).

It starts the process, sends it batches of records from the event loop and waits for it at
close. Frames are a 4-byte big-endian length and a pickled list of records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from .writer import HEADER  # the writer's module is light: no asyncio there

log = logging.getLogger(__name__)


class CheckpointWriter:
    """The parent's side: starts the writer process, sends it batches from the event loop,
    waits for it at close.

    Frames go out from the event loop's own thread, by non-blocking writes to the pipe (what
    the pipe cannot take yet waits in a buffer, written when the loop sees the pipe writable):
    a thread of ours blocked on a full pipe would need the GIL back after every 64 KB, and take
    it from the event loop each time (the writer then got its input at the pace of the GIL's
    switch interval, and the session paid for every hand-over).
    """

    def __init__(
        self,
        path: str,
        session_id: str,
        ids: tuple[int, int, int, str],
        loop: asyncio.AbstractEventLoop,
        role: str = "",
    ) -> None:
        """``role``: ``"--first"`` or ``"--part"`` for one of several writers (see
        :mod:`.checkpoint_file`)."""
        import rhapsody

        package_root = os.path.dirname(os.path.dirname(os.path.abspath(rhapsody.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.path = path
        command = [sys.executable, "-m", "rhapsody.telemetry.writer", path]
        self._proc = subprocess.Popen(
            [*command, role] if role else command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            # Out of the terminal's process group: Ctrl-C stops the session, and the writer
            # finishes the file from what it was sent (end of input, when the session's
            # process exits however it exits).
            start_new_session=True,
        )
        stdin = self._proc.stdin
        assert stdin is not None
        self._fd = stdin.fileno()
        _widen_pipe(self._fd)
        os.set_blocking(self._fd, False)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._pending = bytearray()
        self._watching = False
        self._drained: asyncio.Future[None] | None = None
        self.failed = self._closed = False
        self.send(["H", session_id, ids])

    def send(self, records: list[Any]) -> None:
        """Send a batch of records, flat (see :mod:`.records`); from any thread."""
        if records:
            self.send_frame(pickle.dumps(records, pickle.HIGHEST_PROTOCOL))

    def send_frame(self, frame: bytes) -> None:
        """Send a pickled batch of records (one pickle for several writers); from any thread."""
        if self.failed or self._closed:
            return  # after close the descriptor's number may be another file's
        if threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to send with
                self._loop.call_soon_threadsafe(self.send_frame, frame)
            return
        pending = self._pending
        pending += len(frame).to_bytes(HEADER, "big")
        pending += frame
        if not self._watching:
            self._write()

    def _write(self) -> None:
        pending = self._pending
        try:
            while pending:
                written = os.write(self._fd, pending)
                del pending[:written]
        except BlockingIOError:
            if not self._watching:
                self._loop.add_writer(self._fd, self._write)
                self._watching = True
            return
        except OSError as exc:
            self.failed = True
            pending.clear()
            log.error("the telemetry writer process for %s stopped: %s", self.path, exc)
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def kill(self) -> None:
        """Stop the process now, the file as it is (telemetry that could not start)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self._proc.wait(5)
        stdin = self._proc.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()

    async def close(self, timeout: float) -> bool:
        """Send end-of-input and wait (``timeout`` seconds at most) for the file to be complete.
        False (and the process killed) if it took longer."""
        deadline = time.monotonic() + timeout
        self._closed = True
        complete = True
        if self._pending and not self.failed:
            self._drained = self._loop.create_future()
            try:
                await asyncio.wait_for(self._drained, timeout)
            except TimeoutError:
                # the writer finishes the file with what it got; the caller learns it is short
                complete = False
                log.error(
                    "the telemetry writer for %s did not take all records within %ss",
                    self.path,
                    timeout,
                )
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        stdin = self._proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            code = await asyncio.to_thread(self._proc.wait, max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait)
            log.error("the telemetry writer for %s did not finish within %ss", self.path, timeout)
            return False
        if code != 0:
            log.error("the telemetry writer for %s exited with code %s", self.path, code)
            return False
        return complete and not self.failed


def _widen_pipe(fd: int) -> None:
    """Give the pipe up to 1 MiB (Linux; 64 KiB by default): fewer, larger writes, and room
    for a burst while the writer process formats the last one."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    try:
        with open("/proc/sys/fs/pipe-max-size") as limit:
            size = min(int(limit.read()), 1 << 20)
        fcntl.fcntl(fd, set_size, size)
    except (OSError, ValueError):
        pass  # the default size works, only slower
