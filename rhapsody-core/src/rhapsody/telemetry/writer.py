"""The checkpoint file's writer: a child process that formats records into JSON lines.

Formatting six lines per task costs more than the session spends running a no-op task, so it
happens here, on another core: the session's process only pickles record tuples (one
``pickle.dumps`` per batch) and a thread of it writes them to this process's stdin. Frames are a
4-byte big-endian length and a pickled list of records. End of input (the session closed, or
its process died) writes the last metric snapshot and ends. It runs in a session of its own,
out of reach of a Ctrl-C meant for the workflow, so that an interrupted run still gets its file
completed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

log = logging.getLogger(__name__)

_HEADER = 4
_CHUNK = 512  # items of a frame formatted and written at once (~64 records, ~100 KB)


class CheckpointWriter:
    """The parent's side: starts the writer process, sends it batches, waits for it at close."""

    def __init__(self, path: str, session_id: str, ids: tuple[int, int, int, str]) -> None:
        import rhapsody

        package_root = os.path.dirname(os.path.dirname(os.path.abspath(rhapsody.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.path = path
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "rhapsody.telemetry.writer", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
            # Out of the terminal's process group: Ctrl-C stops the session, and the writer
            # finishes the file from what it was sent (end of input, when the session's
            # process exits however it exits).
            start_new_session=True,
        )
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.failed = False
        self._thread = threading.Thread(
            target=self._pump, name="rhapsody-telemetry-writer", daemon=True
        )
        self._thread.start()
        self.send(["H", session_id, ids])

    def send(self, records: list[Any]) -> None:
        """Queue a batch of records, flat (see :mod:`.records`)."""
        if records:
            self._queue.put(pickle.dumps(records, pickle.HIGHEST_PROTOCOL))

    def _pump(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while True:
                frame = self._queue.get()
                if frame is None:
                    break
                stdin.write(len(frame).to_bytes(_HEADER, "big"))
                stdin.write(frame)
                if self._queue.empty():
                    stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.failed = True
            log.error("the telemetry writer process for %s stopped: %s", self.path, exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def close(self, timeout: float) -> bool:
        """Send end-of-input and wait (``timeout`` seconds at most) for the file to be complete;
        blocking: run it in a thread. False (and the process killed) if it took longer."""
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        try:
            code = self._proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            log.error("the telemetry writer for %s did not finish within %ss", self.path, timeout)
            return False
        if code != 0:
            log.error("the telemetry writer for %s exited with code %s", self.path, code)
            return False
        return not self.failed


def _read_frames(stdin: IO[bytes]) -> Any:
    while True:
        head = stdin.read(_HEADER)
        if len(head) < _HEADER:
            return
        size = int.from_bytes(head, "big")
        payload = stdin.read(size)
        if len(payload) < size:
            return
        yield pickle.loads(payload)


def main(argv: list[str]) -> int:
    from .lines import CheckpointLines
    from .trace_ids import TraceIds

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    (path,) = argv
    lines: CheckpointLines | None = None
    with open(path, "a", encoding="utf-8", buffering=1 << 20) as out_file:
        for flat in _read_frames(sys.stdin.buffer):
            if flat and flat[0] == "H":
                lines = CheckpointLines(flat[1], TraceIds(*flat[2]))
                del flat[:3]
            if lines is None or not flat:
                continue
            # a few dozen records at a time: the lines of a whole frame (up to every task of
            # a session, submitted at once) would be megabytes in memory, fresh pages each time
            # (their page faults cost more than the formatting)
            emit, at, end = time.time(), 0, len(flat)
            while at < end:
                out: list[str] = []
                at = lines.add_flat(flat, emit, out, at, at + _CHUNK)
                out.append("")
                out_file.write("\n".join(out))
            out_file.flush()  # a frame at a time: the file can be followed with tail -f
        if lines is not None:
            out_file.write(lines.metric_line(time.time()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
