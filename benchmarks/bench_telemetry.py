"""Side-by-side benchmark: telemetry off vs on (OpenTelemetry + JSONL checkpoint), ours and
rhapsody-py 0.6.0's, on no-op function tasks of the concurrent backend. Usage::

    python benchmarks/bench_telemetry.py --size 100000 [--rhapsody-py-python PATH] \
        [--rhapsody-py-size 20000] [--repeat 3] [--report-size 1000000]

Each run is a fresh interpreter and times submit -> wait -> close (the file complete), and the
CPU time of the session's own process; memory is traced bytes per task with telemetry on, kept
until close. ``--report-size`` also times ``rhapsody report`` on a checkpoint of that many tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Report, measure

TELEMETRY_DIR = os.path.join(tempfile.gettempdir(), "rhapsody-bench-telemetry")


def noop() -> None:
    return None


async def run(
    n: int, telemetry: bool, memory: bool = False, file: bool = True, discard: bool = False
) -> dict[str, float]:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()
    session = Session(backends=[backend])
    shutil.rmtree(TELEMETRY_DIR, ignore_errors=True)
    if telemetry:
        await session.start_telemetry(
            checkpoint_path=TELEMETRY_DIR if file else None, resource_poll_interval=1.0
        )
    tasks = [ComputeTask(function=noop) for _ in range(n)]
    if memory:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if memory else 0
    start, cpu = time.perf_counter(), time.process_time()
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        traced = (tracemalloc.get_traced_memory()[0] - before) / n if memory else 0.0
        closing = time.perf_counter()
    end = time.perf_counter()
    seconds, cpu = end - start, time.process_time() - cpu
    assert all(t.state == "DONE" for t in tasks), "a benchmark task failed"
    if telemetry and file and not discard:
        (name,) = os.listdir(TELEMETRY_DIR)
        with open(os.path.join(TELEMETRY_DIR, name), "rb") as fh:
            ended = sum(1 for line in fh if b'"TaskCompleted"' in line)
        assert ended == n, f"{ended} of {n} tasks reached the file"
    return {
        "seconds": seconds,
        "cpu_per_task_us": cpu / n * 1e6,
        "bytes_per_task": traced,
        "close_seconds": end - closing,  # with a file: mostly the writer catching up
    }


def discard_checkpoint_records() -> None:
    """The writer process replaced by ``cat > /dev/null``: what the file costs the session's
    process alone (the records, their pickles, the pipe), whatever the writer's speed."""
    import subprocess as real
    import types

    from rhapsody.telemetry import writer_pipe

    def popen(args: list[str], **kwargs: Any) -> real.Popen[bytes]:
        return real.Popen(["sh", "-c", "cat > /dev/null"], **kwargs)

    writer_pipe.subprocess = types.SimpleNamespace(  # type: ignore[assignment]
        Popen=popen, PIPE=real.PIPE, DEVNULL=real.DEVNULL, TimeoutExpired=real.TimeoutExpired
    )


def cheapest_hand_over() -> None:
    """The session's side of telemetry replaced by the least any design of it in Python must do:
    at each task's end, hand five of its fields (uid, submitted, started and ended times,
    worker) out of the process -- C-level maps over the batch's ended tasks, packed as text and
    doubles, written to /dev/null -- and nothing else (no sequence numbers, counts, running set,
    nor records of submissions and starts). A diagnosis: the ratio it reaches is the ceiling of
    telemetry with a checkpoint file on this machine, whatever formats the lines."""
    from array import array
    from itertools import compress
    from operator import attrgetter

    from rhapsody.api.states import TERMINAL_STATES
    from rhapsody.telemetry.manager import TelemetryManager

    ends = TERMINAL_STATES.__contains__
    uid, worker = attrgetter("uid"), attrgetter("worker")
    times = [attrgetter(name) for name in ("submitted_at", "started_at", "ended_at")]
    sink = os.open(os.devnull, os.O_WRONLY)

    def hand_over(self: Any, tasks: list[Any], states: list[Any]) -> None:
        ended = list(compress(tasks, map(ends, states)))
        if ended:
            os.write(sink, "\n".join(map(uid, ended)).encode())
            os.write(sink, b"".join(array("d", map(get, ended)).tobytes() for get in times))
            os.write(sink, "\n".join(map(str, map(worker, ended))).encode())

    TelemetryManager.on_changes = hand_over  # type: ignore[method-assign,assignment]


def run_one(contender: str, kind: str, n: int) -> dict[str, Any]:
    from rhapsody.backends import ConcurrentExecutionBackend  # noqa: F401 - not a per-task cost

    memory = kind.endswith("-memory")
    telemetry = kind.startswith("on")
    if kind.startswith("on-writers-"):  # the checkpoint file's writer processes, set
        from rhapsody.telemetry.checkpoint_file import WRITERS_ENV

        os.environ[WRITERS_ENV] = kind.rsplit("-", 1)[1]
    discard = kind == "on-discard"
    if discard:
        discard_checkpoint_records()
    if kind == "on-floor-nofile":
        cheapest_hand_over()
    return asyncio.run(run(n, telemetry, memory, file="nofile" not in kind, discard=discard))


def medians(python: str, kinds: list[str], n: int, repeat: int) -> dict[str, dict[str, float]]:
    """The median run of each kind, the kinds taking turns (off, on, off, on...): this machine's
    speed drifts by tens of percent over a minute, and runs of one kind in a row would carry
    that drift into the ratios."""
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind in kinds:
            runs[kind].append(measure(python, __file__, "session", kind, n, 3600))
    for kind_runs in runs.values():
        kind_runs.sort(key=lambda r: r["seconds"])
    return {kind: kind_runs[len(kind_runs) // 2] for kind, kind_runs in runs.items()}


def time_report(n: int) -> tuple[float, int]:
    """Seconds ``rhapsody report`` takes on a checkpoint file of ``n`` tasks (made here)."""
    from synthetic_checkpoint import write_checkpoint

    path = write_checkpoint(os.path.join(tempfile.gettempdir(), "rhapsody-bench-report"), n)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rhapsody.cli.main", "report", path],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    size = os.path.getsize(path)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return seconds, size


def theirs(python: str, kind: str, n: int) -> dict[str, Any]:
    script = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "bench_telemetry_rhapsody_py.py"
    )
    with tempfile.TemporaryDirectory(prefix="rhapsody-bench-") as cwd:  # its session dir goes
        out = subprocess.run(
            [python, script, kind, str(n)], capture_output=True, text=True, check=True, cwd=cwd
        )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        _, _, contender, kind, n = sys.argv
        print(json.dumps(run_one(contender, kind, int(n))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--memory-size", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rhapsody-py-python", default=None)
    parser.add_argument("--rhapsody-py-size", type=int, default=20000)
    parser.add_argument("--report-size", type=int, default=0)
    parser.add_argument(
        "--discard",
        action="store_true",
        help="also run with the checkpoint writer replaced by cat > /dev/null (a diagnosis)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run with the session's side replaced by the least it must do (a diagnosis)",
    )
    parser.add_argument(
        "--writers",
        default="",
        help="also run with these numbers of checkpoint writer processes (e.g. 1,2,4)",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.writers.split(",") if c.strip()]
    report = Report()
    n, ours = args.size, sys.executable
    kinds = ["off", "on", "on-nofile", *(["on-discard"] if args.discard else [])]
    kinds += ["on-floor-nofile"] if args.floor else []
    kinds += [f"on-writers-{count}" for count in counts]
    each = medians(ours, kinds, n, args.repeat)
    off, on, bare = each["off"], each["on"], each["on-nofile"]
    report.add(f"{n:,} no-op functions, telemetry off", f"{n / off['seconds']:,.0f}/s")
    from rhapsody.telemetry.checkpoint_file import writer_count

    report.add(
        f"{n:,} no-op functions, telemetry on (OTel + JSONL; {writer_count()} writer "
        f"process(es) by default on {os.cpu_count()} cores)",
        f"{n / on['seconds']:,.0f}/s = **{off['seconds'] / on['seconds']:.2f}x off**",
    )
    for count in counts:
        run = each[f"on-writers-{count}"]
        report.add(
            f"{n:,} no-op functions, telemetry on, the file written by {count} writer(s)",
            f"{n / run['seconds']:,.0f}/s = **{off['seconds'] / run['seconds']:.2f}x off**, "
            f"close {run['close_seconds']:.2f} of {run['seconds']:.2f} s",
        )
    report.add(
        f"{n:,} no-op functions, telemetry on without a checkpoint file (OTel only)",
        f"{n / bare['seconds']:,.0f}/s = **{off['seconds'] / bare['seconds']:.2f}x off**",
    )
    if args.discard:
        gone = each["on-discard"]
        report.add(
            f"{n:,} no-op functions, telemetry on, the file's records sent to cat > /dev/null",
            f"{n / gone['seconds']:,.0f}/s = **{off['seconds'] / gone['seconds']:.2f}x off**, "
            f"{gone['cpu_per_task_us']:.1f} µs CPU/task",
        )
    if args.floor:
        floor = each["on-floor-nofile"]
        report.add(
            f"{n:,} no-op functions, the session's side of telemetry replaced by the least it "
            "must do (five fields of each ended task out of the process; no file written)",
            f"{n / floor['seconds']:,.0f}/s = **{off['seconds'] / floor['seconds']:.2f}x off**, "
            f"{floor['cpu_per_task_us']:.1f} µs CPU/task",
        )
    report.add(
        "close (the writer catching up) of the whole run, with the file",
        f"{on['close_seconds']:.2f} of {on['seconds']:.2f} s (off: {off['close_seconds']:.2f} s)",
    )
    report.add(
        "CPU time of the session's process per task: off / on / on without a file",
        f"{off['cpu_per_task_us']:.1f} / {on['cpu_per_task_us']:.1f} / "
        f"{bare['cpu_per_task_us']:.1f} µs",
    )
    if args.memory_size:  # 0: no memory measurement
        mem = measure(ours, __file__, "session", "on-memory", args.memory_size, 3600)
        mem_off = measure(ours, __file__, "session", "off-memory", args.memory_size, 3600)
        report.add(
            f"traced memory per task with telemetry on ({args.memory_size:,} tasks)",
            f"{mem['bytes_per_task']:,.0f} B "
            f"({mem['bytes_per_task'] - mem_off['bytes_per_task']:,.0f} B more than off)",
        )
    if args.rhapsody_py_python:
        m = args.rhapsody_py_size
        r_off = theirs(args.rhapsody_py_python, "off", m)
        r_on = theirs(args.rhapsody_py_python, "on", m)
        r_mem = theirs(args.rhapsody_py_python, "on-memory", args.memory_size)
        report.add(
            f"rhapsody-py 0.6.0, {m:,} no-op functions: telemetry on vs off",
            f"{m / r_on['seconds']:,.0f}/s vs {m / r_off['seconds']:,.0f}/s = "
            f"{r_off['seconds'] / r_on['seconds']:.2f}x off; "
            f"{r_mem['bytes_per_task']:,.0f} B/task traced"
            + (" (its queue did not drain at close)" if r_on.get("drain_warning") else ""),
        )
    if args.report_size:
        seconds, size = time_report(args.report_size)
        report.add(
            f"rhapsody report on a {args.report_size:,}-task checkpoint ({size / 1e9:.2f} GB)",
            f"{seconds:.1f} s",
        )
    print(report.table())


if __name__ == "__main__":
    main()
