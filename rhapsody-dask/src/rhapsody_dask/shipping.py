"""What a batch of tasks sends to Dask: each task's key, its call or command, and the options of
``client.map``. Function tasks travel as pickles the worker unpickles itself
(:func:`.worker_side.run_shipped`); a function's pickle is made once per batch."""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from rhapsody.api import ComputeTask

_NOT_WORD = re.compile(r"[^A-Za-z0-9_]")


def function_pickle(function: Any, done: dict[Any, bytes]) -> bytes:
    """``function``'s pickle, made once per batch (``done``): the same bytes object for all its
    tasks, which Dask's pickle of the batch then holds once. Raises if it cannot be pickled."""
    try:
        found = done.get(function)
    except TypeError:  # an unhashable callable
        return cloudpickle.dumps(function, pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    if found is None:
        found = done[function] = cloudpickle.dumps(function, pickle.HIGHEST_PROTOCOL)
    return found


def call_pickle(task: ComputeTask) -> bytes:
    """``(args, kwargs)`` of a function task (see :func:`worker_side.run_shipped`)."""
    call = (task.args, dict(task.kwargs) if task.kwargs else None)
    try:  # the C pickler first: several times faster than cloudpickle on plain data
        data = pickle.dumps(call, pickle.HIGHEST_PROTOCOL)
        if b"__main__" not in data:  # as Dask does: what refers to __main__ goes by value
            return data
    except Exception:  # noqa: BLE001 - a lambda, a local class...: cloudpickle ships it
        pass
    return cloudpickle.dumps(call, pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


def map_options(resources: Any, workers: Any, priority: int, retries: int | None) -> dict[str, Any]:
    """``client.map``'s keyword arguments for a placement (see options.placement)."""
    return {
        "resources": dict(resources) if resources else None,
        "workers": list(workers) if workers else None,
        "priority": priority,
        "retries": retries,
    }


def key_prefix(task: ComputeTask) -> str:
    """The task-group part of a Dask key: the function's or program's name, like Dask's own.

    Dask groups tasks by the key's first dash-separated word; a word unique to each task would
    make one group per task and slow the scheduler down quadratically.
    """
    if task.function is not None:
        name = getattr(task.function, "__name__", "function")
    else:
        name = os.path.basename(os.fspath(task.executable)) or "executable"  # type: ignore[arg-type]
    name = _NOT_WORD.sub("_", name)
    return name if name[:1].isalpha() else f"task_{name}"


def command_string(task: ComputeTask) -> str:
    """The command as one string: Dask would otherwise turn a list argument into a graph
    container of its own, per task (NUL cannot occur in an argument, so it separates them)."""
    argv = [os.fspath(task.executable), *map(os.fspath, task.arguments)]  # type: ignore[arg-type]
    return " ".join(argv) if task.task_backend_specific_kwargs.get("shell") else "\0".join(argv)


def cwd_option(task: ComputeTask) -> str | None:
    cwd = task.task_backend_specific_kwargs.get("cwd")
    return os.fspath(cwd) if cwd is not None else None
