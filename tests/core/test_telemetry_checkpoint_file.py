"""The checkpoint file written by several writer processes, on real writers and a real session."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody import ComputeTask, Session
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.telemetry import checkpoint_file
from rhapsody.telemetry.checkpoint_file import (
    WRITERS_ENV,
    CheckpointFile,
    open_checkpoint,
    writer_count,
)
from rhapsody.telemetry.lines import COLUMN_TASKS
from rhapsody.telemetry.trace_ids import TraceIds

from ..conftest import child_pids

pytestmark = pytest.mark.timeout(120)

TASK_LINES = ["TaskCreated", "TaskSubmitted", "TaskQueued", "TaskStarted"]


def square(x: int) -> int:
    return x * x


def boom() -> None:
    raise ValueError("bad input")


def read_lines(path: str) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]  # a line cut by another writer fails here


# -- how many -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (4, 1), (8, 2), (16, 4), (128, 4)])
def test_by_default_one_writer_per_three_cores_beyond_two_at_most_four(
    monkeypatch, cores, expected
) -> None:
    monkeypatch.setattr(checkpoint_file, "_usable_cores", lambda: cores)
    assert writer_count({}) == expected


@given(st.integers(min_value=1, max_value=64))
def test_the_variable_sets_any_count_from_1_to_64(count) -> None:
    assert writer_count({WRITERS_ENV: f" {count} "}) == count


@given(st.one_of(st.integers().filter(lambda n: not 1 <= n <= 64).map(str), st.text(min_size=1)))
def test_a_bad_count_names_the_variable_what_it_expects_and_what_it_got(text) -> None:
    try:
        if 1 <= int(text) <= 64:
            return  # hypothesis's text found a good one
    except ValueError:
        pass
    if not text.strip():
        assert writer_count({WRITERS_ENV: text}) >= 1  # blank: the default
        return
    with pytest.raises(ValueError) as caught:
        writer_count({WRITERS_ENV: text})
    message = str(caught.value)
    assert WRITERS_ENV in message and "from 1 to 64" in message and repr(text.strip()) in message


async def test_a_bad_count_fails_start_telemetry_before_a_file_or_a_writer(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(WRITERS_ENV, "many")
    session = Session(backends=[ConcurrentExecutionBackend()])
    children = child_pids()
    with pytest.raises(ValueError, match=WRITERS_ENV):
        await session.start_telemetry(checkpoint_path=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert child_pids() == children
    async with session:  # the session itself is unharmed
        task = ComputeTask(function=square, args=(3,))
        await session.submit_tasks([task])
        await task
    assert task.state == "DONE" and task.return_value == 9


# -- a session's file -----------------------------------------------------------------------------


# With a subscriber the session sends a record per task change; without, a record of columns
# per batch and kind of change, which the writers cut into parts when it is large (1,200 tasks
# a batch: each of three writers gets ~400, more than COLUMN_TASKS).
@pytest.mark.parametrize(
    ("writers", "subscribed", "batch"), [(3, True, 500), (3, False, 1200), (1, False, 3060)]
)
async def test_writers_write_every_line_whole_and_each_task_in_order(
    tmp_path, monkeypatch, writers, subscribed, batch
) -> None:
    assert batch / writers > COLUMN_TASKS or subscribed
    monkeypatch.setenv(WRITERS_ENV, str(writers))
    session = Session(backends=[ConcurrentExecutionBackend()])
    telemetry = await session.start_telemetry(
        checkpoint_path=tmp_path, checkpoint_interval=0.05, resource_poll_interval=0.05
    )
    assert telemetry._writer is not None and len(telemetry._writer.writers) == writers
    writer_pids = {writer._proc.pid for writer in telemetry._writer.writers}
    seen: Counter[str] = Counter()  # a subscriber gets every task's events too
    if subscribed:
        telemetry.subscribe(lambda event: seen.update([event.event_type]))
    async with session:
        tasks = [ComputeTask(function=square, args=(i,)) for i in range(3000)]
        tasks += [ComputeTask(function=boom) for _ in range(30)]
        tasks += [ComputeTask(executable="/bin/true") for _ in range(30)]
        for start in range(0, len(tasks), batch):  # several batches, snapshots between them
            await session.submit_tasks(tasks[start : start + batch])
            await asyncio.sleep(0.02)
        await session.wait_tasks(tasks)
    assert not writer_pids & child_pids(), "a writer outlived the session"
    assert telemetry.checkpoint_file is not None
    lines = read_lines(telemetry.checkpoint_file)

    by_task: dict[str, list[str]] = {}
    for line in lines:
        if line["section"] == "event" and line.get("task_id") is not None:
            by_task.setdefault(line["task_id"], []).append(line["event_type"])
        elif line["section"] == "span" and line["name"] == "task":
            by_task.setdefault(line["attributes"]["task_id"], []).append("span")
    assert set(by_task) == {t.uid for t in tasks}
    for task in tasks:
        end = "TaskCompleted" if task.state == "DONE" else "TaskFailed"
        assert by_task[task.uid] == [*TASK_LINES, end, "span"], task.uid

    # the session's end is the file's end, after every task's lines (the first writer, last)
    tail = [line.get("event_type") or line.get("name") or line["section"] for line in lines[-3:]]
    assert tail == ["SessionEnded", "session", "metric"]
    assert lines[0]["event_type"] == "SessionStarted"

    metrics = [line for line in lines if line["section"] == "metric"]
    assert len(metrics) > 1, "no snapshot during the run: the test proves less than it says"
    completed = [m["tasks_completed"] for m in metrics]
    assert completed == sorted(completed)  # the session's totals: they only grow
    final = metrics[-1]
    assert final["tasks_submitted"] == final["task_duration_seconds_count"] == len(tasks)
    assert final["tasks_started"] == len(tasks)
    assert (final["tasks_completed"], final["tasks_failed"], final["tasks_canceled"]) == (
        3030,
        30,
        0,
    )
    assert final["tasks_running"] == 0
    run_seconds = sum(t.ended_at - t.started_at for t in tasks)
    assert final["task_duration_seconds_sum"] == pytest.approx(run_seconds)
    assert telemetry.task_count()["completed"] == 3030
    if subscribed:
        assert (seen["TaskCreated"], seen["TaskStarted"]) == (len(tasks), len(tasks))
        assert (seen["TaskCompleted"], seen["TaskFailed"]) == (3030, 30)

    report = subprocess.run(
        [sys.executable, "-m", "rhapsody.cli.main", "report", telemetry.checkpoint_file],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    assert "3,060" in report.stdout or "3060" in report.stdout, report.stdout


async def test_records_after_the_others_finished_go_to_the_first_writer(tmp_path) -> None:
    path = str(tmp_path / "run.telemetry.jsonl")
    ids = TraceIds.new().as_tuple()
    file = CheckpointFile(path, "session.x", ids, asyncio.get_running_loop(), writers=2)

    def task_records(seq: int) -> list[object]:
        return [
            *("S", seq, f"task.{seq}", "concurrent", "ComputeTask", "f", 1.0 + seq),
            *("R", seq, 2.0 + seq, "host", None),
        ]

    def end_record(seq: int) -> list[object]:
        return ["E", seq, "DONE", 3.0 + seq, 2.0 + seq, "host", None, None, None]

    file.send_tasks([task_records(0), task_records(1)])
    file.send_tasks([[], end_record(1)])
    assert await file.finish_tasks(30)
    assert file.writers[1]._closed
    file.send_tasks([end_record(0), []])  # its share's writer is done: the first one takes it
    assert await file.close(30, lambda: (2, 2, 2, 0, 0, 2, 2.0))
    lines = read_lines(path)
    ended = sorted(line["task_id"] for line in lines if line.get("event_type") == "TaskCompleted")
    assert ended == ["task.0", "task.1"]
    assert lines[-1]["section"] == "metric" and lines[-1]["tasks_completed"] == 2
    assert sum(1 for line in lines if line["section"] == "metric") == 1


def test_a_writer_that_cannot_start_leaves_none_behind(tmp_path, monkeypatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        if len(started) == 2:
            raise OSError("no more processes")
        proc = real(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setenv(WRITERS_ENV, "3")
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(OSError, match="no more processes"):
            open_checkpoint(str(tmp_path), "s", TraceIds.new().as_tuple(), loop)
    finally:
        loop.close()
    assert len(started) == 2 and all(proc.poll() is not None for proc in started)
    assert os.listdir(tmp_path) == []  # nor a file


@pytest.mark.parametrize(
    ("role", "totals", "metric_lines"),
    [([], False, 1), (["--first"], True, 1), (["--first"], False, 0), (["--part"], True, 0)],
)
def test_which_writer_ends_the_file_with_a_snapshot(tmp_path, role, totals, metric_lines) -> None:
    # Of several writers only the first writes snapshots, and only with the session's totals:
    # its own share of the tasks is not the session's (the session died before sending them).
    import pickle

    from rhapsody.telemetry.writer import HEADER

    path = tmp_path / "run.telemetry.jsonl"
    path.write_text('{"first": "line"}\n')  # a part waits for the first writer's first line
    records: list[object] = ["H", "session.x", TraceIds.new().as_tuple()]
    records += ["S", 0, "task.0", "concurrent", "ComputeTask", "f", 1.0]
    if totals:
        records += ["K", 3, 3, 2, 1, 0, 3, 1.5]
    frame = pickle.dumps(records)
    writer = subprocess.run(
        [sys.executable, "-m", "rhapsody.telemetry.writer", str(path), *role],
        input=len(frame).to_bytes(HEADER, "big") + frame,
        capture_output=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    lines = read_lines(str(path))
    metrics = [line for line in lines if line.get("section") == "metric"]
    assert len(metrics) == metric_lines
    assert sum(line.get("event_type") == "TaskCreated" for line in lines) == 1
    if metrics and totals:
        assert (metrics[0]["tasks_submitted"], metrics[0]["tasks_failed"]) == (3, 1)
