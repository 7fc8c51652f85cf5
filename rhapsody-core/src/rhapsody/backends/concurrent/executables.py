"""Running an executable task as a subprocess, from a launcher thread (see
:mod:`rhapsody.backends.local_process` for how the process is started, watched and stopped)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from typing import IO

from ...api.clock import now
from ...api.errors import TaskExecutionError
from ...api.states import TaskState
from ...api.task import ComputeTask
from .. import where
from ..exit_status import describe_exit, os_error_text
from ..local_process import command_line, kill, output_file, read_back, start, wait
from ..result_fields import set_result
from ..task_output import capture_paths
from ..where import HOST
from .options import cwd_of, missing_files

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)


def run_executable(
    task: ComputeTask,
    push: Callable[[ComputeTask, TaskState], None],
    processes: dict[ComputeTask, subprocess.Popen[bytes]],
    task_dir: Callable[[], str],
    closing: Callable[[], bool],
) -> None:
    """Run ``task`` to completion in this (launcher) thread, pushing its states."""
    if task.state in _ENDED or closing():
        return
    try:
        with contextlib.ExitStack() as files:
            # Stamped before the spawn: the child runs while this thread waits for the GIL to
            # see Popen return, so a later stamp can miss most of a short process's run.
            started = now()
            process, out, err, paths = _start(task, task_dir, files)
            processes[task] = process
            set_result(task, "host", HOST)
            set_result(task, "worker", where.process(process.pid))
            set_result(task, "started_at", started)
            push(task, _RUNNING)
            if task.state in _ENDED or closing():  # canceled while it was starting
                kill(process)
            try:
                code = wait(process)
            finally:
                set_result(task, "ended_at", now())
                processes.pop(task, None)
            if task.state in _ENDED or closing():  # canceled, timed out or shut down
                return
            _finish(task, push, code, out, err, paths)
    except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the task ends FAILED
        failed_to_start(task, exc, push)


def failed_to_start(
    task: ComputeTask, exc: BaseException, push: Callable[[ComputeTask, TaskState], None]
) -> None:
    """End ``task`` FAILED (unless it already ended) with why it could not start."""
    if task.state not in _ENDED:
        text = os_error_text(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        task.exception = TaskExecutionError(
            task.uid, None, None, message=f"could not start {task.executable!r}: {text}"
        )
        task.stderr = text
        push(task, _FAILED)


def command_of(task: ComputeTask) -> tuple[object, bool, str | None]:
    """``(command, shell, cwd)`` of an executable task; its input files must exist."""
    shell = bool(task.task_backend_specific_kwargs.get("shell", False))
    cwd = cwd_of(task)
    missing = missing_files(task.input_files, cwd)
    if missing:
        raise FileNotFoundError(f"input files not found: {missing}")
    command = command_line(
        os.fspath(task.executable),  # type: ignore[arg-type]
        [os.fspath(a) for a in task.arguments],
        shell,
    )
    return command, shell, cwd


def _start(
    task: ComputeTask, task_dir: Callable[[], str], files: contextlib.ExitStack
) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes], tuple[str, str] | None]:
    command, shell, cwd = command_of(task)
    env = task.task_backend_specific_kwargs.get("env")
    paths = None
    out: IO[bytes]
    err: IO[bytes]
    if task.capture_stdio:  # straight to the task's files: nothing is held in memory
        paths = capture_paths(task_dir(), task.uid)
        out = files.enter_context(open(paths[0], "wb"))
        err = files.enter_context(open(paths[1], "wb"))
    else:  # anonymous files, read back once the process ended
        out = files.enter_context(output_file())
        err = files.enter_context(output_file())
    process = start(command, shell=shell, cwd=cwd, env=env, stdout=out, stderr=err)
    return process, out, err, paths


def _finish(
    task: ComputeTask,
    push: Callable[[ComputeTask, TaskState], None],
    code: int,
    out: IO[bytes],
    err: IO[bytes],
    paths: tuple[str, str] | None,
) -> None:
    task.exit_code = code
    cwd = cwd_of(task)
    if paths is not None:
        task.stdout, task.stderr = paths
        error_text = _tail(paths[1]) if code != 0 else None
    else:
        task.stdout, task.stderr = read_back(out), read_back(err)
        task.return_value = task.stdout
        error_text = task.stderr
    if code != 0:
        task.exception = TaskExecutionError(task.uid, error_text, code, message=describe_exit(code))
        push(task, _FAILED)
        return
    missing = missing_files(task.output_files, cwd)
    if missing:
        task.exception = TaskExecutionError(
            task.uid, error_text, code, message=f"did not produce its output files {missing}"
        )
        push(task, _FAILED)
        return
    push(task, _DONE)


def _tail(path: str, limit: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - limit))
        return f.read().decode("utf-8", "replace")
