"""Checks of ``task_backend_specific_kwargs`` shared by backends that start processes.

A backend's ``check_options`` handles its own keys and hands the process keys (``cwd``, ``env``,
``shell``) to :func:`check_process_option`; errors name the option, the expectation and the
value, before anything runs.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from ..api.errors import TaskValidationError, task_label
from ..api.task import BaseTask, ComputeTask
from ..api.validators import os_string_problem

PROCESS_OPTIONS = ("cwd", "env", "shell")


def option_error(task: BaseTask, key: str, expected: str, got: Any) -> NoReturn:
    """Raise the :class:`TaskValidationError` for option ``key`` of ``task``.

    ``key`` is a path such as ``"process_templates[0][1]['stdout']"``; the error names it as
    ``task_backend_specific_kwargs.process_templates[0][1].stdout``.
    """
    raise TaskValidationError(
        "task_backend_specific_kwargs" + option_path(key),
        expected,
        got,
        owner=f"{task_label(task.uid)}: {type(task).__name__}",
    )


_STEP = re.compile(r"\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?\d+)\]")


def option_path(key: str) -> str:
    """``"env['A=B']"`` -> ``".env['A=B']"``; ``"x[0]['stdout']"`` -> ``".x[0].stdout"``."""
    head, _, rest = key.partition("[")
    parts = [f".{head}"]
    for match in _STEP.finditer("[" + rest if rest else ""):
        step = match.group(1)
        if step[0] in "'\"":
            name = ast.literal_eval(step)
            parts.append(f".{name}" if name.isidentifier() else f"[{step}]")
        else:
            parts.append(f"[{step}]")
    return "".join(parts)


def check_process_option(task: ComputeTask, key: str, value: Any) -> bool:
    """Check ``cwd``/``env``/``shell``; False when ``key`` is none of them."""
    if key == "cwd":
        check_cwd(task, key, value)
    elif key == "env":
        check_env(task, key, value)
    elif key == "shell":
        if type(value) is not bool:
            option_error(task, key, "True or False", value)
        if value and task.function is not None:
            option_error(task, key, "shell only for executables", value)
    else:
        return False
    return True


def check_cwd(task: BaseTask, key: str, value: Any) -> None:
    """A working directory the operating system accepts (a path without NUL bytes)."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        option_error(task, key, "a directory path (str or os.PathLike)", value)
    if os_string_problem(os.fspath(value)):
        option_error(task, key, "a directory path without NUL bytes", value)


def check_env(task: BaseTask, key: str, value: Any) -> None:
    """Environment variables the operating system accepts: names non-empty, without '=' or NUL;
    values without NUL."""
    if not isinstance(value, Mapping):
        option_error(task, key, "a dict of str to str", value)
    for name, text in value.items():
        if type(name) is not str or type(text) is not str:
            option_error(task, key, "a dict of str to str", value)
        if not name or "=" in name or "\0" in name:
            option_error(
                task, f"{key}[{name!r}]", "a variable name, non-empty, without '=' or NUL", name
            )
        if "\0" in text:
            option_error(task, f"{key}[{name!r}]", "a value without NUL bytes", text)
