"""The checkpoint writer spread over formatter processes writes what the single writer writes."""

from __future__ import annotations

import json
import os
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.telemetry.writer import CheckpointWriter
from rhapsody.telemetry.writer_shards import ENV, shards_for, split

IDS = (0x1234, 0x5678, 0x9ABC, "0f" * 4)
T0 = 1_700_000_000.0
_EMIT = re.compile(r'"(emit_time|checkpoint_time)": [0-9.e+-]+')


def task_records(seq: int, rng: random.Random) -> list[tuple[Any, ...]]:
    submitted = T0 + rng.random()
    started = submitted + rng.random()
    ended = started + rng.random()
    state = rng.choice(["DONE", "DONE", "FAILED", "CANCELED"])
    error = "ValueError" if state == "FAILED" else None
    extra = {"error": "boom"} if state == "FAILED" else None
    host, worker = f"node{seq % 3}", f"pid {seq % 5}"
    return [
        ("S", seq, f"task.{seq:06d}", "concurrent", "ComputeTask", f"exe{seq % 4}", submitted),
        ("R", seq, started, host, worker),
        ("E", seq, state, ended, started, host, worker, error, extra),
    ]


def frames_of(tasks: int, seed: int) -> list[list[Any]]:
    """Records of ``tasks`` tasks interleaved, events and metric snapshots among them, cut into
    frames; a snapshot only ever ends a frame (the sharded writer snapshots whole frames)."""
    rng = random.Random(seed)
    queues = [task_records(seq, rng) for seq in range(tasks)]
    frames: list[list[Any]] = [["H", "sess", IDS]]
    frame: list[Any] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        frame.extend(queue.pop(0))
        if rng.random() < 0.02:
            frame.extend(("V", {"event_type": "Custom", "n": len(frames), "backend": "b"}))
        if rng.random() < 0.03:
            frame.extend(("C", T0 + len(frames)))
            frames.append(frame)
            frame = []
    frames.append([*frame, "Z", T0, T0 + 10])
    return frames


def written(tmp_path: Any, frames: list[list[Any]], shards: int) -> list[str]:
    path = str(tmp_path / f"run{shards}.telemetry.jsonl")
    writer = CheckpointWriter(path, "sess", IDS, shards=shards)
    for flat in frames[1:]:
        writer.send(list(flat))
    assert writer.close(60)
    with open(path) as f:
        return [_EMIT.sub(r'"\1": 0', line) for line in f.read().splitlines()]


def by_task(lines: list[str]) -> dict[str, list[str]]:
    tasks: dict[str, list[str]] = {}
    for line in lines:
        record = json.loads(line)
        uid = record.get("task_id") or record.get("attributes", {}).get("task_id")
        tasks.setdefault(str(uid), []).append(line)
    return tasks


def test_sharded_writer_writes_the_same_lines(tmp_path) -> None:
    frames = frames_of(600, seed=7)
    single, sharded = written(tmp_path, frames, 1), written(tmp_path, frames, 3)
    assert len(single) == len(sharded) > 600 * 6
    assert sorted(single) == sorted(sharded)  # the same lines, metric snapshots included
    assert by_task(single) == by_task(sharded)  # each task's lines in the same order
    assert single[-1] == sharded[-1] and json.loads(sharded[-1])["section"] == "metric"
    assert json.loads(sharded[-1])["tasks_submitted"] == 600


@given(st.lists(st.integers(0, 50), max_size=40), st.integers(1, 5))
def test_split_sends_a_task_to_one_shard_and_keeps_the_rest(seqs: list[int], shards: int) -> None:
    rng = random.Random(0)
    flat: list[Any] = []
    for n, seq in enumerate(seqs):
        flat.extend(task_records(seq, rng)[n % 3])
        if n % 4 == 0:
            flat.extend(("C", float(n)))
    parts, other = split(flat, shards)
    assert other == [v for n in range(0, len(seqs), 4) for v in ("C", float(n))]
    for k, part in enumerate(parts):
        assert all(part[i + 1] % shards == k for i in _starts(part))
        assert len(_starts(part)) == sum(seq % shards == k for seq in seqs)
    assert sum(len(p) for p in parts) + len(other) == len(flat)


def _starts(flat: list[Any]) -> list[int]:
    widths = {"S": 7, "R": 5, "E": 9}
    starts, i = [], 0
    while i < len(flat):
        starts.append(i)
        i += widths[flat[i]]
    return starts


def test_shards_by_cores(monkeypatch) -> None:
    assert [shards_for(c) for c in (1, 2, 4, 7, 8, 16, 64, 128)] == [1, 1, 1, 1, 2, 4, 4, 4]
    monkeypatch.delenv(ENV, raising=False)
    assert shards_for() == shards_for(len(os.sched_getaffinity(0)))
    monkeypatch.setenv(ENV, "3")
    assert shards_for() == 3
    for bad in ("0", "two", "-1", ""):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=f"{ENV}: expected an integer >= 1, got {bad!r}"):
            shards_for()


async def test_a_bad_formatter_count_stops_start_telemetry_before_the_file(tmp_path, monkeypatch):
    from rhapsody.api import Session
    from rhapsody.backends import ConcurrentExecutionBackend

    monkeypatch.setenv(ENV, "many")
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        with pytest.raises(ValueError, match=f"{ENV}: expected an integer >= 1, got 'many'"):
            await session.start_telemetry(checkpoint_path=str(tmp_path / "tel"))
    assert not (tmp_path / "tel").exists() or not os.listdir(tmp_path / "tel")


async def test_a_session_on_formatter_processes_records_every_task(tmp_path, monkeypatch):
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    monkeypatch.setenv(ENV, "2")
    backend = await ConcurrentExecutionBackend()
    tasks = [ComputeTask(function=abs, args=(-i,)) for i in range(3000)]
    async with Session(backends=[backend]) as session:
        await session.start_telemetry(checkpoint_path=str(tmp_path))
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks, timeout=120)
    (name,) = os.listdir(tmp_path)
    with open(tmp_path / name) as f:
        records = [json.loads(line) for line in f]
    completed = {r["task_id"] for r in records if r.get("event_type") == "TaskCompleted"}
    assert completed == {t.uid for t in tasks}
    assert records[-1]["section"] == "metric" and records[-1]["tasks_completed"] == 3000
