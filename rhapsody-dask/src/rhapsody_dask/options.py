"""``task_backend_specific_kwargs`` of the Dask backend, checked before submission."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rhapsody.api import ComputeTask
from rhapsody.api.validators import integer, real
from rhapsody.backends.task_options import check_process_option, option_error

from .resources import dask_resources

OPTIONS = ("resources", "workers", "priority", "retries", "cwd", "env", "shell")


def check_options(task: ComputeTask) -> None:
    for key, value in task.task_backend_specific_kwargs.items():
        if key == "resources":
            if not isinstance(value, Mapping) or not all(
                type(k) is str and (real(v) or 0) > 0 for k, v in value.items()
            ):
                option_error(task, key, "a dict of resource name to a positive amount", value)
        elif key == "workers":
            if not (
                isinstance(value, str)
                or (isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value))
            ):
                option_error(task, key, "a worker address or a list of them", value)
        elif key in ("priority", "retries"):
            if integer(value) is None or (key == "retries" and value < 0):
                option_error(task, key, "an integer" + (" >= 0" if key == "retries" else ""), value)
        elif not check_process_option(task, key, value):
            option_error(task, key, f"one of {list(OPTIONS)} for the Dask backend", value)


def placement(task: ComputeTask) -> tuple[Any, ...]:
    """The ``client.map`` options of a task, as a hashable group key."""
    options = task.task_backend_specific_kwargs
    request = task.resources
    if not options:
        if request is None:
            return (None, None, 0, None)
        return (dask_resources(task, request), None, 0, None)
    resources = options.get("resources")
    workers = options.get("workers")
    return (
        tuple(sorted((k, real(v)) for k, v in resources.items()))
        if resources
        else (dask_resources(task, request) if request is not None else None),
        (workers,) if isinstance(workers, str) else (tuple(workers) if workers else None),
        integer(options.get("priority", 0)),
        integer(options.get("retries")),
    )


def unsatisfiable(
    resources: tuple[tuple[str, float], ...], offered: dict[str, dict[str, float]]
) -> bool:
    """True when no worker offers all of ``resources`` in the amounts asked."""
    return not any(
        all(worker.get(name, 0) >= amount for name, amount in resources)
        for worker in offered.values()
    )
