"""What runs inside Dask workers. Self-contained (no rhapsody import): the module is shipped to
the workers by value, so workers need only Dask itself.

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


# Results up to this size travel back on the event stream instead of through a gather.
INLINE_LIMIT = 16 * 1024


def _announce(topic: str | None, key: str) -> None:
    """Tell the client this task started (it starts the task's timeout from here)."""
    if topic is None:
        return
    try:
        from distributed import get_worker

        get_worker().log_event(topic, ("run", key))
    except Exception:  # noqa: BLE001 - only a notification
        pass


def _deliver(topic: str | None, key: str, result: Any) -> Any:
    """Push a small result to the client with the completion event; return None then.

    The client learns of the completion and gets the result in one message, instead of a
    notification followed by a gather round trip through the scheduler and the worker. A large
    or unpicklable result is returned to Dask as usual.
    """
    if topic is None:
        return result
    try:
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
    function: Any, args: Any, kwargs: Any, capture: bool, topic: str | None, key: str
) -> Any:
    """``(ok, result or exception, traceback text, stdout, stderr)``, or None when the result
    went to the client with the completion event."""
    _announce(topic, key)
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
    _announce(topic, key)
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
            start_new_session=True,
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
        error = f"timed out after {timeout}s and was killed"
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
