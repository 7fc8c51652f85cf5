"""``task_backend_specific_kwargs`` of the Dask backend, checked before submission."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rhapsody.api import ComputeTask, TaskValidationError

OPTIONS = ("resources", "workers", "priority", "retries", "cwd", "env", "shell")


def _fail(task: ComputeTask, key: str, expected: str, got: Any) -> None:
    raise TaskValidationError(
        f"task_backend_specific_kwargs[{key!r}]", expected, got, owner=f"ComputeTask {task.uid}"
    )


def check_options(task: ComputeTask) -> None:
    for key, value in task.task_backend_specific_kwargs.items():
        if key == "resources":
            if not isinstance(value, Mapping) or not all(
                type(k) is str and type(v) in (int, float) and v > 0 for k, v in value.items()
            ):
                _fail(task, key, "a dict of resource name to a positive amount", value)
        elif key == "workers":
            if not (
                isinstance(value, str)
                or (isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value))
            ):
                _fail(task, key, "a worker address or a list of them", value)
        elif key in ("priority", "retries"):
            if type(value) is not int or (key == "retries" and value < 0):
                _fail(task, key, "an integer" + (" >= 0" if key == "retries" else ""), value)
        elif key == "cwd":
            if not isinstance(value, (str, os.PathLike)):
                _fail(task, key, "a directory path", value)
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
            _fail(task, key, f"one of {list(OPTIONS)} for the Dask backend", value)


def placement(task: ComputeTask) -> tuple[Any, ...]:
    """The ``client.map`` options of a task, as a hashable group key."""
    options = task.task_backend_specific_kwargs
    if not options:
        return (None, None, 0, None)
    resources = options.get("resources")
    workers = options.get("workers")
    return (
        tuple(sorted(resources.items())) if resources else None,
        (workers,) if isinstance(workers, str) else (tuple(workers) if workers else None),
        options.get("priority", 0),
        options.get("retries"),
    )


def unsatisfiable(
    resources: tuple[tuple[str, float], ...], offered: dict[str, dict[str, float]]
) -> bool:
    """True when no worker offers all of ``resources`` in the amounts asked."""
    return not any(
        all(worker.get(name, 0) >= amount for name, amount in resources)
        for worker in offered.values()
    )
