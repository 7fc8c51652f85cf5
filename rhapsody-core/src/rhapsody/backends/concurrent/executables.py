"""Running an executable task as a subprocess, from a launcher thread.

No shell unless ``shell=True``; each process leads its own process group so that a kill (cancel,
timeout, shutdown) also reaches the children it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from ...api.errors import TaskExecutionError
from ...api.states import TaskState
from ...api.task import ComputeTask
from .options import cwd_of, missing_files

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``process`` (if it was not reaped yet)."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _command(task: ComputeTask, shell: bool) -> Any:
    executable = os.fspath(task.executable)  # type: ignore[arg-type]
    arguments = [os.fspath(a) for a in task.arguments]
    if shell:  # the user asked for shell semantics ($VARS, pipes): one command line
        return " ".join([executable, *arguments])
    return [executable, *arguments]


def run_executable(
    task: ComputeTask,
    push: Callable[[ComputeTask, TaskState], None],
    processes: set[subprocess.Popen[bytes]],
    task_dir: Callable[[], str],
    closing: Callable[[], bool],
) -> None:
    """Run ``task`` to completion in this (launcher) thread, pushing its states."""
    if task.state in _ENDED or closing():
        return
    options = task.task_backend_specific_kwargs
    shell = bool(options.get("shell", False))
    cwd = cwd_of(task)
    env = options.get("env")
    if env is not None:
        env = {**os.environ, **env}
    out_path = err_path = None
    try:
        missing = missing_files(task.input_files, cwd)
        if missing:
            raise FileNotFoundError(f"input files not found: {missing}")
        with contextlib.ExitStack() as files:
            out: Any = subprocess.PIPE
            err: Any = subprocess.PIPE
            if task.capture_stdio:  # straight to files: nothing is held in memory
                base = os.path.join(task_dir(), task.uid)
                out_path, err_path = base + ".stdout", base + ".stderr"
                out = files.enter_context(open(out_path, "wb"))
                err = files.enter_context(open(err_path, "wb"))
            process = subprocess.Popen(
                _command(task, shell),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                shell=shell,
                # A session of its own (setsid): measured 1.5x faster to spawn from these
                # launcher threads than process_group=0.
                start_new_session=True,
            )
    except OSError as exc:
        task.exception = TaskExecutionError(
            task.uid, str(exc), None, message=f"could not start {task.executable!r}: {exc}"
        )
        task.stderr = str(exc)
        push(task, _FAILED)
        return
    processes.add(process)
    task._handle = process
    push(task, _RUNNING)
    if task.state in _ENDED or closing():  # canceled while it was starting
        kill(process)
    try:
        stdout, stderr = process.communicate()
    finally:
        processes.discard(process)
        task._handle = None
    if task.state in _ENDED or closing():  # canceled, timed out or shut down: not a failure
        return
    code = process.returncode
    task.exit_code = code
    if out_path is not None:
        task.stdout, task.stderr = out_path, err_path
    else:
        task.stdout = stdout.decode("utf-8", "replace")
        task.stderr = stderr.decode("utf-8", "replace")
        task.return_value = task.stdout
    if code != 0:
        text = task.stderr if out_path is None else _tail(err_path)
        reason = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        task.exception = TaskExecutionError(task.uid, text, code, message=reason)
        push(task, _FAILED)
        return
    missing = missing_files(task.output_files, cwd)
    if missing:
        task.exception = TaskExecutionError(
            task.uid, task.stderr, code, message=f"did not produce its output files {missing}"
        )
        push(task, _FAILED)
        return
    push(task, _DONE)


def _tail(path: str | None, limit: int = 4000) -> str:
    if path is None:
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - limit))
        return f.read().decode("utf-8", "replace")
