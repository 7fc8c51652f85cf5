"""Per-task options (``task_backend_specific_kwargs``) of the concurrent backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...api.errors import TaskValidationError
from ...api.task import ComputeTask

OPTIONS = ("cwd", "env", "shell")


def _fail(task: ComputeTask, key: str, expected: str, got: Any) -> None:
    raise TaskValidationError(
        f"task_backend_specific_kwargs[{key!r}]", expected, got, owner=f"ComputeTask {task.uid}"
    )


def check_options(task: ComputeTask) -> None:
    """Raise :class:`TaskValidationError` for an option the concurrent backend does not know."""
    options = task.task_backend_specific_kwargs
    for key, value in options.items():
        if key == "cwd":
            if not isinstance(value, (str, os.PathLike)):
                _fail(task, key, "a directory path (str or os.PathLike)", value)
        elif key == "env":
            if not isinstance(value, Mapping) or not all(
                type(k) is str and type(v) is str for k, v in value.items()
            ):
                _fail(task, key, "a dict of str to str", value)
        elif key == "shell":
            if type(value) is not bool:
                _fail(task, key, "True or False", value)
            if value and task.function is not None:
                _fail(task, key, "shell only for executables", value)
        else:
            _fail(task, key, f"one of {list(OPTIONS)} for the concurrent backend", value)


def cwd_of(task: ComputeTask) -> str | None:
    cwd = task.task_backend_specific_kwargs.get("cwd")
    return os.fspath(cwd) if cwd is not None else None


def missing_files(paths: Any, cwd: str | None) -> list[str]:
    """Those of ``paths`` (relative to ``cwd``) that do not exist."""
    base = cwd or os.getcwd()
    return [p for p in map(os.fspath, paths) if not os.path.exists(os.path.join(base, p))]
