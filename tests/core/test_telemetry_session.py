"""Telemetry of a real session on the concurrent backend, through rhapsody-py 0.6's API."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
import time
from collections import Counter

import pytest

from rhapsody import ComputeTask, Session
from rhapsody.api import SessionError
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.telemetry import (
    TaskFailed,
    TelemetryReader,
    TelemetrySubscriber,
    define_event,
    make_event,
)

from ..conftest import child_pids

pytestmark = pytest.mark.timeout(120)


def square(x: int) -> int:
    return x * x


def boom() -> None:
    raise ValueError("bad input 42")


def lines_of(directory: str) -> list[dict]:
    (name,) = os.listdir(directory)
    assert name.endswith(".telemetry.jsonl")
    with open(os.path.join(directory, name)) as fh:
        return [json.loads(line) for line in fh]


def metric_sum(metrics, name: str) -> float:
    total = 0.0
    for rm in metrics.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for dp in metric.data.data_points:
                        total += getattr(dp, "value", getattr(dp, "count", 0))
    return total


async def test_rhapsody_py_quickstart_runs_unchanged(tmp_path) -> None:
    # rhapsody-py 0.6.0's docs/telemetry/quickstart.md, as written there
    backend = ConcurrentExecutionBackend(num_workers=4)
    session = Session(backends=[backend])
    telemetry = await session.start_telemetry(
        resource_poll_interval=0.05,
        checkpoint_path=str(tmp_path),
    )
    tasks = [ComputeTask(executable="/bin/sleep", arguments=["0.1"]) for _ in range(6)]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    summary = telemetry.summary()
    assert summary["tasks"] == {
        "submitted": 6,
        "completed": 6,
        "failed": 0,
        "canceled": 0,
        "running": 0,
    }
    assert 0.09 < summary["duration"]["min_seconds"] <= summary["duration"]["max_seconds"]
    (node,) = summary["resources"].values()
    assert node["backend"] == "concurrent" and 0 <= node["cpu_percent"] <= 100
    assert summary["duration_seconds"] >= 0.1
    assert session.get_telemetry() is telemetry
    for span in telemetry.task_spans():
        assert span["status"] == "completed" and span["duration_seconds"] >= 0.1
        assert span["trace_id"].startswith("0x") and span["span_id"].startswith("0x")


async def test_every_event_of_every_task_reaches_subscribers_and_file(tmp_path) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path, resource_poll_interval=0.05)
    received = []
    telemetry.subscribe(received.append)
    telemetry.subscribe(lambda e: None)
    tasks = [ComputeTask(function=square, args=(i,)) for i in range(2000)] + [
        ComputeTask(function=boom)
    ]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    # everything was delivered before close() returned: no sleep needed
    kinds = Counter(e.event_type for e in received)
    for kind in ("TaskCreated", "TaskSubmitted", "TaskQueued", "TaskStarted"):
        assert kinds[kind] == 2001, kinds
    assert kinds["TaskCompleted"] == 2000 and kinds["TaskFailed"] == 1
    assert kinds["SessionStarted"] == 1 and kinds["SessionEnded"] == 1
    assert kinds["ResourceUpdate"] >= 1
    assert received[0].event_type == "SessionStarted"
    assert received[-1].event_type == "SessionEnded"
    # per task: the lifecycle in order, with its own times
    by_task: dict[str, list] = {}
    for event in received:
        if event.task_id:
            by_task.setdefault(event.task_id, []).append(event)
    task = tasks[0]
    events = by_task[task.uid]
    assert [e.event_type for e in events] == [
        "TaskCreated",
        "TaskSubmitted",
        "TaskQueued",
        "TaskStarted",
        "TaskCompleted",
    ]
    assert events[1].event_time == task.submitted_at and events[3].event_time == task.started_at
    assert events[4].event_time == task.ended_at
    assert events[4].duration_seconds == pytest.approx(task.ended_at - task.started_at)
    assert events[3].node_id == task.host and events[3].attributes["worker"] == task.worker
    assert events[4].attributes == {
        "executable": "square",
        "task_type": "ComputeTask",
        "worker": task.worker,
    }
    assert all(e.emit_time >= e.event_time - 1e-3 for e in events)
    (failed,) = [e for e in received if isinstance(e, TaskFailed)]
    assert failed.error_type == "ValueError" and failed.attributes["error_type"] == "ValueError"
    assert failed.attributes["error"] == "ValueError: bad input 42"
    # the file holds the same events, with the same ids and fields, and a span per task
    lines = lines_of(str(tmp_path))
    sections = Counter(line["section"] for line in lines)
    assert sections["span"] == 2002 and sections["metric"] >= 1
    file_events = {line["event_id"]: line for line in lines if line["section"] == "event"}
    assert len(file_events) == len(received)
    for event in received:
        line = file_events[event.event_id]
        assert line["name"] == line["event_type"] == event.event_type
        for field, value in vars(event).items():
            assert line[field] == pytest.approx(value) if isinstance(value, float) else True
            if not isinstance(value, float):
                assert line[field] == value, (field, line, event)
    spans = [line for line in lines if line["section"] == "span" and line["name"] == "task"]
    (session_span,) = [
        line for line in lines if line["section"] == "span" and line["name"] == "session"
    ]
    assert {s["parent_span_id"] for s in spans} == {session_span["span_id"]}
    assert len({s["span_id"] for s in spans}) == 2001
    span_of = {s["attributes"]["task_id"]: s for s in spans}
    line = file_events[by_task[task.uid][4].event_id]
    assert (
        line["span_id"] == span_of[task.uid]["span_id"]
        and line["trace_id"] == span_of[task.uid]["trace_id"]
    )
    final = [line for line in lines if line["section"] == "metric"][-1]
    assert final["tasks_submitted"] == 2001 and final["tasks_completed"] == 2000
    assert final["tasks_failed"] == 1 and final["tasks_running"] == 0


async def test_metrics_and_traces_are_opentelemetry_objects() -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry()
    tasks = [ComputeTask(function=square, args=(i,)) for i in range(50)] + [
        ComputeTask(function=boom)
    ]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        middle = telemetry.read_metrics()  # read while running, then again after
        assert metric_sum(middle, "tasks_submitted") == 51
    metrics = telemetry.read_metrics()
    assert metric_sum(metrics, "tasks_submitted") == 51
    assert metric_sum(metrics, "tasks_started") == 51
    assert metric_sum(metrics, "tasks_completed") == 50
    assert metric_sum(metrics, "tasks_failed") == 1
    assert metric_sum(metrics, "tasks_running") == 0
    assert metric_sum(metrics, "task_duration_seconds") == 51
    names = {
        m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert {"tasks_submitted", "tasks_completed", "tasks_failed", "task_duration_seconds"} <= names
    for rm in metrics.resource_metrics:  # low cardinality: no per-task time series
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for dp in metric.data.data_points:
                    assert "task_id" not in dp.attributes
    spans = telemetry.read_traces()
    task_spans = [s for s in spans if s.name == "task"]
    (session_span,) = [s for s in spans if s.name == "session"]
    assert len(task_spans) == 51 and session_span.end_time is not None
    assert {s.attributes["status"] for s in task_spans} == {"completed", "failed"}
    assert all(s.parent.span_id == session_span.context.span_id for s in task_spans)
    assert all(s.context.trace_id == session_span.context.trace_id for s in task_spans)
    by_uid = {s.attributes["task_id"]: s for s in task_spans}
    span, task = by_uid[tasks[0].uid], tasks[0]
    assert span.start_time == int(task.submitted_at * 1e9) and span.end_time == int(
        task.ended_at * 1e9
    )
    assert by_uid[tasks[-1].uid].status.status_code.name == "ERROR"
    reader = TelemetryReader(telemetry)
    assert [s.attributes["task_id"] for s in reader.read_traces(task_id=task.uid)] == [task.uid]
    assert len(reader.read_traces(session_id=session.uid)) == 52
    assert metric_sum(reader.read_metrics(), "tasks_completed") == 50


async def test_export_as_otlp_parses_as_an_otlp_request(tmp_path) -> None:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry()
    tasks = [ComputeTask(function=square, args=(i,)) for i in range(5)] + [
        ComputeTask(function=boom)
    ]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    path = tmp_path / "out" / "trace.json"
    text = telemetry.export_as_otlp(str(path))
    assert path.read_text() == text
    payload = json.loads(text)
    # OTLP/JSON writes ids as hex; protobuf's JSON mapping reads bytes as base64.
    for rs in payload["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    request = json_format.Parse(json.dumps(payload), ExportTraceServiceRequest())
    spans = request.resource_spans[0].scope_spans[0].spans
    assert len(spans) == 7
    assert all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in spans)
    task_spans = [s for s in spans if s.name == "task"]
    assert {s.status.code for s in task_spans} == {1, 2}  # OK, ERROR
    assert all(s.kind == 1 for s in spans)  # SPAN_KIND_INTERNAL
    attributes = {kv.key: kv.value for kv in task_spans[0].attributes}
    assert attributes["backend"].string_value == "concurrent"
    resource = {
        kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "rhapsody" and resource["session_id"] == session.uid


async def test_span_processors_and_metric_readers_get_the_data() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(
        span_processors=[SimpleSpanProcessor(exporter)],
        metric_readers=[reader],
        resource=Resource.create({"service.name": "my-workflow"}),
    )
    tasks = [ComputeTask(function=square, args=(i,)) for i in range(30)]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans).count("task") == 30 and spans[-1].name == "session"
    assert spans[0].resource.attributes["service.name"] == "my-workflow"
    assert metric_sum(reader.get_metrics_data(), "tasks_completed") == 30
    assert telemetry.task_count()["completed"] == 30


async def test_async_raising_and_slow_subscribers(caplog) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry()
    loop_thread, seen_async, seen_after = [], [], []
    release = threading.Event()

    async def on_event(event) -> None:
        loop_thread.append(threading.current_thread() is threading.main_thread())
        seen_async.append(event.event_type)

    def broken(event) -> None:
        raise RuntimeError("subscriber bug")

    def slow(event) -> None:
        release.wait(5)  # blocks the dispatch thread, never the loop

    TelemetrySubscriber(telemetry).subscribe(on_event)
    telemetry.subscribe(broken)
    telemetry.subscribe(slow)
    telemetry.subscribe(lambda e: seen_after.append(e.event_type))
    tasks = [ComputeTask(function=square, args=(i,)) for i in range(20)]
    caplog.set_level(logging.ERROR)
    async with session:
        start = time.monotonic()
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        assert time.monotonic() - start < 4  # the tasks did not wait for the slow subscriber
        release.set()
    assert seen_async.count("TaskCompleted") == 20 and all(loop_thread)
    assert seen_after.count("TaskCompleted") == 20  # the one after the broken one got them all
    assert "subscriber bug" in caplog.text


async def test_custom_events_reach_file_and_subscribers(tmp_path) -> None:
    Checked = define_event("myapp.DataChecked", score=float, rows=int, label=(str, "none"))
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path)
    got = []
    telemetry.subscribe(got.append)
    async with session:
        telemetry.emit(
            make_event(Checked, session_id=telemetry.session_id, backend="app", score=0.9)
        )
    (event,) = [e for e in got if e.event_type == "myapp.DataChecked"]
    assert event.score == 0.9 and event.rows == 0 and event.label == "none"
    (line,) = [x for x in lines_of(str(tmp_path)) if x.get("event_type") == "myapp.DataChecked"]
    assert line["score"] == 0.9 and line["section"] == "event" and line["backend"] == "app"


async def test_bad_input_is_refused_before_anything_runs(tmp_path) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    with pytest.raises(RuntimeError, match="start_telemetry"):
        session.get_telemetry()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"checkpoint_path: expected a writable directory"):
        await session.start_telemetry(checkpoint_path=blocker / "sub")
    with pytest.raises(ValueError, match=r"resource_poll_interval: expected a number > 0"):
        await session.start_telemetry(resource_poll_interval=0)
    with pytest.raises(
        ValueError, match=r"checkpoint_interval: expected a number > 0 or None, got 'x'"
    ):
        await session.start_telemetry(checkpoint_interval="x")
    with pytest.raises(ValueError, match=r"span_processors\[0\]: expected a span processor"):
        await session.start_telemetry(span_processors=["exporter"], checkpoint_path=tmp_path)
    with pytest.raises(ValueError, match=r"metric_readers\[0\]: expected an opentelemetry"):
        await session.start_telemetry(metric_readers=[object()])
    with pytest.raises(ValueError, match=r"resource: expected an opentelemetry.sdk.resources"):
        await session.start_telemetry(resource={"service.name": "x"})
    assert os.listdir(tmp_path) == ["a-file"]  # refused before a checkpoint file was made
    telemetry = await session.start_telemetry()
    with pytest.raises(TypeError, match=r"subscribe: callback: expected a callable, got 42"):
        telemetry.subscribe(42)
    with pytest.raises(SessionError, match="already started"):
        await session.start_telemetry()
    async with session:
        await session.submit_tasks([ComputeTask(function=square, args=(1,))])
    late = Session(backends=[ConcurrentExecutionBackend()])
    async with late:
        await late.submit_tasks([ComputeTask(function=square, args=(1,))])
        with pytest.raises(SessionError, match=r"expected a session with no tasks yet, got 1"):
            await late.start_telemetry()
    with pytest.raises(SessionError, match="closed"):
        await late.start_telemetry()


async def test_without_the_sdk_start_telemetry_says_what_to_install(monkeypatch) -> None:
    import sys

    from rhapsody.telemetry import TelemetryNotInstalledError

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    session = Session(backends=[ConcurrentExecutionBackend()])
    with pytest.raises(TelemetryNotInstalledError, match=r"rhapsody-core\[telemetry\]"):
        await session.start_telemetry()
    async with session:  # nothing else changed
        (task,) = await session.wait_tasks(await _submit(session, square, 3))
        assert task.return_value == 9


async def _submit(session, fn, *args):
    tasks = [ComputeTask(function=fn, args=args)]
    await session.submit_tasks(tasks)
    return tasks


async def test_telemetry_off_binds_nothing_and_leaves_nothing(tmp_path) -> None:
    before = child_pids()
    off = Session(backends=[ConcurrentExecutionBackend()])
    async with off:
        assert off._changes is None  # no observer: transitions cost nothing extra
    session = Session(backends=[ConcurrentExecutionBackend()])
    await session.start_telemetry(checkpoint_path=tmp_path)
    async with session:
        assert session._changes is not None
        await session.wait_tasks(await _submit(session, square, 2))
    assert child_pids() <= before  # the writer process is gone
    assert not [t for t in threading.enumerate() if t.name.startswith("rhapsody-telemetry")]


async def test_close_with_tasks_still_running_ends_them_in_the_file(tmp_path) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path)
    tasks = [ComputeTask(executable="/bin/sleep", arguments=["30"]) for _ in range(3)]
    async with session:
        await session.submit_tasks(tasks)
        await asyncio.sleep(0.3)
    lines = lines_of(str(tmp_path))
    assert sum(1 for x in lines if x.get("event_type") == "TaskCanceled") == 3
    assert telemetry.task_count()["canceled"] == 3
    assert [x for x in lines if x["section"] == "metric"][-1]["tasks_running"] == 0


async def test_a_plugins_sampler_is_polled_and_a_lost_cancel_does_not_hold_close(caplog) -> None:
    from rhapsody.plugins import hookimpl, register, unregister
    from rhapsody.telemetry import ResourceSample

    class Stubborn:
        """A third party's sampler that swallows cancellation (as asyncio.wait_for can)."""

        polls = 0
        closed = False

        async def sample(self):
            Stubborn.polls += 1
            try:
                await asyncio.sleep(0.001)
            except asyncio.CancelledError:
                pass
            return [ResourceSample(node_id="gadget", attributes={"temperature": 41.5})]

        def close(self) -> None:
            Stubborn.closed = True

    class GadgetPlugin:
        @hookimpl
        def rhapsody_resource_samplers(self, backend):
            return [Stubborn()] if backend.name == "gadget" else None

    register(GadgetPlugin(), name="gadget-sampler")
    try:
        session = Session(backends=[ConcurrentExecutionBackend(name="gadget")])
        session.shutdown_timeout = 3
        telemetry = await session.start_telemetry(resource_poll_interval=0.001)
        got = []
        telemetry.subscribe(got.append)
        caplog.set_level(logging.ERROR)
        async with session:
            while Stubborn.polls < 20:
                await asyncio.sleep(0.01)
        assert "did not finish closing" not in caplog.text
        assert Stubborn.closed
        gadget = [e for e in got if e.event_type == "ResourceUpdate" and e.node_id == "gadget"]
        assert gadget and gadget[0].attributes == {"temperature": 41.5}
        assert gadget[0].backend == "gadget" and gadget[0].cpu_percent is None
    finally:
        unregister("gadget-sampler")


async def test_nothing_is_lost_at_100k_tasks(tmp_path) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path, resource_poll_interval=0.5)
    kinds: Counter[str] = Counter()
    telemetry.subscribe(lambda e: kinds.update((e.event_type,)))
    n = 100_000
    tasks = [ComputeTask(function=square, args=(1,)) for _ in range(n)]
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    for kind in ("TaskCreated", "TaskSubmitted", "TaskQueued", "TaskStarted", "TaskCompleted"):
        assert kinds[kind] == n, kinds
    (name,) = os.listdir(tmp_path)
    counts: Counter[bytes] = Counter()
    with open(tmp_path / name, "rb") as fh:
        for line in fh:
            if line.endswith(b'"section": "span"}\n'):
                counts[b"span"] += 1
            elif b'"TaskCompleted"' in line[:120]:
                counts[b"completed"] += 1
    assert counts == {b"span": n + 1, b"completed": n}


def test_gpu_sampling_reads_every_gpu() -> None:
    from rhapsody.telemetry.sampling import GpuReader, LocalNodeSampler

    if GpuReader.open() is None:
        pytest.skip(
            "no NVIDIA GPU (or nvidia-ml-py) on this machine: GPU sampling runs on a GPU node"
        )
    sampler = LocalNodeSampler()
    samples = asyncio.run(sampler.sample())
    sampler.close()
    gpus = [s for s in samples if s.gpu_id is not None]
    assert gpus and all(0 <= s.gpu_percent <= 100 for s in gpus)
    assert samples[0].gpu_percent == max(s.gpu_percent for s in gpus)


async def test_the_files_spans_are_read_traces_spans(tmp_path) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path)
    tasks = [ComputeTask(function=square, args=(2,)), ComputeTask(function=boom)]
    tasks.append(ComputeTask(executable="/bin/sleep", arguments=["30"]))  # canceled at close
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks[:2])
    in_file = {
        line["attributes"]["task_id"]: line
        for line in lines_of(str(tmp_path))
        if line["section"] == "span" and line["name"] == "task"
    }
    in_memory = {s.attributes["task_id"]: s for s in telemetry.read_traces() if s.name == "task"}
    assert set(in_file) == set(in_memory) == {t.uid for t in tasks}
    for uid, span in in_memory.items():
        line = in_file[uid]
        assert line["attributes"] == pytest.approx(dict(span.attributes)), uid
        assert (line["start_ns"], line["end_ns"]) == (span.start_time, span.end_time)
        assert line["span_id"] == hex(span.context.span_id)
        assert line["status_code"] == span.status.status_code.name
    assert in_file[tasks[1].uid]["attributes"]["error"] == "ValueError: bad input 42"


@pytest.mark.parametrize(("writers", "killed"), [(1, 0), (3, 0), (3, 2)])
async def test_a_dead_writer_loses_the_file_not_the_tasks(
    tmp_path, caplog, monkeypatch, writers, killed
) -> None:
    import signal as signals

    monkeypatch.setenv("RHAPSODY_TELEMETRY_WRITERS", str(writers))
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(checkpoint_path=tmp_path)
    caplog.set_level(logging.ERROR)
    async with session:
        os.kill(telemetry._writer.writers[killed]._proc.pid, signals.SIGKILL)
        tasks = [ComputeTask(function=square, args=(i,)) for i in range(200)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    assert all(t.state == "DONE" for t in tasks)
    assert telemetry.task_count()["completed"] == 200
    assert "telemetry" in caplog.text  # the writer's end is reported


@pytest.mark.parametrize("count", [1, 3])
def test_ctrl_c_completes_the_file_and_leaves_no_writer(tmp_path, monkeypatch, count) -> None:
    import signal as signals

    monkeypatch.setenv("RHAPSODY_TELEMETRY_WRITERS", str(count))
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import asyncio, signal\n"
        # as in a terminal (a test runner's background job may have SIGINT ignored)
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from rhapsody import ComputeTask, Session\n"
        "from rhapsody.backends import ConcurrentExecutionBackend\n"
        "async def main():\n"
        "    session = Session(backends=[ConcurrentExecutionBackend()])\n"
        f"    await session.start_telemetry(checkpoint_path={str(tmp_path / 'out')!r})\n"
        "    async with session:\n"
        "        tasks = [ComputeTask(executable='/bin/sleep', arguments=['60'])]\n"
        "        tasks += [ComputeTask(executable='/bin/true') for _ in range(20)]\n"
        "        await session.submit_tasks(tasks)\n"
        "        await session.wait_tasks(tasks[1:])\n"
        "        print('running', flush=True)\n"
        "        await session.wait_tasks(tasks)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    os.killpg(proc.pid, signals.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err, err
    from ..docs_runner import _session_members

    def writers() -> list[str]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            if b"rhapsody.telemetry.writer" in cmd and str(tmp_path).encode() in cmd:
                found.append(entry)
        return found

    deadline = time.monotonic() + 10
    while (_session_members(proc.pid) or writers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _session_members(proc.pid), "a process of the run outlived it"
    assert not writers(), "the telemetry writer outlived the run"
    lines = lines_of(str(tmp_path / "out"))
    # the writer finished the file (of several, the first writes the snapshot; the others may
    # still have been writing when it did: nobody was left to order their ends)
    last_metric = max(i for i, x in enumerate(lines) if x["section"] == "metric")
    assert count > 1 or last_metric == len(lines) - 1, err
    assert sum(1 for x in lines if x.get("event_type") == "TaskCompleted") == 20


async def test_a_resource_sample_that_cannot_be_recorded_does_not_end_the_polling(
    monkeypatch,
) -> None:
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(resource_poll_interval=0.01)
    real, seen = telemetry._resource_event, []

    def resource_event(backend, sample):
        seen.append(sample)
        if len(seen) == 1:
            raise ValueError("a reading no event can hold")
        real(backend, sample)

    monkeypatch.setattr(telemetry, "_resource_event", resource_event)
    got = []
    telemetry.subscribe(got.append)
    async with session:
        for _ in range(500):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.01)
    assert len(seen) >= 3  # polled on after the sample it had to drop
    assert any(e.event_type == "ResourceUpdate" for e in got)
