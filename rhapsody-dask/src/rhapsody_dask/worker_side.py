"""What runs inside Dask workers. It imports nothing of rhapsody, and workers import it by name
(shipping it by value would cost a cloudpickle of the module's functions for every task), so
rhapsody-dask must be installed where the workers run, like any library the tasks use.

Failures are returned, not raised, so that a task's own error is never confused with Dask's
(a dead worker, a lost scheduler), and so that its traceback text travels back as text.
"""

from __future__ import annotations

import asyncio
import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from typing import Any

# Per-thread capture of print() output: sys.stdout/sys.stderr are swapped for a stream that
# writes to this thread's buffer when one is set (threads of a worker run tasks side by side).
_ROUTED = "_rhapsody_routed"


class _Routed:
    def __init__(self, name: str, fallback: Any) -> None:
        self._rhapsody_routed = True
        self.name, self.fallback, self.local = name, fallback, threading.local()

    def _target(self) -> Any:
        return getattr(self.local, "buffer", None) or self.fallback

    def write(self, text: str) -> Any:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.fallback, attr)


def _routed(name: str) -> Any:
    stream = getattr(sys, name)
    if not getattr(stream, _ROUTED, False):
        stream = _Routed(name, stream)
        setattr(sys, name, stream)
    return stream


def _run(function: Any, args: Any, kwargs: Any) -> Any:
    result = function(*args, **kwargs)
    if asyncio.iscoroutine(result):  # async def: run it in a loop owned by this worker thread
        thread = threading.current_thread()
        loop = getattr(thread, "_rhapsody_loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            thread._rhapsody_loop = loop  # type: ignore[attr-defined]
        result = loop.run_until_complete(result)
    return result


# The error of an executable killed at its timeout (the client raises TaskTimeoutError for it).
TIMED_OUT = "timed out"

# Results up to this size travel back on the event stream instead of through a gather.
INLINE_LIMIT = 16 * 1024


# Start notifications cost a message through the scheduler each, which is a tenth of the
# throughput of short tasks: a task announces itself only once it has run for ANNOUNCE_AFTER
# seconds (a per-worker ticker checks), or at once when it has a timeout to start.
ANNOUNCE_AFTER = 0.1


def _started_table(worker: Any) -> dict[str, list[Any]]:
    table = getattr(worker, "_rhapsody_started", None)
    if table is None:
        from tornado.ioloop import PeriodicCallback

        table = worker._rhapsody_started = {}

        def tick() -> None:
            import time

            now = time.monotonic()
            for key, entry in list(table.items()):
                topic, since, announced = entry
                if not announced and now - since >= ANNOUNCE_AFTER:
                    entry[2] = True
                    worker.log_event(topic, ("run", key))

        ticker = PeriodicCallback(tick, ANNOUNCE_AFTER * 1000)
        worker.loop.add_callback(ticker.start)
        worker._rhapsody_ticker = ticker
    return table


def _announce(topic: str | None, key: str, immediately: bool) -> None:
    """Tell the client that this task started (it starts the task's timeout from there)."""
    if topic is None:
        return
    try:
        import time

        from distributed import get_worker

        worker = get_worker()
        if immediately:
            worker.log_event(topic, ("run", key))
        else:
            _started_table(worker)[key] = [topic, time.monotonic(), False]
    except Exception:  # noqa: BLE001 - only a notification
        pass


def _finished(topic: str | None, key: str) -> None:
    if topic is not None:
        try:
            from distributed import get_worker

            getattr(get_worker(), "_rhapsody_started", {}).pop(key, None)
        except Exception:  # noqa: BLE001
            pass


def _deliver(topic: str | None, key: str, result: Any) -> Any:
    """Push a small result to the client with the completion event; return None then.

    The client learns of the completion and gets the result in one message, instead of a
    notification followed by a gather round trip through the scheduler and the worker. A large
    or unpicklable result is returned to Dask as usual.
    """
    _finished(topic, key)
    if topic is None:
        return result
    try:
        try:  # the C pickler first: several times faster than cloudpickle on plain data
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - lambdas, local classes...
            import cloudpickle  # type: ignore[import-untyped]

            payload = cloudpickle.dumps(result)
        if len(payload) > INLINE_LIMIT:
            return result
        from distributed import get_worker

        get_worker().log_event(topic, ("end", key, payload))
    except Exception:  # noqa: BLE001 - fall back to Dask's own result path
        return result
    return None


def run_function(
    function: Any, args: Any, kwargs: Any, capture: bool, timed: bool, topic: str | None, key: str
) -> Any:
    """``(ok, result or exception, traceback text, stdout, stderr)``, or None when the result
    went to the client with the completion event."""
    _announce(topic, key, timed)
    out = err = None
    if capture:
        out_stream, err_stream = _routed("stdout"), _routed("stderr")
        out_stream.local.buffer, err_stream.local.buffer = io.StringIO(), io.StringIO()
    try:
        value = _run(function, args, kwargs)
        ok, text = True, None
    except BaseException as exc:  # noqa: BLE001 - the task's failure is its result
        ok, text, value = False, "".join(traceback.format_exception(exc)), exc
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            value = RuntimeError(f"{type(exc).__qualname__}: {exc}")
    finally:
        if capture:
            out, err = out_stream.local.buffer.getvalue(), err_stream.local.buffer.getvalue()
            out_stream.local.buffer = err_stream.local.buffer = None
    return _deliver(topic, key, (ok, value, text, out, err))


def _processes() -> dict[str, subprocess.Popen[bytes]]:
    # Kept on the worker object so that cancel requests (client.run) can find them.
    from distributed import get_worker

    worker = get_worker()
    table = getattr(worker, "_rhapsody_processes", None)
    if table is None:
        table = worker._rhapsody_processes = {}  # type: ignore[attr-defined]
    return table


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_executable(
    command: Any,
    shell: bool,
    cwd: str | None,
    env: dict[str, str] | None,
    timeout: float | None,
    topic: str | None,
    key: str,
) -> Any:
    """``(exit code, stdout, stderr, error)`` (None when delivered by event); error says why it
    could not start or was killed."""
    _announce(topic, key, timeout is not None)
    if not shell:
        command = command.split("\0")  # see backend._command
    if env is not None:
        env = {**os.environ, **env}
    try:
        process = subprocess.Popen(
            command,
            shell=shell,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
        )
    except OSError as exc:
        return _deliver(topic, key, (None, "", str(exc), f"could not start {command!r}: {exc}"))
    table = _processes()
    table[key] = process
    try:
        out, err = process.communicate(timeout=timeout)
        error = None
    except subprocess.TimeoutExpired:
        _kill(process)
        out, err = process.communicate()
        error = TIMED_OUT
    finally:
        table.pop(key, None)
    result = (
        process.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        error,
    )
    return _deliver(topic, key, result)


def kill_tasks(keys: list[str], dask_worker: Any = None) -> int:
    """Run on every worker through ``client.run``: kill the processes of these task keys."""
    table = getattr(dask_worker, "_rhapsody_processes", {}) if dask_worker is not None else {}
    killed = 0
    for key in keys:
        process = table.get(key)
        if process is not None:
            _kill(process)
            killed += 1
    return killed


def worker_resources(dask_scheduler: Any = None) -> dict[str, dict[str, float]]:
    """Run on the scheduler: the resources each worker offers."""
    return {address: dict(state.resources) for address, state in dask_scheduler.workers.items()}
