"""Tasks submitted as plain dicts: the dict is kept up to date, as rhapsody-py users expect."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .task import BaseTask


_RESULTS_WRITTEN_BACK = (
    "return_value",
    "stdout",
    "stderr",
    "exit_code",
    "exception",
    "submitted_at",
    "started_at",
    "ended_at",
    "host",
    "worker",
)


def write_back(task: BaseTask, target: MutableMapping[str, Any]) -> None:
    """Copy an ended task's state and results into the dict it was submitted as."""
    target["state"] = task.state.value
    for name in _RESULTS_WRITTEN_BACK:
        target[name] = getattr(task, name)
    response = getattr(task, "response", None)
    if response is not None:
        target["response"] = response
