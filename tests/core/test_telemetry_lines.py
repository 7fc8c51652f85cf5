"""The checkpoint file's lines say what the subscribers' events and the in-memory spans say.

The writer formats task lines from templates (a fast path for tasks that completed, a general
one for the rest); these properties hold it to the events :class:`EventBuilder` makes from the
same records and to :func:`span_attributes`, whatever the records hold.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.telemetry import line_parts
from rhapsody.telemetry import lines as lines_module
from rhapsody.telemetry.lines import CheckpointLines
from rhapsody.telemetry.records import EventBuilder, TaskInfo, span_attributes
from rhapsody.telemetry.trace_ids import TraceIds

T0 = 1_700_000_000  # an int: a test's clock may give ints (a general-path case)
names = st.text(min_size=1, max_size=12)  # any text: quotes, %, non-ASCII
maybe_names = st.none() | names
offsets = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False) | st.integers(-5, 5)


@st.composite
def task_records(draw: st.DrawFn, seq: int) -> tuple[tuple[Any, ...], ...]:
    submitted = T0 + draw(st.floats(min_value=0, max_value=100) | st.integers(0, 100))
    submit = ("S", seq, draw(names), draw(names), draw(names), draw(names), submitted)
    started = None if draw(st.booleans()) and draw(st.booleans()) else submitted + draw(offsets)
    host, worker = draw(maybe_names), draw(maybe_names)
    state = draw(st.sampled_from(["DONE", "DONE", "FAILED", "CANCELED"]))
    extra = draw(
        st.none()
        | st.dictionaries(st.sampled_from(["error", "prompt_tokens"]), names | st.integers())
    )
    ended = (started if started is not None else submitted) + draw(offsets)
    error = draw(names) if state == "FAILED" else None  # error_type_of: never None
    end = ("E", seq, state, ended, started, host, worker, error, extra or None)
    if started is None:
        return (submit, end)
    return (submit, ("R", seq, started, host, worker), end)


@st.composite
def batches(draw: st.DrawFn) -> list[list[tuple[Any, ...]]]:
    tasks = [draw(task_records(seq)) for seq in range(draw(st.integers(1, 12)))]
    # each task's records in order, tasks interleaved, cut into batches anywhere
    queues = [list(t) for t in tasks]
    flat: list[tuple[Any, ...]] = []
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        flat.append(queue.pop(0))
    cuts = sorted(draw(st.lists(st.integers(0, len(flat)), max_size=4)))
    return [flat[a:b] for a, b in zip([0, *cuts], [*cuts, len(flat)], strict=True)]


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and not math.isfinite(want):
        return got is None  # not JSON: null
    return bool(got == want)


# the numbers of a completed task's lines: orjson (the telemetry extra: a missing install fails
# here), or repr where orjson is not installed
NUMBER_FORMATTERS = {
    "orjson": (line_parts._numbers_by_orjson, line_parts._number_by_orjson),
    "repr": (lines_module._numbers_by_repr, repr),
}


@pytest.mark.parametrize("formatter", sorted(NUMBER_FORMATTERS))
@settings(max_examples=200, deadline=None)
@given(batches=batches())
def test_every_line_says_what_the_events_and_spans_say(
    formatter: str, batches: list[list[tuple]]
) -> None:
    saved = lines_module.numbers_text, lines_module.number_text
    lines_module.numbers_text, lines_module.number_text = NUMBER_FORMATTERS[formatter]
    try:
        _check_lines(batches)
    finally:
        lines_module.numbers_text, lines_module.number_text = saved


def _check_lines(batches: list[list[tuple]]) -> None:
    ids = TraceIds.new()
    lines = CheckpointLines('session."%s"', ids)
    builder = EventBuilder('session."%s"', ids)
    infos: dict[int, TaskInfo] = {}
    expected_events: dict[str, Any] = {}
    expected_spans: dict[str, dict[str, Any]] = {}
    text: list[str] = []
    for emit, batch in enumerate(batches):
        lines.add_all(batch, T0 + emit, text)
        for record in batch:
            if record[0] == "S":
                infos[record[1]] = TaskInfo(*record[2:])
            for event in builder.events(record, T0 + emit):
                expected_events[event.event_id] = event
            if record[0] == "E":
                _, seq, state, ended, started, host, worker, error, extra = record
                info = infos[seq]
                expected_spans[ids.task_event_id(seq, 4)] = {
                    "span_id": hex(ids.task_span_id(seq)),
                    "start_ns": int(info.submitted_at * 1e9),
                    "end_ns": int(ended * 1e9),
                    "start_time_s": info.submitted_at,
                    "end_time_s": ended,
                    "status_code": "OK" if state == "DONE" else "ERROR",
                    "attributes": span_attributes(
                        'session."%s"', info, state, error, host, worker, started, ended, extra
                    ),
                }
    parsed = [json.loads(line) for entry in text for line in entry.split("\n")]
    events = [p for p in parsed if p["section"] == "event"]
    spans = [p for p in parsed if p["section"] == "span"]
    assert sorted(e["event_id"] for e in events) == sorted(expected_events)
    for line in events:
        event = expected_events[line["event_id"]]
        for field, value in vars(event).items():
            assert _same(line[field], value), (field, line, event)
        assert line["name"] == line["event_type"] == event.event_type
        assert line["trace_id"] == hex(ids.trace_id)
    assert len(spans) == len(expected_spans)
    ends = [e["event_id"] for e in events if e["event_id"][-1] in "4c"]  # kind 4: the end
    for span, event_id in zip(spans, ends, strict=True):
        want = expected_spans[event_id]
        assert span["parent_span_id"] == hex(ids.session_span_id)
        for field, value in want.items():
            assert _same(span[field], value), (field, span, want)
        start, end = want["start_time_s"], want["end_time_s"]
        if math.isfinite(start) and math.isfinite(end):  # milliseconds, to 3 decimals
            assert abs(span["duration_ms"] - (end - start) * 1e3) <= 5.001e-4, span
    assert lines.counts["tasks_submitted"] == len(infos)
    ended = [e for e in expected_events.values() if e.event_id[-1] in "4c"]
    assert lines.duration_count == len(ended)
    done = sum(e.event_type == "TaskCompleted" for e in ended)
    assert lines.counts["tasks_completed"] == done


def test_the_writer_process_imports_neither_asyncio_nor_the_task_api() -> None:
    # it starts with the session's telemetry, on a core the session may need: it stays light
    code = (
        "import sys, runpy\n"
        "sys.argv = ['writer', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('rhapsody.telemetry.writer', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('asyncio', 'rhapsody.api', 'rhapsody.plugins.manager', 'opentelemetry')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", code, os.path.join(tmp, "run.telemetry.jsonl")],
            input=b"",
            capture_output=True,
            check=True,
            timeout=60,
        )
    assert out.stdout.decode().strip() == "[]", out


def test_a_time_past_the_year_2255_still_gives_whole_nanoseconds() -> None:
    # the common path formats nanoseconds as a 64-bit integer: later times take the general one
    lines = CheckpointLines("s", TraceIds.new())
    out: list[str] = []
    lines.add_all(
        [
            ("S", 0, "t", "b", "ComputeTask", "f", 9.5e9),
            ("E", 0, "DONE", 9.6e9, 9.55e9, None, None, None, None),
        ],
        9.7e9,
        out,
    )
    span = json.loads(out[-1].split("\n")[-1])
    assert span["end_ns"] == int(9.6e9 * 1e9) and span["duration_ms"] == 1e11


def test_times_of_another_number_type_are_written_as_numbers() -> None:
    # a third-party backend may stamp NumPy floats (whose repr is "np.float64(...)")
    import numpy as np

    lines = CheckpointLines("s", TraceIds.new())
    out: list[str] = []
    t = np.float64(T0 + 0.25)
    lines.add_all(
        [
            ("S", 0, "t", "b", "ComputeTask", "f", t),
            ("R", 0, t + 1, "host", "w"),
            ("E", 0, "DONE", t + 3, t + 1, "host", "w", None, None),
        ],
        T0 + 9,
        out,
    )
    parsed = [json.loads(line) for entry in out for line in entry.split("\n")]
    started, completed, span = parsed[3], parsed[4], parsed[5]
    assert parsed[0]["event_time"] == T0 + 0.25 and started["event_time"] == T0 + 1.25
    assert completed["event_time"] == T0 + 3.25 and completed["duration_seconds"] == 2.0
    assert span["end_time_s"] == T0 + 3.25 and span["attributes"]["run_seconds"] == 2.0


def test_without_orjson_the_file_holds_the_same_lines() -> None:
    # orjson comes with the telemetry extra; a user who installed the SDK alone still gets
    # the file, numbers by repr
    code = (
        "import sys, json\n"
        "sys.modules['orjson'] = None  # not importable\n"
        "from rhapsody.telemetry import lines\n"
        "from rhapsody.telemetry.trace_ids import TraceIds\n"
        "assert lines.numbers_text is lines._numbers_by_repr\n"
        "out = []\n"
        "lines.CheckpointLines('s', TraceIds.new()).add_all([\n"
        "    ('S', 0, 't', 'b', 'ComputeTask', 'f', 1700000000.5),\n"
        "    ('R', 0, 1700000001.25, 'h', 'w'),\n"
        "    ('E', 0, 'DONE', 1700000003.75, 1700000001.25, 'h', 'w', None, None),\n"
        "], 1700000009.0, out)\n"
        "print('\\n'.join(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    parsed = [json.loads(line) for line in done.stdout.splitlines()]
    completed, span = parsed[4], parsed[5]
    assert completed["event_type"] == "TaskCompleted" and completed["duration_seconds"] == 2.5
    assert span["end_time_s"] == 1700000003.75 and span["duration_ms"] == 3250.0
    assert span["attributes"]["queue_seconds"] == 0.75


@pytest.mark.parametrize("state", ["DONE", "FAILED"])  # the common path, and the general one
def test_a_host_or_worker_that_is_not_text_is_written_as_text(state: str) -> None:
    # a third-party backend may record a pid, or a list of nodes: the writer must not die on it
    lines, out = CheckpointLines("s", TraceIds.new()), []
    error = "Boom" if state == "FAILED" else None
    lines.add_all(
        [
            ("S", 0, "t", "b", "ComputeTask", "f", T0 + 0.5),
            ("R", 0, T0 + 1.25, ["node-1", "node-2"], 1234),
            ("E", 0, state, T0 + 2.5, T0 + 1.25, ["node-1", "node-2"], 1234, error, None),
        ],
        T0 + 3,
        out,
    )
    parsed = [json.loads(line) for entry in out for line in entry.split("\n")]
    started, ended, span = parsed[3:]
    for line in (started, ended):
        assert line["node_id"] == "['node-1', 'node-2']"
        assert line["attributes"]["worker"] == "1234"
    assert span["attributes"]["worker"] == "1234"
    assert ended["event_type"] == ("TaskCompleted" if state == "DONE" else "TaskFailed")
