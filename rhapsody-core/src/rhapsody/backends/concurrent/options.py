"""Per-task options (``task_backend_specific_kwargs``) of the concurrent backend."""

from __future__ import annotations

import os
from typing import Any

from ...api.task import ComputeTask
from ..task_options import PROCESS_OPTIONS, check_process_option, option_error


def check_options(task: ComputeTask) -> None:
    """Raise :class:`TaskValidationError` for an option the concurrent backend does not know."""
    for key, value in task.task_backend_specific_kwargs.items():
        if not check_process_option(task, key, value):
            option_error(
                task, key, f"one of {list(PROCESS_OPTIONS)} for the concurrent backend", value
            )


def cwd_of(task: ComputeTask) -> str | None:
    cwd = task.task_backend_specific_kwargs.get("cwd")
    return os.fspath(cwd) if cwd is not None else None


def missing_files(paths: Any, cwd: str | None) -> list[str]:
    """Those of ``paths`` (relative to ``cwd``) that do not exist."""
    base = cwd or os.getcwd()
    return [p for p in map(os.fspath, paths) if not os.path.exists(os.path.join(base, p))]
