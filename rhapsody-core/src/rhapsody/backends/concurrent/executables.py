"""Running an executable task as a subprocess: starting it and ending it from what it did (the
same for a process watched from the event loop -- :mod:`.process_watch` -- and one waited on by a
launcher thread, :func:`run_executable`). :mod:`rhapsody.backends.local_process` says how the
process is started, watched and stopped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from ...api.clock import now
from ...api.errors import TaskExecutionError
from ...api.states import TaskState
from ...api.task import ComputeTask
from .. import where
from ..exit_status import describe_exit, os_error_text
from ..local_process import command_line, kill, output_fd, read_fd, start, wait
from ..result_fields import set_result
from ..task_output import capture_paths
from ..where import HOST
from .options import cwd_of, missing_files

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC

Push = Callable[[ComputeTask, TaskState], None]


class StartedProcess:
    """A task's process and where its output goes: two descriptors, and the task's capture
    files' paths when it has them (else the descriptors are anonymous files read back)."""

    __slots__ = ("err", "out", "paths", "process", "sizes")

    def __init__(
        self, process: subprocess.Popen[bytes], out: int, err: int, paths: tuple[str, str] | None
    ) -> None:
        self.process, self.out, self.err, self.paths = process, out, err, paths
        self.sizes: tuple[int, int] | None = None  # of the output, once read

    def close(self) -> None:
        _close(self.out, self.err)


def start_process(task: ComputeTask, task_dir: Callable[[], str]) -> StartedProcess:
    """Start ``task``'s process and stamp where and when; raises what stopped it."""
    command, shell, cwd = command_of(task)
    env = task.task_backend_specific_kwargs.get("env")
    paths = None
    if task.capture_stdio:  # straight to the task's files: nothing is held in memory
        paths = capture_paths(task_dir(), task.uid)
        out = os.open(paths[0], _CREATE, 0o666)
        err = _or_close(lambda: os.open(paths[1], _CREATE, 0o666), out)
    else:  # anonymous files, read back once the process ended
        out = output_fd()
        err = _or_close(output_fd, out)
    # Stamped before the spawn: the child runs while this thread waits to see Popen return, so
    # a later stamp can miss most of a short process's run.
    started = now()
    try:
        process = start(command, shell=shell, cwd=cwd, env=env, stdout=out, stderr=err)
    except BaseException:
        _close(out, err)
        raise
    set_result(task, "host", HOST)
    set_result(task, "worker", where.process(process.pid))
    set_result(task, "started_at", started)
    return StartedProcess(process, out, err, paths)


def finish(task: ComputeTask, push: Push, code: int, started: StartedProcess) -> None:
    """End ``task`` from its exit code and output: DONE, or FAILED saying why."""
    task.exit_code = code
    paths = started.paths
    if paths is not None:
        task.stdout, task.stderr = paths
        error_text = _tail(paths[1]) if code != 0 else None
    else:
        sizes = started.sizes or (None, None)
        task.stdout = read_fd(started.out, sizes[0])
        task.stderr = read_fd(started.err, sizes[1])
        task.return_value = task.stdout
        error_text = task.stderr
    if code != 0:
        task.exception = TaskExecutionError(task.uid, error_text, code, message=describe_exit(code))
        push(task, _FAILED)
        return
    missing = missing_outputs(task, error_text, code)
    if missing is not None:
        task.exception = missing
        push(task, _FAILED)
        return
    push(task, _DONE)


def missing_outputs(task: ComputeTask, error_text: str | None, code: int) -> Exception | None:
    """The error of a task that ended without all its ``output_files``, else None."""
    if not task.output_files:
        return None
    missing = missing_files(task.output_files, cwd_of(task))
    if not missing:
        return None
    message = f"did not produce its output files {missing}"
    return TaskExecutionError(task.uid, error_text, code, message=message)


def run_executable(
    task: ComputeTask,
    push: Push,
    processes: dict[ComputeTask, subprocess.Popen[bytes]],
    task_dir: Callable[[], str],
    closing: Callable[[], bool],
) -> None:
    """Run ``task`` to completion in this (launcher) thread, pushing its states."""
    if task.state in _ENDED or closing():
        return
    try:
        started = start_process(task, task_dir)
    except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the task ends FAILED
        failed_to_start(task, exc, push)
        return
    try:
        process = started.process
        processes[task] = process
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
        finish(task, push, code, started)
    except BaseException as exc:  # noqa: BLE001 - e.g. its output could not be read
        failed_to_start(task, exc, push)
    finally:
        started.close()


def failed_to_start(task: ComputeTask, exc: BaseException, push: Push) -> None:
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
    kwargs = task.task_backend_specific_kwargs
    shell = bool(kwargs.get("shell", False)) if kwargs else False
    cwd = cwd_of(task) if kwargs else None
    if task.input_files:
        missing = missing_files(task.input_files, cwd)
        if missing:
            raise FileNotFoundError(f"input files not found: {missing}")
    command = command_line(
        os.fspath(task.executable),  # type: ignore[arg-type]
        [os.fspath(a) for a in task.arguments],
        shell,
    )
    return command, shell, cwd


def _or_close(open_one: Callable[[], int], opened: int) -> int:
    try:
        return open_one()
    except BaseException:
        os.close(opened)
        raise


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _tail(path: str, limit: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - limit))
        return f.read().decode("utf-8", "replace")
