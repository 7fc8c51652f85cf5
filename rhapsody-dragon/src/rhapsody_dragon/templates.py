"""``task_backend_specific_kwargs`` of the Dragon backend: checks, and the per-process plan.

A task may carry ``process_template`` (one process) or ``process_templates`` (a job: a list of
``(count, template)`` pairs). A template holds Dragon ``ProcessTemplate`` parameters; the task
supplies ``target``, ``args`` and ``kwargs``. ``cwd``, ``env`` and ``shell`` are accepted at the
top level too, as on every process-starting backend, and apply to every process of the task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rhapsody.api import BaseTask, ComputeTask
from rhapsody.api.task_fields import EMPTY_MAPPING
from rhapsody.api.validators import integer
from rhapsody.backends.task_options import (
    check_cwd,
    check_env,
    check_process_option,
    option_error,
)

TEMPLATE_KEYS = ("cwd", "env", "stdin", "stdout", "stderr", "policy", "options")
FROM_THE_TASK = ("target", "args", "kwargs")
OPTION_KEYS = ("process_template", "process_templates", "cwd", "env", "shell")
MAX_PROCESSES = 1 << 20

Template = dict[str, Any]


def check_options(task: BaseTask) -> None:
    """Reject unknown or malformed Dragon options of ``task`` with a TaskValidationError."""
    assert isinstance(task, ComputeTask)
    options = task.task_backend_specific_kwargs
    for key, value in options.items():
        if key == "process_template":
            _check_template(task, key, value)
        elif key == "process_templates":
            _check_job(task, key, value)
        elif not check_process_option(task, key, value):
            option_error(task, key, f"one of {list(OPTION_KEYS)}", key)
    if "process_template" in options and "process_templates" in options:
        option_error(
            task, "process_templates", "either process_template or process_templates", "both"
        )


def _check_job(task: ComputeTask, key: str, value: Any) -> None:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value:
        option_error(task, key, "a non-empty list of (count, template dict) pairs", value)
    total = 0
    for i, pair in enumerate(value):
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
            option_error(task, f"{key}[{i}]", "a (count, template dict) pair", pair)
        count, template = pair
        if (integer(count) or 0) < 1:
            option_error(task, f"{key}[{i}][0]", "a process count (int >= 1)", count)
        total += count
        _check_template(task, f"{key}[{i}][1]", template)
    if total > MAX_PROCESSES:
        option_error(task, key, f"at most {MAX_PROCESSES} processes", total)


def _check_template(task: ComputeTask, key: str, template: Any) -> None:
    if not isinstance(template, Mapping):
        option_error(task, key, "a dict of Dragon ProcessTemplate parameters", template)
    for name, value in template.items():
        where = f"{key}[{name!r}]"
        if name in FROM_THE_TASK:
            option_error(
                task,
                where,
                f"no {name!r}: the task's executable/function, arguments and kwargs are used",
                value,
            )
        if name not in TEMPLATE_KEYS:
            option_error(
                task, where, f"one of the ProcessTemplate keys {list(TEMPLATE_KEYS)}", name
            )
        if value is None:
            continue
        if name == "cwd":
            check_cwd(task, where, value)
        elif name == "env":
            check_env(task, where, value)
        elif name in ("stdout", "stderr"):
            _check_stream(task, where, name, value)
        elif name == "stdin" and value not in _constants("PIPE", "DEVNULL"):
            option_error(
                task, where, "None, ProcessTemplate.PIPE or ProcessTemplate.DEVNULL", value
            )
        elif name == "policy" and not _is_dragon(value, "Policy"):
            option_error(task, where, "a dragon.infrastructure.policy.Policy", value)
        elif name == "options" and not _is_dragon(value, "ProcessOptions"):
            option_error(task, where, "a dragon ProcessOptions", value)


def _check_stream(task: ComputeTask, where: str, name: str, value: Any) -> None:
    allowed = _constants("PIPE", "DEVNULL", *(("STDOUT",) if name == "stderr" else ()))
    if isinstance(value, str):
        if not value:
            option_error(task, where, "a non-empty file path", value)
    elif isinstance(value, bool) or value not in allowed:
        choices = "PIPE, DEVNULL" + (" or STDOUT" if name == "stderr" else "")
        option_error(
            task, where, f"None, a file path, or ProcessTemplate.{choices}", _describe(value)
        )


def _constants(*names: str) -> dict[Any, str]:
    from dragon.native.process import ProcessTemplate

    return {getattr(ProcessTemplate, name): name for name in names}


class _Shown(str):
    """A value shown as itself in an error message (no quotes around it)."""

    def __repr__(self) -> str:
        return str(self)


def _describe(value: Any) -> Any:
    # Dragon's stream constants are small negative ints: name the one that was given.
    from dragon.native.process import ProcessTemplate

    for name in ("PIPE", "STDOUT", "DEVNULL"):
        if type(value) is int and value == getattr(ProcessTemplate, name):
            return _Shown(f"ProcessTemplate.{name}")
    return value


def resolve_streams(template: Template, out: str | None, err: str | None) -> tuple[Any, Any, Any]:
    """``(stdin, stdout, stderr)`` for Dragon's Process. ``PIPE`` (and ``None``, the default)
    mean what the user guide documents: the output is captured into the task's stdout/stderr
    (the backend's own files ``out``/``err``, read back per rank); stdin ``PIPE`` gives the
    process an empty input (a task has nothing to send it)."""
    from dragon.native.process import ProcessTemplate

    pipe, devnull = ProcessTemplate.PIPE, ProcessTemplate.DEVNULL
    stdin = template.get("stdin")
    # None is the default, as everywhere in task options: captured like PIPE.
    stdout = out if template.get("stdout") is None else template["stdout"]
    stderr = err if template.get("stderr") is None else template["stderr"]
    if stdin == pipe:
        stdin = devnull
    if stdout == pipe:
        stdout = out
    if stderr == pipe:
        stderr = err
    return stdin, stdout, stderr


def _is_dragon(value: Any, class_name: str) -> bool:
    return any(
        klass.__name__ == class_name and klass.__module__.startswith("dragon.")
        for klass in type(value).__mro__
    )


def process_plan(task: ComputeTask) -> list[Template] | None:
    """The template of each process of ``task`` in rank order, or None for a pool function.

    Top-level ``cwd``/``env`` apply to every process; a template's own values win.
    """
    options = task.task_backend_specific_kwargs
    if options is EMPTY_MAPPING:  # the usual task: no Python-level look-ups into the options
        return None if task.function is not None else apply_common(task, [{}])
    if "process_templates" in options:
        plan = [dict(t) for n, t in options["process_templates"] for _ in range(integer(n) or 0)]
    elif "process_template" in options:
        plan = [dict(options["process_template"])]
    elif task.function is not None:
        return None
    else:
        plan = [{}]
    return apply_common(task, plan)


def apply_common(task: ComputeTask, plan: list[Template]) -> list[Template]:
    """Give every template of ``plan`` the task's top-level ``cwd`` and ``env`` (a template's own
    values win)."""
    options = task.task_backend_specific_kwargs
    common = {k: options[k] for k in ("cwd", "env") if options.get(k) is not None}
    for template in plan:
        for key, value in common.items():
            if key == "env":
                template["env"] = {**value, **(template.get("env") or {})}
            else:
                template.setdefault(key, value)
    return plan


def wants_pipe(template: Template) -> bool:
    """Whether ``template`` asks for an output stream to be captured (``PIPE``)."""
    from dragon.native.process import ProcessTemplate

    pipe = ProcessTemplate.PIPE
    return any(
        type(v) is int and v == pipe for v in (template.get("stdout"), template.get("stderr"))
    )
