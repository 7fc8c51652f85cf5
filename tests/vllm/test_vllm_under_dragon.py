"""The issue's workflow under a real Dragon runtime and a real vLLM server: the replica is a
Dragon process placed by policy on this node, and the script still runs unchanged."""

from __future__ import annotations

import pytest

from ..docs_runner import run_block
from .conftest import VLLM_ENV
from .test_docs_vllm import vllm_servers

SCRIPT = """
import asyncio

from rhapsody.api import Session, ComputeTask, AITask
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.backends.inference import DragonVllmInferenceBackend


async def main():
    hpc_backend = await ConcurrentExecutionBackend(name="hpc_cluster")
    ai_backend = await DragonVllmInferenceBackend(name="vllm_service", model="llama-3")
    print("placed:", ai_backend.uses_dragon, [r.server.where for r in ai_backend._set.replicas])
    async with Session(backends=[hpc_backend, ai_backend]) as session:
        sim_task = ComputeTask(executable="./simulate.sh", backend="hpc_cluster")
        summary_task = AITask(prompt="Summarize the simulation findings: ...", backend="vllm_service")
        await session.submit_tasks([sim_task, summary_task])
        await sim_task
        print(f"Simulation Done: {sim_task.return_value}")
        await summary_task
        print(f"AI Summary: {summary_task.response}")


asyncio.run(main())
"""  # noqa: E501 - the issue's code, unchanged


@pytest.mark.timeout(400)
def test_issue_workflow_under_dragon(tmp_path_factory, tiny_model):
    scripts = tmp_path_factory.mktemp("scripts")
    simulate = scripts / "simulate.sh"
    simulate.write_text("#!/bin/sh\necho simulated\n")
    simulate.chmod(0o755)
    before = vllm_servers()
    out = run_block(
        "python",
        SCRIPT,
        tmp_path_factory.mktemp("example"),
        launcher="dragon",
        staged={"llama-3": tiny_model, "simulate.sh": simulate},
        env_extra=VLLM_ENV,
    )
    assert "placed: True ['dragon on " in out
    assert "Simulation Done: simulated" in out and "AI Summary: " in out
    assert not (vllm_servers() - before), "the workflow left vLLM servers running"
