"""Test doubles for the session's own logic (never a stand-in for a real backend's tests)."""

from __future__ import annotations

from collections.abc import Sequence

from rhapsody.api import BaseTask, TaskState
from rhapsody.backends import ExecutionBackend, InferenceBackend


class ManualBackend(ExecutionBackend):
    """Holds submitted tasks; the test decides what happens to them."""

    def __init__(self, name: str = "manual") -> None:
        super().__init__(name)
        self.submitted: list[BaseTask] = []
        self.canceled: list[BaseTask] = []
        self.shut_down = False

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        self.submitted.extend(tasks)

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        self.canceled.extend(tasks)
        for task in tasks:
            self.report(task, TaskState.CANCELED)

    async def shutdown(self) -> None:
        self.shut_down = True


class ManualInferenceBackend(ManualBackend, InferenceBackend):
    kind = InferenceBackend.kind
    task_types = InferenceBackend.task_types
