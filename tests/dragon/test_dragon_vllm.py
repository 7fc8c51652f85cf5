"""``DragonVllmInferenceBackend`` under a real Dragon runtime: replicas start as Dragon processes
with placement policies, answer AITasks, are restarted when killed, and leave nothing behind.

The servers are the stand-in OpenAI server of ``tests/vllm`` (vLLM itself is tested against real
servers in ``tests/vllm``; this checks the Dragon placement path of the vLLM backend).
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from rhapsody.api import AITask, Session, TaskState
from rhapsody_vllm import DragonVllmInferenceBackend
from rhapsody_vllm.servers import VLLM_OWNER_PREFIX

from ..conftest import pid_alive, wait_until
from ..vllm.conftest import stub_config

pytestmark = pytest.mark.timeout(120)


def servers_alive() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if f"={VLLM_OWNER_PREFIX}".encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return [p for p in found if pid_alive(p)]


async def test_replicas_run_as_placed_dragon_processes(tmp_path) -> None:
    from dragon.native.machine import current

    state = tmp_path / "state.jsonl"
    backend = DragonVllmInferenceBackend(
        name="dv", model=stub_config("--state-file", str(state)), replicas=2
    )
    async with Session(backends=[backend]) as session:
        assert backend.uses_dragon
        starts = [json.loads(line) for line in state.read_text().splitlines()]
        assert len(starts) == 2 and all(s["dragon"] for s in starts)  # started by Dragon
        assert len({s["port"] for s in starts}) == 2
        assert len({s["vllm_port"] for s in starts}) == 2
        wheres = [r.server.where for r in backend._set.replicas]
        # on a GPU node each replica also names its GPUs ("dragon on host GPUs [0]")
        expected = re.compile(rf"dragon on {re.escape(current().hostname)}( GPUs \[[\d, ]+\])?$")
        assert len(wheres) == 2 and all(expected.match(w) for w in wheres), wheres
        tasks = [AITask(prompt=f"p{i}") for i in range(20)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=60)
        assert {t.state for t in tasks} == {TaskState.DONE}
        assert {t.response.rsplit("pid=", 1)[1] for t in tasks} == {str(s["pid"]) for s in starts}
    assert wait_until(lambda: not servers_alive(), timeout=15), servers_alive()


async def test_killed_dragon_replica_is_restarted(tmp_path) -> None:
    state = tmp_path / "state.jsonl"
    backend = DragonVllmInferenceBackend(
        name="dv", model=stub_config("--state-file", str(state), "--delay", "0.5"), replicas=1
    )
    async with Session(backends=[backend]) as session:
        tasks = [AITask(prompt=f"p{i}") for i in range(6)]
        await session.submit_tasks(tasks)
        first = json.loads(state.read_text().splitlines()[0])
        os.kill(first["pid"], signal.SIGKILL)
        await session.wait_tasks(tasks, timeout=60)
        assert {t.state for t in tasks} == {TaskState.DONE}, [t.exception for t in tasks]
        assert backend._set.replicas[0].restarts == 1
        assert len(state.read_text().splitlines()) == 2
    assert wait_until(lambda: not servers_alive(), timeout=15), servers_alive()
