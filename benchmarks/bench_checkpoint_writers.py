"""How fast the telemetry checkpoint file's writer processes drain a session's records, alone:
1, 2, 4... writers, each on its share of a stream captured from a real session, against the rate
the same session runs no-op tasks with telemetry off. A drain rate above the session's means the
file cannot be what holds the session back. Usage::

    python benchmarks/bench_checkpoint_writers.py --size 100000 --writers 1,2,4 [--repeat 3]

Per writer count: the drain's wall time (all writers started together, on streams read from
files), the writers' CPU per task (user + system) and their minor page faults per task (a VM
makes those dear).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Report


def noop() -> None:
    return None


async def session_run(n: int, telemetry_dir: str | None) -> float:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    session = Session(backends=[await ConcurrentExecutionBackend()])
    if telemetry_dir is not None:
        await session.start_telemetry(checkpoint_path=telemetry_dir, resource_poll_interval=None)
    tasks = [ComputeTask(function=noop) for _ in range(n)]
    start = time.perf_counter()
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
    return time.perf_counter() - start


def capture(n: int, writers: int, prefix: str) -> None:
    """Run a session with ``writers`` writers whose input goes to ``prefix.0``, ``prefix.1``..."""
    import subprocess as real

    from rhapsody.telemetry import writer_pipe
    from rhapsody.telemetry.checkpoint_file import WRITERS_ENV

    os.environ[WRITERS_ENV] = str(writers)
    started = iter(range(writers))

    def popen(args: list[str], **kwargs: Any) -> real.Popen[bytes]:
        return real.Popen(["sh", "-c", f"cat > {prefix}.{next(started)}"], **kwargs)

    writer_pipe.subprocess = types.SimpleNamespace(  # type: ignore[assignment]
        Popen=popen, PIPE=real.PIPE, DEVNULL=real.DEVNULL, TimeoutExpired=real.TimeoutExpired
    )
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(session_run(n, directory))


def drain(prefix: str, writers: int, out: str) -> dict[str, float]:
    """Start the writers on the captured streams at once; wall time and their rusage."""
    with open(out, "x"):
        pass
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = []
    for index in range(writers):
        role = [] if writers == 1 else ["--part" if index else "--first"]
        with open(f"{prefix}.{index}", "rb") as stream:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "rhapsody.telemetry.writer", out, *role], stdin=stream
                )
            )
    codes = [proc.wait(600) for proc in procs]
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise RuntimeError(f"a writer failed: exit codes {codes}")
    return {
        "seconds": seconds,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "system": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "capture":
        _, _, n, writers, prefix = sys.argv
        capture(int(n), int(writers), prefix)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--writers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, report = args.size, Report()
    off = statistics.median(asyncio.run(session_run(n, None)) for _ in range(args.repeat))
    report.add(
        f"the session, {n:,} no-op functions, telemetry off ({os.cpu_count()} cores)",
        f"{n / off:,.0f} tasks/s",
    )
    work = tempfile.mkdtemp(prefix="rhapsody-bench-writers-")
    try:
        for writers in (int(c) for c in args.writers.split(",") if c.strip()):
            prefix = os.path.join(work, f"stream{writers}")
            subprocess.run(
                [sys.executable, __file__, "capture", str(n), str(writers), prefix], check=True
            )
            runs = []
            for attempt in range(args.repeat):
                out = os.path.join(work, f"out{writers}.{attempt}.jsonl")
                runs.append(drain(prefix, writers, out))
                os.remove(out)
            runs.sort(key=lambda r: r["seconds"])
            mid = runs[len(runs) // 2]
            report.add(
                f"{writers} writer(s) draining the records of {n:,} tasks",
                f"{n / mid['seconds']:,.0f} tasks/s = **{off / mid['seconds']:.2f}x the "
                f"session's rate**; writers' CPU {mid['cpu'] / n * 1e6:.1f} µs/task "
                f"({mid['system'] / n * 1e6:.1f} system), {mid['faults'] / n:.2f} minor "
                "faults/task",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report.table())


if __name__ == "__main__":
    main()
