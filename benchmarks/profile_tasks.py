"""Where the driving process's CPU goes, per task: a yappi CPU profile of every thread of one
benchmark workload, ours or the raw engine's. Usage::

    python benchmarks/profile_tasks.py concurrent-exe --size 2000 [--raw] [--top 25]
    python benchmarks/profile_tasks.py concurrent-function --size 100000
    python benchmarks/profile_tasks.py telemetry --size 100000 [--no-file]

Prints the CPU time per task of each thread (by name), then the functions with the most own CPU
time per task, all threads together. Profiling slows the run down (several-fold for function
tasks): compare shares and ratios between runs, not the totals with an unprofiled benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

import yappi  # type: ignore[import-not-found]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_concurrent


async def workload(kind: str, n: int, raw: bool, file: bool) -> None:
    if kind == "concurrent-exe":
        await (
            bench_concurrent.raw_executables(n)
            if raw
            else bench_concurrent.session_run(n, "executable")
        )
    elif kind == "concurrent-function":
        await (
            bench_concurrent.raw_functions(n)
            if raw
            else bench_concurrent.session_run(n, "function")
        )
    elif kind == "telemetry":
        from rhapsody.api import ComputeTask, Session
        from rhapsody.backends import ConcurrentExecutionBackend

        directory = tempfile.mkdtemp(prefix="rhapsody-profile-")
        try:
            session = Session(backends=[await ConcurrentExecutionBackend()])
            await session.start_telemetry(checkpoint_path=directory if file else None)
            tasks = [ComputeTask(function=bench_concurrent.noop) for _ in range(n)]
            async with session:
                await session.submit_tasks(tasks)
                await session.wait_tasks(tasks)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    else:
        raise SystemExit(f"unknown workload {kind!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["concurrent-exe", "concurrent-function", "telemetry"])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--raw", action="store_true", help="the raw engine instead of ours")
    parser.add_argument("--no-file", action="store_true", help="telemetry without its file")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    from rhapsody.backends import ConcurrentExecutionBackend  # noqa: F401 - not a per-task cost

    n = args.size
    yappi.set_clock_type("cpu")
    yappi.start(builtins=True, profile_threads=True)
    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(workload(args.kind, n, args.raw, not args.no_file))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    yappi.stop()
    who = "raw" if args.raw else "ours"
    print(
        f"{args.kind} ({who}), {n:,} tasks, profiled: {n / seconds:,.0f}/s, "
        f"{cpu / n * 1e6:.1f} µs of process CPU per task"
    )
    threads = {t.id: t.name for t in yappi.get_thread_stats()}
    per_thread: dict[str, float] = defaultdict(float)
    for t in yappi.get_thread_stats():
        per_thread[t.name] += t.ttot
    print("\nCPU per task by thread (yappi):")
    for name, total in sorted(per_thread.items(), key=lambda kv: -kv[1]):
        print(f"  {total / n * 1e6:9.2f} µs  {name}")
    own: dict[tuple[str, str], float] = defaultdict(float)
    calls: dict[tuple[str, str], int] = defaultdict(int)
    for stat in yappi.get_func_stats():
        where = f"{os.path.basename(stat.module)}:{stat.lineno}"
        key: Any = (f"{stat.name} ({where})", threads.get(stat.ctx_id, "?"))
        own[key] += stat.tsub
        calls[key] += stat.ncall
    print(f"\nTop {args.top} functions by own CPU per task (function, thread, calls per task):")
    for key, total in sorted(own.items(), key=lambda kv: -kv[1])[: args.top]:
        name, thread = key
        print(f"  {total / n * 1e6:8.2f} µs  {calls[key] / n:6.2f}/task  [{thread}]  {name}")


if __name__ == "__main__":
    main()
