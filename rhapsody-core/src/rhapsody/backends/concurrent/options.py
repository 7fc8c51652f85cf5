"""Per-task options (``task_backend_specific_kwargs``) of the concurrent backend."""

from __future__ import annotations

import os
import shutil
from typing import Any

from ...api.task import ComputeTask
from ..task_options import PROCESS_OPTIONS, check_process_option, option_error

OPTIONS = (*PROCESS_OPTIONS, "launcher")


def check_options(task: ComputeTask) -> None:
    """Raise :class:`TaskValidationError` for an option the concurrent backend does not know."""
    for key, value in task.task_backend_specific_kwargs.items():
        if key == "launcher":
            _check_launcher(task, value)
        elif not check_process_option(task, key, value):
            option_error(task, key, f"one of {list(OPTIONS)} for the concurrent backend", value)


def _check_launcher(task: ComputeTask, value: Any) -> None:
    """``launcher``: an MPI launcher (``mpiexec``, ``mpirun``, ``srun``...) on PATH, started
    once with ``-n RANKS`` for an executable job instead of one process per rank."""
    if type(value) is not str or not value or "\0" in value:
        option_error(task, "launcher", "the name or path of an MPI launcher ('mpiexec')", value)
    if task.function is not None:
        option_error(task, "launcher", "no launcher for a function (an executable job only)", value)
    if shutil.which(value) is None:
        option_error(task, "launcher", "an MPI launcher installed on this node (on PATH)", value)


def launcher_of(task: ComputeTask) -> str | None:
    launcher = task.task_backend_specific_kwargs.get("launcher")
    return shutil.which(launcher) if launcher else None


def cwd_of(task: ComputeTask) -> str | None:
    cwd = task.task_backend_specific_kwargs.get("cwd")
    return os.fspath(cwd) if cwd is not None else None


def missing_files(paths: Any, cwd: str | None) -> list[str]:
    """Those of ``paths`` (relative to ``cwd``) that do not exist."""
    base = cwd or os.getcwd()
    return [p for p in map(os.fspath, paths) if not os.path.exists(os.path.join(base, p))]
