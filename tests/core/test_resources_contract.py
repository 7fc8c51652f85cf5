"""The backend contract for resource requests: a backend that does not describe its nodes
refuses requests; one that does gets them checked once per distinct request in a batch."""

from __future__ import annotations

import pytest

from rhapsody.api import ComputeTask, ResourceError, Session
from rhapsody.resources import NodeResources

from .fakes import ManualBackend


async def test_a_backend_that_does_not_honour_requests_refuses_them():
    backend = ManualBackend()
    async with Session([backend]) as session:
        task = ComputeTask(executable="true", gpus_per_rank=1)
        with pytest.raises(ResourceError, match="does not honour resource requests"):
            await session.submit_tasks([task])
        plain = ComputeTask(executable="true")
        await session.submit_tasks([plain])  # no request: accepted as before
        assert backend.submitted == [plain]


class Described(ManualBackend):
    ranks_span_nodes = True

    def __init__(self) -> None:
        super().__init__("described")
        self.checks = 0

    def resource_nodes(self):
        return [NodeResources("a", (0, 1), ("0",)), NodeResources("b", (0, 1), ())]

    def check_resources(self, task, request):
        self.checks += 1
        super().check_resources(task, request)


async def test_equal_requests_are_checked_once_per_batch_and_ranks_may_span_nodes():
    backend = Described()
    async with Session([backend]) as session:
        batch = [ComputeTask(executable="true", ranks=4) for _ in range(50)]
        await session.submit_tasks(batch)  # 4 ranks over two 2-core nodes
        assert backend.checks == 1
        with pytest.raises(ResourceError, match="hold at most 1 such ranks"):
            await session.submit_tasks([ComputeTask(executable="true", ranks=2, gpus_per_rank=1)])
