"""``rhapsody report``: the summary and the plot of a checkpoint file, and the files it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from rhapsody import ComputeTask, Session
from rhapsody.backends import ConcurrentExecutionBackend
from rhapsody.telemetry.lines import CheckpointLines
from rhapsody.telemetry.records import TraceIds
from rhapsody.telemetry.report import ReportError, load
from rhapsody.telemetry.summary import summarise

pytestmark = pytest.mark.timeout(180)


def nap(seconds: float) -> None:
    time.sleep(seconds)


def broken(n: int) -> None:
    raise RuntimeError(f"disk full on {n % 2}")


def rhapsody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rhapsody.cli.main", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The checkpoint file of a small real run: naps, failures and a canceled task."""
    directory = tmp_path_factory.mktemp("telemetry")

    async def main() -> None:
        session = Session(backends=[ConcurrentExecutionBackend(num_workers=4)])
        await session.start_telemetry(checkpoint_path=directory, resource_poll_interval=0.05)
        tasks = [ComputeTask(function=nap, args=(0.02,)) for _ in range(40)]
        tasks += [ComputeTask(function=broken, args=(i,)) for i in range(5)]
        tasks += [ComputeTask(executable="/bin/true") for _ in range(5)]
        stuck = ComputeTask(executable="/bin/sleep", arguments=["30"])
        async with session:
            await session.submit_tasks([*tasks, stuck])
            await session.wait_tasks(tasks)

    asyncio.run(main())
    (name,) = os.listdir(directory)
    return str(directory / name)


def test_summary_of_a_real_run(run_file: str) -> None:
    data = load(run_file)
    assert len(data.tasks) == 51 and data.unfinished == 0 and not data.truncated
    text = summarise(data)
    assert "51 tasks ended in" in text
    row = next(line for line in text.splitlines() if line.startswith("concurrent  "))
    assert row.split() == ["concurrent", "1", "45", "5", "51"]  # canceled, completed, failed
    assert "run p50" in text and "ComputeTask" in text and "/s" in text
    assert "RuntimeError: disk full on 0" in text and "RuntimeError: disk full on 1" in text
    assert "resource utilisation" in text and "%" in text


def test_cli_report_and_plots(run_file: str, tmp_path) -> None:
    for ext in ("png", "svg", "html"):
        out = tmp_path / f"run.{ext}"
        result = rhapsody("report", run_file, "--plot", str(out))
        assert result.returncode == 0, result.stderr
        assert "tasks by backend and state" in result.stdout and out.stat().st_size > 5000
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "run.html").read_text()
    bad = rhapsody("report", run_file, "--plot", str(tmp_path / "run.gif"))
    assert bad.returncode == 2 and "expected a .png, .svg or .html path" in bad.stderr


def test_truncated_foreign_missing_and_empty_files(run_file: str, tmp_path) -> None:
    text = open(run_file).read()
    cut = tmp_path / "cut.telemetry.jsonl"
    cut.write_text(text[: len(text) // 2 + 7])  # a crash in the middle of a line
    data = load(str(cut))
    assert data.truncated and "is cut short" in data.truncated
    assert 0 < len(data.tasks) < 51
    result = rhapsody("report", str(cut))
    assert result.returncode == 0 and "warning: line" in result.stdout
    foreign = tmp_path / "data.jsonl"
    foreign.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(ReportError, match="not a RHAPSODY telemetry checkpoint"):
        load(str(foreign))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ReportError, match="the file is empty"):
        load(str(tmp_path / "empty.jsonl"))
    missing = rhapsody("report", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl: no such file" in missing.stderr
    with pytest.raises(ReportError, match="got a directory"):
        load(str(tmp_path))


def test_read_in_parts_by_several_processes_reads_the_same(run_file: str, tmp_path) -> None:
    one = load(run_file, workers=1)
    three = load(run_file, workers=3)
    assert three.tasks == one.tasks and three.resources == one.resources
    assert (three.submitted_events, three.session_start, three.session_end) == (
        one.submitted_events,
        one.session_start,
        one.session_end,
    )
    text = open(run_file).read()
    cut = tmp_path / "cut.telemetry.jsonl"
    cut.write_text(text[:-40])
    parts = load(str(cut), workers=3)
    assert parts.truncated and parts.tasks == load(str(cut), workers=1).tasks


def test_large_runs_are_drawn_aggregated(tmp_path) -> None:
    from rhapsody.telemetry.plot import DETAIL_LIMIT, plot

    lines = CheckpointLines("session.big", TraceIds.new())
    out: list[str] = []
    t0 = 1_700_000_000.0
    n = DETAIL_LIMIT * 2
    records = []
    for seq in range(n):
        t = t0 + seq * 1e-3
        records.append(("S", seq, f"task.{seq}", "dask", "ComputeTask", "f", t))
        records.append(("R", seq, t + 0.01, "node1", f"tcp://w{seq % 70}"))
        state = "FAILED" if seq % 100 == 0 else "DONE"
        records.append(
            (
                "E",
                seq,
                state,
                t + 0.05,
                t + 0.01,
                "node1",
                f"tcp://w{seq % 70}",
                "OSError" if state == "FAILED" else None,
                None,
            )
        )
    lines.add_all(records, t0, out)
    path = tmp_path / "big.telemetry.jsonl"
    path.write_text("\n".join(out) + "\n")
    data = load(str(path))
    assert len(data.tasks) == n and {r.lane for r in data.tasks} >= {"node1 / tcp://w0"}
    target = plot(data, str(tmp_path / "big.png"))
    assert os.path.getsize(target) > 10000
    assert "70 busiest lanes" not in summarise(data)  # the text report lists no lanes
    line = json.loads(out[-1].splitlines()[-1])  # an entry holds one or more lines
    assert line["section"] == "span" and line["attributes"]["run_seconds"] == pytest.approx(0.04)


def test_a_rhapsody_py_checkpoint_is_summarised() -> None:
    # written by rhapsody-py 0.6.0's own telemetry: 20 function tasks, one failing
    path = os.path.join(os.path.dirname(__file__), "data", "rhapsody-py-0.6.0.telemetry.jsonl")
    data = load(path)
    assert len(data.tasks) == 20 and not data.truncated and data.bad_lines == 0
    assert {r.backend for r in data.tasks} == {"concurrent"}  # from its events: spans lack it
    assert all(r.started is not None and r.started <= r.ended for r in data.tasks)
    assert sorted(r.status for r in data.tasks).count("failed") == 1
    assert len(data.resources) >= 1
    text = summarise(data)
    assert "concurrent  19         1       20" in text
