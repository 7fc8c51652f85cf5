"""Copies of tasks: pickling's rebuild and (deep) copies. A copy is a new, unsubmitted task
with the same description and results."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .portable import CloudPickled

if TYPE_CHECKING:
    from .task import BaseTask

_PRIVATE = ("_future", "_extra")


def unpickle_task(cls: type[BaseTask], state: dict[str, Any]) -> BaseTask:
    task = cls.__new__(cls)
    for field in attrs.fields(cls):
        value = state.get(field.name, None if field.name in _PRIVATE else field_default(field))
        if isinstance(value, CloudPickled):
            value = value.load()
        object.__setattr__(task, field.name, value)
    return task


def field_default(field: Any) -> Any:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory()
    return default


def clone_task(
    task: BaseTask, copy_value: Callable[[Any], Any], memo: dict[int, Any] | None = None
) -> BaseTask:
    cls = type(task)
    clone = cls.__new__(cls)
    if memo is not None:
        memo[id(task)] = clone
    for field in attrs.fields(cls):
        name = field.name
        if name == "_future":
            value = None  # a copy is a new, unsubmitted task
        else:
            value = getattr(task, name)
            if name == "_extra" and value is not None:
                value = dict(value)  # the copy gets its own extra fields
            if name != "function":  # functions are shared, never copied
                value = copy_value(value)
        object.__setattr__(clone, name, value)
    return clone
