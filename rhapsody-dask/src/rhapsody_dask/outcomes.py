"""Writing what a Dask worker sent back onto its task: result fields, where and when it ran, and
the error when it failed."""

from __future__ import annotations

from typing import Any

from rhapsody.api import BackendError, ComputeTask, TaskExecutionError, TaskTimeoutError
from rhapsody.api.errors import task_label
from rhapsody.api.states import TaskState
from rhapsody.backends.exit_status import describe_exit
from rhapsody.backends.result_fields import set_result
from rhapsody.backends.task_output import store_output

from . import worker_side

_DONE, _FAILED = TaskState.DONE, TaskState.FAILED


def apply_outcome(task: ComputeTask, result: Any, task_dir: str | None) -> TaskState:
    """Write ``result`` (what the worker sent, or the error fetching it) onto ``task``; the
    state it ends in. ``task_dir`` is where captured output goes (``capture_stdio``)."""
    if isinstance(result, BaseException):
        task.exception = BackendError(
            f"{task_label(task.uid)}: could not fetch its result: {result}"
        )
        return _FAILED
    if task.function is not None:
        ok, value, text, out, err, ran = result
        _set_ran(task, ran)
        store_output(task, out, err, task_dir)
        if ok:
            set_result(task, "return_value", value)
            return _DONE
        if type(value) is str and value == worker_side.NOT_LOADED:
            task.exception = BackendError(f"{task_label(task.uid)}: {text}")
            return _FAILED
        task.exception, task.traceback = value, text
        return _FAILED
    code, out, err, error, ran = result
    _set_ran(task, ran)
    set_result(task, "exit_code", code)
    store_output(task, out, err, task_dir)
    if task.stdout is not None and not task.capture_stdio:
        task.return_value = task.stdout
    if error == worker_side.TIMED_OUT and task.timeout is not None:
        # the worker killed it at its timeout, a moment before the session's timer
        task.exception = TaskTimeoutError(task.uid, task.timeout)
        return _FAILED
    if error is not None or code != 0:
        reason = error or describe_exit(code)
        # A process that never started has no stderr of its own: the reason is all.
        stderr = err if code is not None else None
        task.exception = TaskExecutionError(task.uid, stderr, code, message=reason)
        return _FAILED
    return _DONE


def _set_ran(task: ComputeTask, ran: tuple[str | None, str | None, float, float]) -> None:
    """Where and when a task ran (host, worker, start, end), as its worker sent them."""
    host, worker, started, ended = ran
    set_result(task, "host", host)
    set_result(task, "worker", worker)
    set_result(task, "started_at", started)
    set_result(task, "ended_at", ended)
