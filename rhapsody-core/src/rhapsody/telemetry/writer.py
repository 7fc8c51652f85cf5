"""The checkpoint file's writer: a child process that formats records into JSON lines.

Formatting six lines per task costs more than the session spends running a no-op task, so it
happens here, on another core: the session's process only pickles record tuples (one
``pickle.dumps`` per batch) and its event loop writes them to this process's stdin. Frames are a
4-byte big-endian length and a pickled list of records. End of input (the session closed, or
its process died) writes the last metric snapshot and ends. It runs in a session of its own,
out of reach of a Ctrl-C meant for the workflow, so that an interrupted run still gets its file
completed.

Where there are cores to spare, the session starts several (:mod:`.checkpoint_file`), each
given every task of its share and appending to the same file (``O_APPEND``: each write is whole
lines); ``--part`` marks all but the first, which write no metric snapshots, and ``--first`` the
first, which writes them with the session's totals (``K`` records): its own tasks alone are not
the session's, so where it got no totals (the session's process died) it writes none at the end.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import traceback
from typing import IO, Any

HEADER = 4  # bytes of a frame's length (the session's end: .writer_pipe)
_ENTRIES = 256  # entries of lines formatted and written at once (~256 KB)


def _read_frames(stdin: IO[bytes]) -> Any:
    while True:
        head = stdin.read(HEADER)
        if len(head) < HEADER:
            return
        size = int.from_bytes(head, "big")
        payload = stdin.read(size)
        if len(payload) < size:
            return
        yield pickle.loads(payload)


def _after_the_first_line(out_file: IO[str], limit: float = 10.0) -> None:
    """Wait (``limit`` seconds at most) until the first writer wrote something: the session's
    start, the file's first line."""
    deadline = time.monotonic() + limit
    while os.fstat(out_file.fileno()).st_size == 0 and time.monotonic() < deadline:
        time.sleep(0.002)


def main(argv: list[str]) -> int:
    from .lines import CheckpointLines
    from .trace_ids import TraceIds

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, *options = argv
    part, first = "--part" in options, "--first" in options
    waiting = part  # for the first writer's first line
    lines: CheckpointLines | None = None
    failed = False
    with open(path, "a", encoding="utf-8", buffering=1 << 20) as out_file:
        for flat in _read_frames(sys.stdin.buffer):
            if flat and flat[0] == "H":
                lines = CheckpointLines(flat[1], TraceIds(*flat[2]))
                del flat[:3]
            if lines is None or not flat:
                continue
            if waiting:  # the session's start first, as with one writer
                _after_the_first_line(out_file)
                waiting = False
            # a few hundred entries at a time: the lines of a whole frame (up to every task of
            # a session, submitted at once) would be megabytes in memory, fresh pages each time
            # (their page faults cost more than the formatting)
            emit, at = time.time(), 0
            try:
                while at < len(flat):  # (which grows: a large column record is cut in parts)
                    out: list[str] = []
                    at = lines.add_flat(flat, emit, out, at, most=_ENTRIES)
                    out.append("")
                    out_file.write("\n".join(out))
            # a record it cannot format loses the rest of its frame, not the rest of the file;
            # the traceback and the exit code tell the session
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                failed = True
            out_file.flush()  # a frame at a time: the file can be followed with tail -f
        if lines is not None and not part and (lines.totals_given or not first):
            out_file.write(lines.metric_line(time.time()) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
