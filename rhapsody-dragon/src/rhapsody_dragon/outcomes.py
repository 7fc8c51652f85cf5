"""Writing what came back from Dragon onto a task: result fields, and the error when it failed."""

from __future__ import annotations

from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from rhapsody.api import BackendError, ComputeTask, TaskExecutionError
from rhapsody.api.errors import task_label
from rhapsody.backends.exit_status import describe_exit
from rhapsody.backends.result_fields import set_result
from rhapsody.backends.task_output import store_output

from .function_pool import CallOutcome
from .launcher import JobOutcome


def apply_call(task: ComputeTask, outcome: CallOutcome, task_dir: str | None) -> bool:
    """A pool function's outcome; True when the task succeeded."""
    ok, value, text, out, err = outcome
    store_output(task, out, err, task_dir)
    if ok:
        set_result(task, "return_value", value)
        return True
    task.exception, task.traceback = value, text
    return False


def apply_job(task: ComputeTask, outcome: JobOutcome) -> bool:
    """A task that ran as Dragon processes; True when every process succeeded."""
    n = len(outcome.codes)
    job = "process_templates" in task.task_backend_specific_kwargs or (task.ranks or 1) > 1
    if outcome.error is not None:
        task.exception = BackendError(f"{task_label(task.uid)}: {outcome.error}")
        return False
    if outcome.capture_files is not None:
        task.stdout, task.stderr = outcome.capture_files
    if outcome.is_function:
        if outcome.capture_files is None and any(outcome.stdout + outcome.stderr):
            # output its template piped (PIPE): all ranks', in rank order
            task.stdout, task.stderr = "".join(outcome.stdout), "".join(outcome.stderr)
        return _apply_functions(task, outcome, n, job)
    if outcome.capture_files is None:
        task.stdout, task.stderr = "".join(outcome.stdout), "".join(outcome.stderr)
        task.return_value = list(outcome.stdout) if job else task.stdout
    failed = [(r, c) for r, c in enumerate(outcome.codes) if c != 0]
    if not failed:
        task.exit_code = 0
        return True
    rank, code = failed[0]
    if outcome.first_failed is not None:  # the one that failed, not one stopped because of it
        rank, code = outcome.first_failed, outcome.codes[outcome.first_failed]
    task.exit_code = code
    errs = outcome.stderr[rank] if outcome.capture_files is None else None
    where = f"process {rank} of {n}" if job else "it"
    detail = f"{where} {_how(code)}"
    if job:
        detail += f" (exit codes of the job's processes: {outcome.codes})"
    task.exception = TaskExecutionError(task.uid, errs, code, message=detail)
    return False


def _apply_functions(task: ComputeTask, outcome: JobOutcome, n: int, job: bool) -> bool:
    values: list[Any] = []
    ranks = list(range(n))
    if outcome.first_failed is not None:  # report the process that failed first
        ranks.remove(outcome.first_failed)
        ranks.insert(0, outcome.first_failed)
    for rank in ranks:
        code = outcome.codes[rank]
        result = outcome.results.get(rank)
        if result is None or not result[0]:
            where = f"process {rank} of {n}" if job else "its process"
            if result is None:
                task.exit_code = code
                task.exception = TaskExecutionError(
                    task.uid, None, code, message=f"{where} {_how(code)} without a result"
                )
                return False
            error = _loads(result[1])
            if job:
                task.exception = TaskExecutionError(
                    task.uid,
                    result[2],
                    code,
                    message=f"{where} raised {type(error).__name__}: {error}",
                )
            else:
                task.exception = error
            task.traceback, task.exit_code = result[2], code
            return False
        values.append((rank, _loads(result[1])))
    values = [v for _, v in sorted(values, key=lambda rv: rv[0])]
    task.exit_code = 0
    task.return_value = values if job else values[0]
    return True


def _loads(blob: bytes) -> Any:
    try:
        return cloudpickle.loads(blob)
    except Exception as exc:  # noqa: BLE001
        return RuntimeError(f"could not unpickle what the process sent back: {exc}")


def _how(code: int | None) -> str:
    if code is None:
        return f"{describe_exit(None)} (Dragon lost track of it)"
    return describe_exit(code)
