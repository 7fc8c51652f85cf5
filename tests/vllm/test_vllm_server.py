"""The vLLM backend against a real vLLM server (one per test run, started by the backend).

The model has random weights, so answers are gibberish: the tests check what the backend
controls (routing, order, token counts, errors, timeouts, faults), with ``ignore_eos`` making
token counts exact and ``temperature=0`` making answers repeatable.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import aiohttp
import pytest

from rhapsody.api import (
    AITask,
    BackendError,
    ComputeTask,
    Session,
    TaskState,
    TaskTimeoutError,
)
from rhapsody_vllm import InferenceRequestError, VllmInferenceBackend

from ..conftest import wait_until
from .conftest import sockets_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

EXACT = {"extra_body": {"ignore_eos": True}}  # generate exactly max_tokens tokens


async def run(session: Session, *tasks: AITask) -> list[AITask]:
    await session.submit_tasks(list(tasks))
    await session.wait_tasks(list(tasks))
    return list(tasks)


async def test_user_code_from_the_issue(session: Session, tmp_path) -> None:
    script = tmp_path / "simulate.sh"
    script.write_text("#!/bin/sh\necho simulated 42\n")
    script.chmod(0o755)
    sim_task = ComputeTask(executable=str(script), backend="hpc_cluster")
    summary_task = AITask(prompt="Summarize the simulation findings: ...", backend="vllm_test")
    await session.submit_tasks([sim_task, summary_task])
    await sim_task
    assert sim_task.return_value.strip() == "simulated 42"
    await summary_task
    assert isinstance(summary_task.response, str)
    assert summary_task.usage["prompt_tokens"] > 0


async def test_ai_task_without_backend_goes_to_the_inference_backend(session: Session) -> None:
    (task,) = await run(session, AITask(prompt="Hello world", max_tokens=4))
    assert task.state is TaskState.DONE and task.backend == "vllm_test"
    # where and when: the replica that answered, and the times of the request
    assert task.host == "127.0.0.1" and task.worker.startswith("replica http://127.0.0.1:")
    assert task.submitted_at <= task.started_at <= task.ended_at and task.run_time > 0


async def test_max_tokens_and_usage(session: Session) -> None:
    (task,) = await run(
        session, AITask(prompt="Hello world", max_tokens=7, task_backend_specific_kwargs=EXACT)
    )
    assert task.usage["completion_tokens"] == 7
    assert task.usage["total_tokens"] == task.usage["prompt_tokens"] + 7


async def test_list_of_prompts_answered_in_order(session: Session) -> None:
    prompts = ["The quick brown fox", "Hello world", "Scientists run workflows"]
    greedy = {"temperature": 0.0, "max_tokens": 6, "task_backend_specific_kwargs": EXACT}
    batch, *singles = await run(
        session,
        AITask(prompt=prompts, **greedy),
        *(AITask(prompt=p, **greedy) for p in prompts),
    )
    assert batch.response == [t.response for t in singles]
    assert batch.usage["completion_tokens"] == 18


async def test_system_prompt_uses_the_chat_endpoint(session: Session) -> None:
    plain, chat = await run(
        session,
        AITask(prompt="Hello", max_tokens=3),
        AITask(prompt="Hello", system_prompt="You are terse.", max_tokens=3),
    )
    assert isinstance(chat.response, str)
    # The chat template wraps both messages: more prompt tokens than the bare prompt.
    assert chat.usage["prompt_tokens"] > plain.usage["prompt_tokens"] + 3


async def test_chat_with_a_list_of_prompts(session: Session) -> None:
    (task,) = await run(
        session,
        AITask(
            prompt=["a", "b"],
            system_prompt="sys",
            max_tokens=2,
            **{"task_backend_specific_kwargs": EXACT},
        ),
    )
    assert len(task.response) == 2 and task.usage["completion_tokens"] == 4


async def test_server_error_fails_that_task_with_the_servers_message(session: Session) -> None:
    too_long, fine = await run(
        session, AITask(prompt="word " * 400), AITask(prompt="Hello", max_tokens=2)
    )
    assert too_long.state is TaskState.FAILED
    assert isinstance(too_long.exception, InferenceRequestError)
    assert too_long.exception.status == 400
    assert "maximum context length" in str(too_long.exception)
    assert fine.state is TaskState.DONE


async def test_unknown_model_name_fails_with_the_servers_message(session: Session) -> None:
    (task,) = await run(session, AITask(prompt="Hello", model="no-such-model"))
    assert task.state is TaskState.FAILED and "no-such-model" in str(task.exception)


async def test_timeout_fails_the_task_and_the_rest_carry_on(session: Session) -> None:
    slow = AITask(prompt="Hello", max_tokens=250, task_backend_specific_kwargs=EXACT, timeout=0.02)
    quick = AITask(prompt="Hello", max_tokens=2)
    await run(session, slow, quick)
    assert slow.state is TaskState.FAILED and isinstance(slow.exception, TaskTimeoutError)
    assert quick.state is TaskState.DONE


async def test_cancel_a_running_request(session: Session) -> None:
    task = AITask(prompt="Hello", max_tokens=250, task_backend_specific_kwargs=EXACT)
    await session.submit_tasks([task])
    assert await session.cancel_tasks([task]) == 1
    assert task.state is TaskState.CANCELED


async def test_many_requests_in_flight(session: Session) -> None:
    tasks = [AITask(prompt=f"Hello {i}", max_tokens=16) for i in range(128)]
    await run(session, *tasks)
    assert {t.state for t in tasks} == {TaskState.DONE}


async def test_endpoints_serve_a_plain_openai_client(served: VllmInferenceBackend) -> None:
    (url,) = served.endpoints
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/completions", json={"model": "tiny", "prompt": "Hi", "max_tokens": 2}
        ) as resp:
            assert resp.status == 200
            assert len((await resp.json())["choices"]) == 1


async def test_endpoint_mode_and_per_task_endpoint(served: VllmInferenceBackend) -> None:
    (url,) = served.endpoints
    backend = VllmInferenceBackend(name="existing", endpoint=url)  # model found at /v1/models
    async with Session(backends=[backend]) as s:
        assert backend.model_name == "tiny"
        tasks = await run(
            s,
            AITask(prompt="Hello", max_tokens=2),
            AITask(prompt="Hello", max_tokens=2, inference_endpoint=url),
        )
        assert {t.state for t in tasks} == {TaskState.DONE}
    assert served.endpoints == [url]  # closing that session left the managed server alone


async def test_telemetry_samples_replicas_and_counts_tokens(served: VllmInferenceBackend) -> None:
    (url,) = served.endpoints
    backend = VllmInferenceBackend(name="measured", endpoint=url)
    session = Session(backends=[backend])
    telemetry = await session.start_telemetry(resource_poll_interval=0.1)
    events = []
    telemetry.subscribe(events.append)
    tasks = [
        AITask(prompt="Hello", max_tokens=5, task_backend_specific_kwargs=EXACT) for _ in range(4)
    ]
    async with session:
        await run(session, *tasks)
        await asyncio.sleep(0.3)
    samples = [e for e in events if e.event_type == "ResourceUpdate"]
    root = url.removesuffix("/v1")
    assert samples and {e.node_id for e in samples} == {root}
    assert all(e.backend == "measured" and e.attributes["host"] == "127.0.0.1" for e in samples)
    assert all(e.attributes["requests_running"] >= 0 for e in samples)
    assert all(e.attributes["requests_waiting"] >= 0 for e in samples)
    done = [e for e in events if e.event_type == "TaskCompleted"]
    assert len(done) == 4
    assert all(
        e.attributes["completion_tokens"] == 5 and e.attributes["prompt_tokens"] > 0 for e in done
    )
    spans = [s for s in telemetry.read_traces() if s.name == "task"]
    assert all(
        s.attributes["task_type"] == "AITask" and s.attributes["completion_tokens"] == 5
        for s in spans
    )


async def test_vllm_sockets_live_in_the_backends_directory(served: VllmInferenceBackend) -> None:
    assert sockets_in(os.path.join(served._log_dir or "", "sockets-0"))


# -- faults of the real server (last: they kill it) ------------------------------------------------


async def _kill_during(session: Session, backend: VllmInferenceBackend) -> list[AITask]:
    """Submit long requests and SIGKILL the server while they are in flight.

    The kill comes as soon as the backend has as many requests out as it sends at once -- not
    after a fixed sleep, which a fast machine outruns -- and returns the tasks. Three times that
    many are submitted: 64 x 240 tokens of the tiny model took under 0.05 s on a fast machine,
    and while the first requests are answered the next ones go out, so some are still in flight
    when the kill comes whatever the machine's speed.
    """
    # A replica restarted by an earlier test (or still restarting) must be serving first.
    await _until(lambda: bool(backend.endpoints), 300)
    (replica,) = backend._set.replicas
    at_once = backend._limit  # requests the backend keeps outstanding (64 per replica)
    tasks = [
        AITask(prompt="Hello", max_tokens=240, task_backend_specific_kwargs=EXACT)
        for _ in range(3 * at_once)
    ]
    await session.submit_tasks(tasks)

    def out() -> bool:  # all it sends at once are out (or the first are answered already)
        states = [t.state for t in tasks]
        return states.count(TaskState.RUNNING) >= at_once or TaskState.DONE in states

    await _until(out, 30, step=0.001)
    await asyncio.sleep(0.05)  # the requests reach the server; 240 decode steps take far longer
    in_flight = [t for t in tasks if t.state is TaskState.RUNNING]
    os.kill(replica.server.pid, signal.SIGKILL)  # the API server crashes; its engine follows
    assert in_flight, [t.state for t in tasks]
    return tasks


async def _until(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def test_killed_replica_is_restarted_and_its_requests_retried(
    session: Session, served: VllmInferenceBackend
) -> None:
    (before,) = served.endpoints
    tasks = await _kill_during(session, served)
    await session.wait_tasks(tasks, timeout=300)
    failed = [str(t.exception) for t in tasks if t.state is not TaskState.DONE]
    assert not failed, failed
    assert served._set.replicas[0].restarts == 1
    assert served.endpoints and served.endpoints != [before]


async def test_no_replica_left_fails_outstanding_tasks(
    session: Session, served: VllmInferenceBackend
) -> None:
    tasks = await _kill_during(session, served)  # max_restarts=1 is used up
    await session.wait_tasks(tasks, timeout=60)
    # An answer already on its way when the server died may still arrive: DONE is fine for it.
    failed = [t for t in tasks if t.state is TaskState.FAILED]
    assert failed and {t.state for t in tasks} <= {TaskState.DONE, TaskState.FAILED}
    assert all(isinstance(t.exception, BackendError) for t in failed)
    assert any("no vLLM replica is left" in str(t.exception) for t in failed)
    late = AITask(prompt="Hello")
    await run(session, late)
    assert late.state is TaskState.FAILED
    assert wait_until(lambda: not served.endpoints)
