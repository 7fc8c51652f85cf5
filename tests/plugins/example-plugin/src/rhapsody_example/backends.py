"""Two small backends, written against the public plugin API only."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from rhapsody.api import AITask, BaseTask, ComputeTask, TaskState, TaskValidationError
from rhapsody.backends import ExecutionBackend, InferenceBackend


class InlineExecutionBackend(ExecutionBackend):
    """Runs function tasks right on the event loop (useful for tiny callbacks)."""

    default_name = "inline"

    def check_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            if isinstance(task, ComputeTask) and task.function is None:
                raise TaskValidationError(
                    "executable",
                    "a function task (inline runs no executables)",
                    task.executable,
                    owner=task.uid,
                )

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            assert isinstance(task, ComputeTask) and task.function is not None
            self.report(task, TaskState.RUNNING)
            try:
                result = task.function(*task.args, **task.kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                task.exception = exc
                self.report(task, TaskState.FAILED)
            else:
                task.return_value = result
                self.report(task, TaskState.DONE)

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            self.report(task, TaskState.CANCELED)

    async def shutdown(self) -> None:
        pass


class EchoInferenceBackend(InferenceBackend):
    """Answers every prompt with the prompt, reversed."""

    default_name = "echo"

    async def submit_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            assert isinstance(task, AITask)
            prompts = [task.prompt] if isinstance(task.prompt, str) else list(task.prompt)
            answers = [p[::-1] for p in prompts]
            task.response = answers[0] if isinstance(task.prompt, str) else answers
            self.report(task, TaskState.DONE)

    async def cancel_tasks(self, tasks: Sequence[BaseTask]) -> None:
        for task in tasks:
            self.report(task, TaskState.CANCELED)

    async def shutdown(self) -> None:
        pass
