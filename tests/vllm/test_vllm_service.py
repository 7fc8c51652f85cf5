"""The backend's own service logic (start-up failures, balancing, retries, restarts, limits),
against real server processes of a stand-in OpenAI-compatible server (``stub_server.py``)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal

import aiohttp
import pytest

from rhapsody.api import AITask, BackendError, Session, TaskState
from rhapsody_vllm import DragonVllmInferenceBackend, InferenceRequestError, VllmInferenceBackend
from rhapsody_vllm.servers import session_members

from ..conftest import pid_alive, wait_until
from .conftest import stub_config

pytestmark = [pytest.mark.usefixtures("nothing_left"), pytest.mark.timeout(120)]


async def run(session: Session, tasks: list[AITask]) -> list[AITask]:
    await session.submit_tasks(tasks)
    await session.wait_tasks(tasks, timeout=60)
    return tasks


def pid_of(task: AITask) -> str:
    return task.response.rsplit("pid=", 1)[1]


async def test_server_exiting_at_start_up_raises_with_its_log() -> None:
    backend = VllmInferenceBackend(model=stub_config("--exit-at-start", "3"))
    with pytest.raises(BackendError) as err:
        await backend
    message = str(err.value)
    assert "exited with code 3 during start-up" in message
    assert "ValueError: model not found (stub)" in message  # the log's last lines
    await backend.shutdown()


async def test_start_up_timeout_raises_and_kills_the_server() -> None:
    backend = VllmInferenceBackend(model=stub_config("--never-healthy"), startup_timeout=1.5)
    with pytest.raises(BackendError, match=r"(?s)not healthy after 1.5 s.*stub server starting"):
        await backend
    await backend.shutdown()


async def test_one_failing_replica_stops_the_others() -> None:
    backend = VllmInferenceBackend(model=stub_config("--exit-at-start", "1"), replicas=3)
    with pytest.raises(BackendError):
        await backend
    await backend.shutdown()


async def test_replicas_get_distinct_ports_on_loopback(tmp_path) -> None:
    state = tmp_path / "state.jsonl"
    backend = VllmInferenceBackend(model=stub_config("--state-file", str(state)), replicas=3)
    async with Session(backends=[backend]):
        starts = [json.loads(line) for line in state.read_text().splitlines()]
        assert {s["host"] for s in starts} == {"127.0.0.1"}
        assert len({s["port"] for s in starts}) == 3
        assert len({s["vllm_port"] for s in starts}) == 3
        vllm_ports = sorted(int(s["vllm_port"]) for s in starts)
        assert all(b - a >= 16 for a, b in itertools.pairwise(vllm_ports))
        assert sorted(backend.endpoints) == sorted(
            f"http://127.0.0.1:{s['port']}/v1" for s in starts
        )


async def test_requests_spread_over_replicas_by_outstanding_count() -> None:
    backend = VllmInferenceBackend(model=stub_config("--delay", "0.2"), replicas=2)
    async with Session(backends=[backend]) as s:
        tasks = await run(s, [AITask(prompt=f"p{i}") for i in range(40)])
        per_replica: dict[str, int] = {}
        for task in tasks:
            per_replica[pid_of(task)] = per_replica.get(pid_of(task), 0) + 1
        assert sorted(per_replica.values()) == [20, 20]


async def test_in_flight_requests_are_bounded() -> None:
    backend = VllmInferenceBackend(model=stub_config("--delay", "0.1"), max_in_flight=3)
    async with Session(backends=[backend]) as s:
        tasks = await run(s, [AITask(prompt=f"p{i}") for i in range(15)])
        assert {t.state for t in tasks} == {TaskState.DONE}
        async with aiohttp.ClientSession() as http:
            root = backend.endpoints[0].removesuffix("/v1")
            async with http.get(f"{root}/stats") as resp:
                stats = await resp.json()
        assert stats["max_outstanding"] == 3


async def test_sampling_parameters_reach_the_server() -> None:
    backend = VllmInferenceBackend(model=stub_config())
    async with Session(backends=[backend]) as s:
        (task,) = await run(
            s,
            [
                AITask(
                    prompt="p",
                    temperature=0.5,
                    max_tokens=9,
                    top_p=0.9,
                    top_k=5,
                    stop_sequences=["\n"],
                    task_backend_specific_kwargs={"extra_body": {"seed": 7}},
                )
            ],
        )
        params = json.loads(task.response.split("|")[1])
        assert params == {
            "max_tokens": 9,
            "seed": 7,
            "stop": ["\n"],
            "temperature": 0.5,
            "top_k": 5,
            "top_p": 0.9,
        }
        assert task.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


async def test_list_answers_follow_prompt_order_not_reply_order() -> None:
    backend = VllmInferenceBackend(model=stub_config())
    async with Session(backends=[backend]) as s:
        (task,) = await run(s, [AITask(prompt=["a", "b", "c"])])
        assert [r.split("|")[0] for r in task.response] == ["echo:a", "echo:b", "echo:c"]


async def test_killed_replica_requests_retried_on_the_other_and_it_restarts() -> None:
    backend = VllmInferenceBackend(model=stub_config("--delay", "1.0"), replicas=2, max_restarts=1)
    async with Session(backends=[backend]) as s:
        tasks = [AITask(prompt=f"p{i}") for i in range(10)]
        await s.submit_tasks(tasks)
        await asyncio.sleep(0.3)
        victim = backend._set.replicas[0]
        os.killpg(victim.server.pid, signal.SIGKILL)
        await s.wait_tasks(tasks, timeout=60)
        assert {t.state for t in tasks} == {TaskState.DONE}, [t.exception for t in tasks]
        survivor = str(backend._set.replicas[1].server.pid)
        assert sum(pid_of(t) == survivor for t in tasks) >= 5  # the victim's were retried there
        assert wait_until(lambda: len(backend.endpoints) == 2, timeout=30)
        assert victim.restarts == 1


async def test_a_retry_goes_on_a_new_connection_not_another_kept_one() -> None:
    # The server drops every request on a connection it already answered one on (as one that
    # closed its side of a kept-alive connection, or was restarted on the same port, does).
    backend = VllmInferenceBackend(model=stub_config("--drop-reused"))
    async with Session(backends=[backend]) as s:
        tasks = []
        for i in range(6):  # one at a time: each finds the last one's connection kept
            tasks += await run(s, [AITask(prompt=f"p{i}")])
        assert {t.state for t in tasks} == {TaskState.DONE}, [t.exception for t in tasks]
        async with aiohttp.ClientSession() as http:
            root = backend._set.replicas[0].root
            async with http.get(f"{root}/stats") as resp:
                stats = await resp.json()
        assert stats["requests"] == 6  # each answered once: dropped ones never counted


async def test_requests_to_an_endpoint_are_retried_on_a_new_connection() -> None:
    managed = VllmInferenceBackend(name="managed", model=stub_config("--drop-reused"))
    async with Session(backends=[managed]) as s:
        url = managed.endpoints[0]
        external = VllmInferenceBackend(name="external", endpoint=url)
        async with Session(backends=[external]) as s2:
            tasks = []
            for i in range(3):  # the backend's own endpoint, then a task's own
                tasks += await run(s2, [AITask(prompt=f"e{i}")])
                tasks += await run(s, [AITask(prompt=f"t{i}", inference_endpoint=url)])
        assert {t.state for t in tasks} == {TaskState.DONE}, [t.exception for t in tasks]


async def test_restarts_are_bounded_then_tasks_fail_never_hang() -> None:
    # Every server dies at its 2nd request; 2 restarts allowed: 3 servers in all.
    backend = VllmInferenceBackend(model=stub_config("--die-after", "2"), max_restarts=2)
    async with Session(backends=[backend]) as s:
        done = failed = 0
        for i in range(8):
            (task,) = await run(s, [AITask(prompt=f"p{i}")])
            done += task.state is TaskState.DONE
            if task.state is TaskState.FAILED:
                failed += 1
                assert isinstance(task.exception, BackendError)
        assert backend._set.replicas[0].restarts == 2
        assert done == 3 and failed == 5
        assert "no vLLM replica is left" in str(task.exception)


async def test_a_replica_given_up_has_its_tree_stopped_at_once() -> None:
    backend = VllmInferenceBackend(model=stub_config("--engine"), max_restarts=0)
    async with Session(backends=[backend]) as s:
        server = backend._set.replicas[0].server
        (engine,) = set(session_members(server.pid)) - {server.pid}
        os.kill(server.pid, signal.SIGKILL)  # the API server only: its "engine" lives on
        # (waited for in a thread: the event loop runs the backend's watcher meanwhile)
        assert await asyncio.to_thread(wait_until, lambda: not backend.endpoints, 10)
        # not left until shutdown
        assert await asyncio.to_thread(wait_until, lambda: not pid_alive(engine), 10)
        (task,) = await run(s, [AITask(prompt="p")])
        assert isinstance(task.exception, BackendError)


async def test_api_key_is_required_by_the_server() -> None:
    backend = VllmInferenceBackend(model=stub_config(), api_key="s3cret")
    async with Session(backends=[backend]) as s:
        (ok,) = await run(s, [AITask(prompt="p")])
        assert ok.state is TaskState.DONE
        anonymous = VllmInferenceBackend(name="anon", endpoint=backend.endpoints[0])
        async with Session(backends=[anonymous]) as s2:
            (denied,) = await run(s2, [AITask(prompt="p", model="stub-model")])
        assert isinstance(denied.exception, InferenceRequestError)
        assert denied.exception.status == 401 and "invalid api key" in str(denied.exception)


async def test_unreachable_endpoint_fails_at_start() -> None:
    backend = VllmInferenceBackend(endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(BackendError, match="cannot be reached"):
        await backend
    await backend.shutdown()


async def test_shutdown_cancels_outstanding_tasks() -> None:
    backend = VllmInferenceBackend(model=stub_config("--delay", "30"))
    s = Session(backends=[backend])
    await s.start()
    tasks = [AITask(prompt=f"p{i}") for i in range(5)]
    await s.submit_tasks(tasks)
    await asyncio.sleep(0.2)
    await s.close()
    assert {t.state for t in tasks} == {TaskState.CANCELED}
    assert backend.endpoints == []


async def test_dragon_backend_without_the_runtime_runs_local_processes(caplog) -> None:
    assert "DRAGON_MY_PUID" not in os.environ
    backend = DragonVllmInferenceBackend(name="dv", model=stub_config())
    with caplog.at_level(logging.WARNING, logger="rhapsody_vllm"):
        async with Session(backends=[backend]) as s:
            (task,) = await run(s, [AITask(prompt="p")])
    lines = [r.getMessage() for r in caplog.records if "no Dragon runtime" in r.getMessage()]
    assert len(lines) == 1 and "local processes" in lines[0]
    assert task.state is TaskState.DONE and not backend.uses_dragon


@pytest.mark.timeout(300)
async def test_real_vllm_with_a_missing_model_raises_with_its_log(tmp_path) -> None:
    from .conftest import real_config

    backend = VllmInferenceBackend(model=real_config(str(tmp_path / "no-such-model")))
    with pytest.raises(BackendError) as err:
        await backend
    message = str(err.value)
    assert "exited with code" in message and "during start-up" in message
    assert "no-such-model" in message.split("last lines of its log:")[1]  # vLLM's own words
    await backend.shutdown()


async def test_requests_canceled_before_they_start_free_their_slots() -> None:
    backend = VllmInferenceBackend(model=stub_config(), max_in_flight=2)
    async with Session(backends=[backend]) as s:
        for _ in range(3):  # canceled in the same loop turn as submitted: never started
            early = [AITask(prompt="p"), AITask(prompt="q")]
            await s.submit_tasks(early)
            assert await s.cancel_tasks(early) == 2
        later = await run(s, [AITask(prompt=f"p{i}") for i in range(5)])
        assert {t.state for t in later} == {TaskState.DONE}
        assert backend._in_flight == 0 and not backend._running


async def test_shutdown_while_replicas_start_leaves_nothing() -> None:
    backend = VllmInferenceBackend(
        model=stub_config("--never-healthy"), replicas=2, startup_timeout=60
    )
    waiting = asyncio.ensure_future(backend._ensure_initialized())
    await asyncio.sleep(1.0)
    assert not waiting.done()
    await backend.shutdown()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_request_whose_completion_raises_ends_failed_and_the_others_done(
    monkeypatch,
) -> None:
    """Writing the answer onto the task is the last step of a request: should it raise, that
    task ends FAILED (not RUNNING for ever) and the others are not held up."""
    backend = VllmInferenceBackend(model=stub_config())
    async with Session(backends=[backend]) as s:
        tasks = [AITask(prompt=f"p{i}") for i in range(4)]
        doomed = tasks[1]
        report = backend.report

        def reporting(task, state):
            if task is doomed and state is TaskState.DONE:
                raise RuntimeError("the answer could not be kept")
            return report(task, state)

        monkeypatch.setattr(backend, "report", reporting)
        await run(s, tasks)
    assert doomed.state is TaskState.FAILED
    assert "the answer could not be kept" in str(doomed.exception)
    assert [t.state for t in tasks if t is not doomed] == [TaskState.DONE] * 3


async def test_a_look_at_a_replica_that_raises_does_not_end_the_watch(monkeypatch) -> None:
    """The watcher notices a replica that died while idle: a look that raised once (a log it
    could not read, say) must not have ended the watching."""
    backend = VllmInferenceBackend(model=stub_config(), max_restarts=1)
    async with Session(backends=[backend]) as s:
        service = backend._service
        assert service is not None
        real_check, looks = service.check, []

        def check(replica):
            looks.append(replica.index)
            if len(looks) == 1:
                raise OSError(5, "Input/output error")
            real_check(replica)

        monkeypatch.setattr(service, "check", check)
        await asyncio.to_thread(wait_until, lambda: len(looks) >= 2, 10)
        victim = backend._set.replicas[0]
        os.killpg(victim.server.pid, signal.SIGKILL)  # idle: only the watcher can see it
        assert await asyncio.to_thread(wait_until, lambda: victim.restarts == 1, 30)
        assert await asyncio.to_thread(wait_until, lambda: len(backend.endpoints) == 1, 30)
        (task,) = await run(s, [AITask(prompt="after")])
        assert task.state is TaskState.DONE
