"""Checks of ``task_backend_specific_kwargs`` shared by backends that start processes.

A backend's ``check_options`` handles its own keys and hands the process keys (``cwd``, ``env``,
``shell``) to :func:`check_process_option`; errors name the option, the expectation and the
value, before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NoReturn

from ..api.errors import TaskValidationError
from ..api.task import BaseTask, ComputeTask

PROCESS_OPTIONS = ("cwd", "env", "shell")


def option_error(task: BaseTask, key: str, expected: str, got: Any) -> NoReturn:
    """Raise the :class:`TaskValidationError` for option ``key`` of ``task``."""
    raise TaskValidationError(
        f"task_backend_specific_kwargs[{key!r}]",
        expected,
        got,
        owner=f"{type(task).__name__} {task.uid}",
    )


def check_process_option(task: ComputeTask, key: str, value: Any) -> bool:
    """Check ``cwd``/``env``/``shell``; False when ``key`` is none of them."""
    if key == "cwd":
        if not isinstance(value, (str, os.PathLike)):
            option_error(task, key, "a directory path (str or os.PathLike)", value)
    elif key == "env":
        if not isinstance(value, Mapping) or not all(
            type(k) is str and type(v) is str for k, v in value.items()
        ):
            option_error(task, key, "a dict of str to str", value)
    elif key == "shell":
        if type(value) is not bool:
            option_error(task, key, "True or False", value)
        if value and task.function is not None:
            option_error(task, key, "shell only for executables", value)
    else:
        return False
    return True
