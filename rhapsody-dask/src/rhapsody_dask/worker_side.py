"""What runs inside Dask workers. Workers import it by name (shipping it by value would cost a
cloudpickle of the module's functions for every task), so rhapsody-dask must be installed where
the workers run, like any library the tasks use. It uses rhapsody-core's shared worker-side
pieces (function calls, remote exceptions, local processes), none of the session machinery.

Failures are returned, not raised, so that a task's own error is never confused with Dask's
(a dead worker, a lost scheduler), and so that its traceback text travels back as text.
"""

from __future__ import annotations

import atexit
import io
import pickle
import subprocess
import sys
import threading
import types
from collections import deque
from typing import Any

from rhapsody.api.clock import now
from rhapsody.backends import where
from rhapsody.backends.exit_status import os_error_text
from rhapsody.backends.function_calls import call_function
from rhapsody.backends.local_process import (
    kill,
    output_file,
    read_back,
    start,
    wait,
    wait_for,
)
from rhapsody.backends.remote_errors import portable_exception

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


# The error of an executable killed at its timeout (the client raises TaskTimeoutError for it).
TIMED_OUT = "timed out"

# Results up to this size travel back on the event stream instead of through a gather.
INLINE_LIMIT = 16 * 1024


# Start notifications cost a message through the scheduler each, which is a tenth of the
# throughput of short tasks: a task announces itself only once it has run for ANNOUNCE_AFTER
# seconds (a per-worker ticker checks), or at once when it has a timeout to start.
ANNOUNCE_AFTER = 0.1


class _Outbox:
    """A worker's messages to one client topic, sent as one event per worker-loop turn.

    Every event costs the scheduler (and the client) a message to handle, whatever it holds:
    the messages of the tasks that end while the worker's loop is busy travel together.
    """

    __slots__ = ("_messages", "_scheduled", "_topic", "_worker")

    def __init__(self, worker: Any, topic: str) -> None:
        self._worker, self._topic = worker, topic
        self._messages: deque[tuple[Any, ...]] = deque()
        self._scheduled = False

    def post(self, message: tuple[Any, ...]) -> None:  # any thread of the worker
        self._messages.append(message)
        if not self._scheduled:
            self._scheduled = True
            self._worker.loop.add_callback(self._flush)

    def _flush(self) -> None:  # the worker's loop
        # Cleared before draining: a message posted meanwhile schedules (at worst) one more flush.
        self._scheduled = False
        messages, pop = [], self._messages.popleft
        while True:
            try:
                messages.append(pop())
            except IndexError:
                break
        if messages:
            self._worker.log_event(self._topic, ("batch", messages))


_WORKER_STATE_LOCK = threading.Lock()


def _worker_state(worker: Any, name: str, make: Any) -> Any:
    """``worker.<name>``, made by ``make(worker)`` the first time (under a lock: a worker runs
    tasks in several threads at once)."""
    state = getattr(worker, name, None)
    if state is None:
        with _WORKER_STATE_LOCK:
            state = getattr(worker, name, None)
            if state is None:
                state = make(worker)
                setattr(worker, name, state)
    return state


def _post(topic: str, message: tuple[Any, ...], worker: Any = None) -> None:
    """Send ``message`` to the client that subscribed to ``topic`` (batched, see _Outbox)."""
    if worker is None:
        from distributed import get_worker

        worker = get_worker()
    outboxes: dict[str, _Outbox] = _worker_state(worker, "_rhapsody_outboxes", lambda _: {})
    outbox = outboxes.get(topic)
    if outbox is None:  # dict.setdefault is atomic: two threads get the same outbox
        outbox = outboxes.setdefault(topic, _Outbox(worker, topic))
    outbox.post(message)


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
                    _post(topic, ("run", key), worker)

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
            _post(topic, ("run", key), worker)
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


def _where(started: float) -> tuple[str, str, float, float]:
    """``(host, worker address, started, ended)``: where and when the caller ran, on the Dask
    worker (the client hears of a start only for tasks with a timeout)."""
    ended = now()
    try:
        from distributed import get_worker

        address = str(get_worker().address)
    except Exception:  # noqa: BLE001 - not on a worker (a test calling it directly)
        address = where.process()
    return where.HOST, address, started, ended


def _deliver(topic: str | None, key: str, result: Any) -> Any:
    """Push a small result to the client with the completion message; return None then.

    The client learns of the completion and gets the result in one message, instead of a
    notification followed by a gather round trip through the scheduler and the worker. A large
    or unpicklable result is returned to Dask as usual, and the message says to fetch it.
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
    except Exception:  # noqa: BLE001 - Dask's own serialisation may still manage
        payload = None
    try:
        if payload is None or len(payload) > INLINE_LIMIT:
            _post(topic, ("ready", key))
            return result
        _post(topic, ("end", key, payload))
    except Exception:  # noqa: BLE001 - fall back to Dask's own result path
        return result
    return None


# A function task's result value when its call could not be unpickled (the text says why).
NOT_LOADED = "rhapsody-dask: not loaded"


# Functions unpickled on this worker, by their pickle: tasks of one function share one pickle
# of it (sent once per batch), unpickled once here. Plain functions only: a callable object
# keeps its own state, and each task gets it as it was sent.
_FUNCTIONS: dict[bytes, Any] = {}
_FUNCTIONS_KEPT = 256
_PLAIN_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType)


def run_shipped(
    function_pickle: bytes,
    call_pickle: bytes,
    capture: bool,
    timed: bool,
    topic: str | None,
    key: str,
) -> Any:
    """:func:`run_function` of a task shipped as pickles: its function's, and ``(args, kwargs)``.

    Unpickled here, not by Dask: a function or argument this worker cannot import (a worker
    environment unlike the client's) fails its task with that reason. Left to Dask, the
    worker's connection to the scheduler died on it, and every task sent to that worker waited
    for ever."""
    try:
        function = _FUNCTIONS.get(function_pickle)
        if function is None:
            function = pickle.loads(function_pickle)
            if isinstance(function, _PLAIN_FUNCTIONS):
                if len(_FUNCTIONS) >= _FUNCTIONS_KEPT:
                    _FUNCTIONS.clear()
                _FUNCTIONS[function_pickle] = function
        args, kwargs = pickle.loads(call_pickle)
    except BaseException as exc:  # noqa: BLE001 - the task cannot run here: that is its result
        reason = (
            f"its function or arguments could not be loaded on Dask worker {where.HOST} "
            f"({type(exc).__name__}: {exc}); is what they need installed and importable where "
            "the workers run?"
        )
        return _deliver(topic, key, (False, NOT_LOADED, reason, None, None, _where(now())))
    return run_function(function, args, kwargs or {}, capture, timed, topic, key)


def run_function(
    function: Any, args: Any, kwargs: Any, capture: bool, timed: bool, topic: str | None, key: str
) -> Any:
    """``(ok, result or exception, traceback text, stdout, stderr, where)`` (see
    :func:`_where`), or None when the result went to the client with the completion event."""
    started = now()
    _announce(topic, key, timed)
    out = err = None
    if capture:
        out_stream, err_stream = _routed("stdout"), _routed("stderr")
        out_stream.local.buffer, err_stream.local.buffer = io.StringIO(), io.StringIO()
    try:
        value = call_function(function, args, kwargs)
        ok, text = True, None
    except BaseException as exc:  # noqa: BLE001 - the task's failure is its result
        value, text = portable_exception(exc)
        ok = False
    finally:
        if capture:
            out, err = out_stream.local.buffer.getvalue(), err_stream.local.buffer.getvalue()
            out_stream.local.buffer = err_stream.local.buffer = None
    return _deliver(topic, key, (ok, value, text, out, err, _where(started)))


class _Processes:
    """The executables this worker process runs, by task key and backend token; all of them are
    stopped when the worker closes (a Dask worker plugin) or its interpreter exits."""

    name = "rhapsody-processes"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        self.stopped: set[str] = set()  # tokens of backends that shut down
        atexit.register(self.kill_all)

    def add(self, key: str, token: str, process: subprocess.Popen[bytes]) -> bool:
        with self.lock:
            self.by_key[key] = (token, process)
            return token not in self.stopped

    def remove(self, key: str) -> None:
        with self.lock:
            self.by_key.pop(key, None)

    def kill_keys(self, keys: list[str]) -> int:
        with self.lock:
            found = [self.by_key[k][1] for k in keys if k in self.by_key]
        for process in found:
            kill(process)
        return len(found)

    def kill_token(self, token: str) -> int:
        with self.lock:
            self.stopped.add(token)
            found = [p for t, p in self.by_key.values() if t == token]
        for process in found:
            kill(process)
        return len(found)

    def kill_all(self) -> None:
        with self.lock:
            found = [p for _, p in self.by_key.values()]
        for process in found:
            kill(process)

    # Dask WorkerPlugin protocol: the worker calls teardown when it closes.
    def setup(self, worker: Any) -> None:
        pass

    def teardown(self, worker: Any) -> None:
        self.kill_all()


def _new_process_table(worker: Any) -> _Processes:
    table = _Processes()
    plugins = getattr(worker, "plugins", None)
    if isinstance(plugins, dict):
        plugins.setdefault(_Processes.name, table)
    return table


def _processes(worker: Any = None) -> _Processes:
    if worker is None:
        from distributed import get_worker

        worker = get_worker()
    table: _Processes = _worker_state(worker, "_rhapsody_processes", _new_process_table)
    return table


def run_executable(
    command: Any,
    shell: bool,
    cwd: str | None,
    env: dict[str, str] | None,
    timeout: float | None,
    topic: str | None,
    key: str,
) -> Any:
    """``(exit code, stdout, stderr, error, where)`` (None when delivered by event);
    error says why it could not start or was killed."""
    started = now()
    _announce(topic, key, timeout is not None)
    token = (topic or "").rpartition("-")[2]
    if not shell:
        command = command.split("\0")  # see shipping.command_string
    table = _processes()
    result: tuple[int | None, str, str, str | None, tuple[str, str, float, float]]
    try:
        with output_file() as out, output_file() as err:
            process = start(command, shell=shell, cwd=cwd, env=env, stdout=out, stderr=err)
            if not table.add(key, token, process):  # its backend shut down meanwhile
                kill(process)
            try:
                code = wait_for(process, timeout)
                error: str | None = None
                if code is None:  # its timeout
                    kill(process)
                    code = wait(process)
                    error = TIMED_OUT
            finally:
                table.remove(key)
            result = (code, read_back(out), read_back(err), error, _where(started))
    except Exception as exc:  # noqa: BLE001 - whatever stops it from starting fails the task
        text = os_error_text(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        result = (None, "", text, f"could not start {command!r}: {text}", _where(started))
    return _deliver(topic, key, result)


def kill_tasks(keys: list[str], dask_worker: Any = None) -> int:
    """Run on every worker through ``client.run``: kill the processes of these task keys."""
    if dask_worker is None or getattr(dask_worker, "_rhapsody_processes", None) is None:
        return 0
    return int(_processes(dask_worker).kill_keys(keys))


def kill_backend(token: str, dask_worker: Any = None) -> int:
    """Run on every worker through ``client.run`` at shutdown: kill every process the backend
    ``token`` started there, and any it would start later."""
    if dask_worker is None:
        return 0
    return int(_processes(dask_worker).kill_token(token))


def worker_resources(dask_scheduler: Any = None) -> dict[str, dict[str, float]]:
    """Run on the scheduler: the resources each worker offers."""
    return {address: dict(state.resources) for address, state in dask_scheduler.workers.items()}
