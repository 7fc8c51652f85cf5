"""rhapsody-py 0.6 user code runs unchanged: its names, module paths and backend methods, used
the way rhapsody-py's own docs and examples use them, on the concurrent backend."""

from __future__ import annotations

import asyncio
import importlib
import io
import logging

import pytest

import rhapsody


def square(x):
    return x * x


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "rhapsody",
            "ComputeTask AITask BaseTask Session RhapsodyError BackendError TaskValidationError "
            "TaskExecutionError SessionError ResourceError enable_logging BackendRegistry "
            "get_backend discover_backends",
        ),
        ("rhapsody.api", "ComputeTask AITask BaseTask Session RhapsodyError SessionError"),
        ("rhapsody.api.session", "Session"),
        ("rhapsody.api.task", "ComputeTask AITask BaseTask"),
        ("rhapsody.api.errors", "TaskExecutionError RhapsodyError BackendError"),
        (
            "rhapsody.backends",
            "discover_backends get_backend BackendRegistry BaseBackend Session TasksMainStates "
            "StateMapper ConcurrentExecutionBackend",
        ),
        ("rhapsody.backends.constants", "TasksMainStates StateMapper BackendMainStates"),
        ("rhapsody.backends.base", "BaseBackend"),
        ("rhapsody.backends.discovery", "BackendRegistry get_backend discover_backends"),
        ("rhapsody.backends.execution", "ConcurrentExecutionBackend"),
        ("rhapsody.backends.execution.concurrent", "ConcurrentExecutionBackend"),
        ("rhapsody.logger", "enable_logging"),
    ],
)
def test_every_rhapsody_py_name_is_where_its_code_imports_it(module, names):
    found = importlib.import_module(module)
    for name in names.split():
        assert getattr(found, name) is not None, f"{module}.{name}"


def test_rhapsody_ai_is_the_inference_namespace():
    ai = importlib.import_module("rhapsody.backends.ai")
    inference = importlib.import_module("rhapsody.backends.inference")
    assert ai.EchoInferenceBackend is inference.EchoInferenceBackend  # the example plugin's


def test_version_is_the_version_string():
    assert isinstance(rhapsody.version, str) and rhapsody.version == rhapsody.__version__


def test_enable_logging_sends_rhapsody_records_to_the_stream():
    stream = io.StringIO()
    try:
        rhapsody.enable_logging(logging.DEBUG, stream=stream)
        logging.getLogger("rhapsody.example").debug("hello from rhapsody")
        rhapsody.enable_logging("INFO", stream=stream)  # replaces its handler, no duplicates
        logging.getLogger("rhapsody.example").info("once")
    finally:
        logger = logging.getLogger("rhapsody")
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    text = stream.getvalue()
    assert "hello from rhapsody" in text and text.count("once") == 1
    assert "DEBUG" in text and "[rhapsody.example]" in text


async def test_the_quick_start_runs_unchanged():
    # rhapsody-py docs/getting-started/quick-start.md, with 64 tasks instead of 1024
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend(name="local")
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="/bin/echo", arguments=[f"Task {i}"]) for i in range(64)]
        await session.submit_tasks(tasks)
        await asyncio.gather(*tasks)
        lines = [f"{t.uid}: {t.state} (Output: {t.stdout.strip()})" for t in tasks]
    assert lines[0].endswith(": DONE (Output: Task 0)") and len(lines) == 64


async def test_wait_modes_and_results_as_rhapsody_py_documents_them():
    from rhapsody.api import ComputeTask, Session
    from rhapsody.api.errors import TaskExecutionError
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tasks = [
            ComputeTask(function=square, args=(3,)),
            ComputeTask(executable="/bin/sh", arguments=["-c", "exit 2"]),
        ]
        futures = await session.submit_tasks(tasks)
        done = await session.wait_tasks(tasks, timeout=30.0)
        assert [r["state"] for r in done] == ["DONE", "FAILED"]
        assert [r["uid"] for r in done] == [t.uid for t in tasks]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is tasks[0] and isinstance(results[1], TaskExecutionError)
        assert tasks[0].return_value == 9
        with pytest.raises(RuntimeError, match="not been submitted"):
            await rhapsody.ComputeTask(function=square, args=(1,))


async def test_dict_tasks_are_kept_up_to_date_like_rhapsody_py_does():
    from rhapsody.backends import ConcurrentExecutionBackend

    async with rhapsody.Session(backends=[await ConcurrentExecutionBackend()]) as session:
        ok = {"uid": "d.ok", "executable": "/bin/echo", "arguments": ["hi"], "tag": "a"}
        fn = {"function": square, "args": (5,)}  # no uid: one is written into the dict
        bad = {"uid": "d.bad", "executable": "/bin/sh", "arguments": ["-c", "exit 4"]}
        await session.submit_tasks([ok, fn, bad])
        results = await session.wait_tasks([ok, fn, bad])
    assert [r["uid"] for r in results] == ["d.ok", fn["uid"], "d.bad"]
    assert [r["state"] for r in results] == ["DONE", "DONE", "FAILED"]
    assert ok["state"] == "DONE" and ok["stdout"] == "hi\n" and ok["exit_code"] == 0
    assert ok["backend"] == "concurrent" and results[0]["tag"] == "a"
    assert fn["state"] == "DONE" and fn["return_value"] == 25
    assert bad["state"] == "FAILED" and bad["exit_code"] == 4 and bad["exception"] is not None


async def test_a_refused_batch_of_dicts_leaves_them_untouched():
    from rhapsody.backends import ConcurrentExecutionBackend

    async with rhapsody.Session(backends=[await ConcurrentExecutionBackend()]) as session:
        ok = {"uid": "r.ok", "executable": "/bin/true"}
        with pytest.raises(rhapsody.TaskValidationError):
            await session.submit_tasks([ok, {"executable": "/bin/true", "timeout": -1}])
        assert "state" not in ok and not session.tasks and not session._sources
        await session.submit_tasks([ok])  # and it can be submitted afterwards
        await session.wait_tasks([ok])
    assert ok["state"] == "DONE" and not session._sources


async def test_callbacks_several_of_them_survive_add_backend_and_see_every_state():
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()
    first, second = [], []
    backend.register_callback(lambda task, state: first.append((task["uid"], state)))
    async with rhapsody.Session(backends=[backend]) as session:  # rhapsody-py replaced `first`
        backend.register_callback(lambda task, state: second.append((task["uid"], state)))
        tasks = [
            rhapsody.ComputeTask(function=square, args=(2,), uid="cb.ok"),
            rhapsody.ComputeTask(executable="/bin/false", uid="cb.fail"),
            rhapsody.ComputeTask(executable="/bin/sleep", arguments=["30"], uid="cb.cancel"),
        ]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks[:2])
        while tasks[2].state != "RUNNING":
            await asyncio.sleep(0.01)
        assert await backend.cancel_task("cb.cancel") is True
        assert await backend.cancel_task("cb.cancel") is False  # ended already
    for seen in (first, second):
        by_uid = {}
        for uid, state in seen:
            by_uid.setdefault(uid, []).append(str(state))
        assert by_uid == {
            "cb.ok": ["RUNNING", "DONE"],
            "cb.fail": ["RUNNING", "FAILED"],
            "cb.cancel": ["RUNNING", "CANCELED"],
        }


async def test_a_raising_callback_is_logged_and_harmless(caplog):
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()

    def broken(task, state):
        raise ValueError("callback bug")

    backend.register_callback(broken)
    async with rhapsody.Session(backends=[backend]) as session:
        task = rhapsody.ComputeTask(function=square, args=(4,))
        await session.submit_tasks([task])
        assert (await task).return_value == 16
    assert "callback bug" in caplog.text


async def test_callbacks_outside_a_session():
    from rhapsody.backends.inference import EchoInferenceBackend

    backend = await EchoInferenceBackend()
    seen = []
    backend.register_callback(lambda task, state: seen.append(str(state)))
    task = rhapsody.AITask(prompt="abc")
    await backend.submit_tasks([task])
    for _ in range(100):
        if task.state == "DONE":
            break
        await asyncio.sleep(0.01)
    assert seen[-1] == "DONE" and seen.count("DONE") == 1 and task.response == "cba"
    backend.report(task, rhapsody.TaskState.FAILED)  # terminal states stay final
    assert task.state == "DONE" and len(seen) <= 2
    await backend.shutdown()


async def test_backend_state_map_and_build_task():
    from rhapsody.backends import ConcurrentExecutionBackend
    from rhapsody.backends.constants import TasksMainStates

    backend = ConcurrentExecutionBackend()
    assert backend.state() == "INITIALIZED" and await backend.state() == "INITIALIZED"
    await backend
    mapper = backend.get_task_states_map()
    assert mapper.terminal_states == ("DONE", "FAILED", "CANCELED")
    assert mapper.to_main_state("DONE") is TasksMainStates.DONE and mapper.RUNNING == "RUNNING"
    built = backend.build_task({"executable": "/bin/true", "uid": "b1"})
    assert built.uid == "b1"
    with pytest.raises(rhapsody.TaskValidationError, match="shell"):
        backend.build_task({"function": square, "task_backend_specific_kwargs": {"shell": 1}})
    async with rhapsody.Session(backends=[backend]) as session:
        await session.submit_tasks([built])
        await built
        assert await backend.state() == "RUNNING"
        assert backend.is_attached and backend.attached_to == [session.uid]
    assert backend.state() == "SHUTDOWN"
    assert not backend.supports_implicit_data_linking
    assert backend.link_explicit_data_deps(file_name="x") is None


def test_discovery_and_registry_as_rhapsody_py_code_reads_them():
    from rhapsody.backends import BackendRegistry, ConcurrentExecutionBackend

    available = rhapsody.discover_backends()
    assert available["concurrent"] and not available["example_broken"]
    assert BackendRegistry.get_backend_class("concurrent") is ConcurrentExecutionBackend
    assert "concurrent" in BackendRegistry.list_backends()
    backend = rhapsody.get_backend("concurrent", name="mine")
    assert isinstance(backend, ConcurrentExecutionBackend) and backend.name == "mine"
    with pytest.raises(ValueError, match="no backend named 'nope'"):
        rhapsody.get_backend("nope")


async def test_a_raising_callback_outside_a_session_loses_no_state(caplog):
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()
    seen = []

    def broken(task, state):
        raise ValueError("callback bug")

    backend.register_callback(broken)  # first: the one after it must still be called
    backend.register_callback(lambda task, state: seen.append((task.uid, str(state))))
    tasks = [rhapsody.ComputeTask(function=square, args=(i,), uid=f"cb.{i}") for i in range(5)]
    await backend.submit_tasks(tasks)
    for _ in range(500):
        if all(t.state == "DONE" for t in tasks):
            break
        await asyncio.sleep(0.01)
    await backend.shutdown()
    assert [t.return_value for t in tasks] == [0, 1, 4, 9, 16]
    assert sorted(seen) == sorted((f"cb.{i}", s) for i in range(5) for s in ("RUNNING", "DONE"))
    assert "callback bug" in caplog.text
