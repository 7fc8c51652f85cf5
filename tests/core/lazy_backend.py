"""A backend module that a plugin declares by reference: imported when first used."""

from __future__ import annotations

from rhapsody.backends import ExecutionBackend


class LazyExecutionBackend(ExecutionBackend):
    async def submit_tasks(self, tasks): ...

    async def cancel_tasks(self, tasks): ...

    async def shutdown(self): ...
