"""Code that runs inside the Dragon processes the backend starts.

Dragon imports these functions by name in the new process, so this module stays light: no
import of rhapsody's session machinery, nothing that starts threads at import time.

Messages a process puts on the backend's result queue (all plain tuples):

* ``("ready", wid)``: a pool worker is up;
* ``("res", wid, [(uid, ok, blob, text, out, err), ...], running_uid)``: a pool worker's finished
  calls, and the call it has been running for a while (``None`` if none);
* ``("bad_chunk", wid, uids, text, module)``: a pool worker could not unpickle a chunk
  (``module``: the one it could not import, if that was why);
* ``("proc", uid, rank, ok, blob, text)``: a task process's function returned or raised.

``blob`` is the cloudpickled return value (``ok``) or exception; ``text`` the traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from rhapsody.backends.function_calls import call_function
from rhapsody.backends.process_tree import kill_marked as stop_marked
from rhapsody.backends.process_tree import marked_processes
from rhapsody.backends.remote_errors import dump_exception, format_traceback

from .polling import WORKER_POLL_MAX, Backoff, get_item

# Every process the backend starts carries both in its environment, so that it and whatever it
# starts can be found and killed on its node (Dragon signals only the process it started).
MARK_BACKEND = "RHAPSODY_DRAGON_BACKEND"
MARK_OWNER = "RHAPSODY_DRAGON_OWNER"

# A pool worker tells which call it is in once the call has run this long, and sends results it
# holds once they are this old: a killed worker then fails exactly the call it was running.
TICK = 0.01

Outcome = tuple[bool, bytes, str | None, str | None, str | None]


def call(
    fn: Any,
    args: Any,
    kwargs: Any,
    capture: bool = False,
) -> Outcome:
    """Run one function call: (ok, pickled value or exception, traceback, stdout, stderr)."""
    out = err = None
    sink_out, sink_err = (io.StringIO(), io.StringIO()) if capture else (None, None)
    try:
        with contextlib.ExitStack() as stack:
            if sink_out is not None and sink_err is not None:
                stack.enter_context(contextlib.redirect_stdout(sink_out))
                stack.enter_context(contextlib.redirect_stderr(sink_err))
            value = call_function(fn, args, kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: the task fails, the worker lives
        if sink_out is not None and sink_err is not None:
            out, err = sink_out.getvalue(), sink_err.getvalue()
        return False, dump_exception(exc), format_traceback(exc), out, err
    if sink_out is not None and sink_err is not None:
        out, err = sink_out.getvalue(), sink_err.getvalue()
    try:
        blob = bytes(cloudpickle.dumps(value))
    except Exception as exc:  # noqa: BLE001
        problem = TypeError(f"the return value of type {type(value).__name__} cannot be pickled")
        return False, dump_exception(problem), f"{type(exc).__name__}: {exc}\n", out, err
    return True, blob, None, out, err


class _Outbox:
    """A pool worker's finished calls, sent in batches (one queue message costs ~0.5 ms)."""

    def __init__(self, outq: Any, wid: int) -> None:
        self.outq, self.wid = outq, wid
        self.lock = threading.Lock()
        self.items: list[tuple[Any, ...]] = []
        self.oldest = 0.0
        self.current: str | None = None
        self.since = 0.0
        self.announced: str | None = None

    def start(self, uid: str) -> None:
        with self.lock:
            self.current, self.since = uid, time.monotonic()

    def finish(self, uid: str, outcome: Outcome) -> None:
        with self.lock:
            if not self.items:
                self.oldest = time.monotonic()
            self.items.append((uid, *outcome))
            self.current = None

    def flush(self, running: str | None = None) -> None:
        """Send what is held (caller holds the lock)."""
        items, self.items = self.items, []
        self.outq.put(("res", self.wid, items, running))

    def tick(self) -> None:
        with self.lock:
            now = time.monotonic()
            current = self.current
            announce = (
                current is not None and current != self.announced and now - self.since >= TICK
            )
            if announce:
                self.announced = current
                self.flush(current)
            elif self.items and now - self.oldest >= 2 * TICK:
                self.flush()


def pool_worker(inq: Any, outq_blob: bytes, wid: int) -> None:
    """A function-pool worker: runs chunks of calls from ``inq`` in order until it gets None."""
    outq = cloudpickle.loads(outq_blob)
    outbox = _Outbox(outq, wid)
    stop = threading.Event()

    def flusher() -> None:
        while not stop.wait(TICK):
            outbox.tick()

    def terminate(signum: int, frame: Any) -> None:
        # Asked to stop (a call timed out or was canceled): wait for a send in progress, so that
        # no Dragon queue is left half-written, then go.
        outbox.lock.acquire(timeout=2)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    thread = threading.Thread(target=flusher, name="rhapsody-flusher", daemon=True)
    outq.put(("ready", wid))
    thread.start()
    backoff = Backoff(WORKER_POLL_MAX)
    try:
        while True:
            chunk = get_item(inq, backoff)  # not inq.get(): that spins while the pool is idle
            if chunk is None:
                return
            uids, blob = chunk
            try:
                calls = cloudpickle.loads(blob)
            except BaseException as exc:  # noqa: BLE001 - report, keep serving
                missing = exc.name if isinstance(exc, ImportError) else None
                with outbox.lock:
                    outbox.flush()
                    outq.put(("bad_chunk", wid, uids, traceback.format_exc(), missing))
                continue
            for uid, (fn, args, kwargs, capture) in zip(uids, calls, strict=True):
                outbox.start(uid)
                outbox.finish(uid, call(fn, args, kwargs, capture))
            with outbox.lock:
                if outbox.items:
                    outbox.flush()
    finally:
        stop.set()
        thread.join()


def process_function(outq_blob: bytes, uid: str, rank: int, blob: bytes) -> None:
    """The target of a function task run as its own Dragon process (one rank of a job)."""
    outq = cloudpickle.loads(outq_blob)
    fn, args, kwargs = cloudpickle.loads(blob)
    ok, result, text, _, _ = call(fn, args, kwargs)
    outq.put(("proc", uid, rank, ok, result, text))
    sys.stdout.flush()
    sys.stderr.flush()
    if not ok:
        os._exit(1)  # the traceback travelled with the result; do not print it a second time


def marked_pids(value: str, name: str = MARK_OWNER) -> list[int]:
    """Processes on this node whose environment has ``name=value``."""
    return [p.pid for p in marked_processes(name, value)]


def kill_marked(value: str, name: str = MARK_OWNER, grace: float = 0.0) -> int:
    """Stop every process on this node marked ``name=value``; how many were signalled.

    With ``grace``, SIGTERM first and SIGKILL what is left after ``grace`` seconds: a pool worker
    then leaves Dragon's shared memory consistent (a process killed in the middle of a queue
    operation can leave a lock held that the whole node's runtime then waits on).
    """
    return stop_marked(name, value, grace)
