"""Side-by-side benchmark: Session + concurrent backend vs the raw engine vs rhapsody-py.

Each measurement runs in a fresh interpreter (``python bench_concurrent.py one ...``) so that
contenders do not share warm caches or leaked threads; rhapsody-py runs from its own virtualenv
(it also installs a package named ``rhapsody``). Usage::

    python benchmarks/bench_concurrent.py --sizes 5000 100000 --exe-size 2000 \
        [--process-size 5000] [--rhapsody-py-python PATH] [--repeat 3]

Prints a markdown table of throughputs and ratios (ratios are what to compare across machines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Report, measure, median_rate, median_run

EXE = "/bin/true"
# Worker processes of the process-pool contenders: one per CPU we may use, both sides alike.
POOL_WORKERS = len(os.sched_getaffinity(0))
# Same bound on concurrent subprocesses for every contender (our default on a small machine).
EXE_CONCURRENCY = max(16, 2 * len(os.sched_getaffinity(0)))  # scaled to the CPUs we may use


def noop() -> None:
    return None


_TIMED_FROM: list[tuple[float, float]] = []


def timed_from_here() -> None:
    """The timed part starts here (wall clock, CPU), not with the run: after a process pool's
    warm-up, since a pool starts its workers on first use, once."""
    _TIMED_FROM.append((time.perf_counter(), time.process_time()))


# -- contenders ------------------------------------------------------------------------------------


async def raw_functions(n: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor() as pool:
        await asyncio.gather(*[loop.run_in_executor(pool, noop) for _ in range(n)])


def process_pool() -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: what docs/concurrent-backend.md tells users to give a process pool
    return ProcessPoolExecutor(POOL_WORKERS, mp_context=multiprocessing.get_context("spawn"))


async def raw_process_functions(n: int) -> None:
    loop = asyncio.get_running_loop()
    with process_pool() as pool:
        await asyncio.gather(*[loop.run_in_executor(pool, noop) for _ in range(4 * POOL_WORKERS)])
        timed_from_here()
        await asyncio.gather(*[loop.run_in_executor(pool, noop) for _ in range(n)])


async def raw_executables(n: int) -> None:
    gate = asyncio.Semaphore(EXE_CONCURRENCY)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                EXE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            await proc.communicate()

    await asyncio.gather(*[one() for _ in range(n)])


async def warm_session_pool(session: Any) -> None:
    from rhapsody.api import ComputeTask

    warm = [ComputeTask(function=noop) for _ in range(4 * POOL_WORKERS)]
    await session.submit_tasks(warm)
    await session.wait_tasks(warm)
    timed_from_here()


async def session_run(n: int, kind: str) -> None:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    pool = process_pool() if kind == "process-function" else None
    backend = await ConcurrentExecutionBackend(pool, max_processes=EXE_CONCURRENCY)
    async with Session(backends=[backend]) as session:
        if pool is not None:
            await warm_session_pool(session)
        if kind in ("function", "process-function"):
            tasks = [ComputeTask(function=noop) for _ in range(n)]
        else:
            tasks = [ComputeTask(executable=EXE) for _ in range(n)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        assert all(t.state == "DONE" for t in tasks), "a benchmark task failed"


async def rhapsody_py_run(n: int, kind: str) -> None:
    # rhapsody-py 0.6.0's documented usage: ComputeTask + Session + ConcurrentExecutionBackend.
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    pool = process_pool() if kind == "process-function" else None
    backend = await ConcurrentExecutionBackend(pool)
    async with Session(backends=[backend]) as session:
        if pool is not None:
            await warm_session_pool(session)
        if kind in ("function", "process-function"):
            tasks = [ComputeTask(function=noop) for _ in range(n)]
        else:
            tasks = [ComputeTask(executable=EXE) for _ in range(n)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)


async def session_memory(n: int) -> float:
    """Traced bytes per in-flight function task (all tasks blocked until measured)."""
    import threading

    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    gate = threading.Event()
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        warm = [ComputeTask(function=noop) for _ in range(100)]
        await session.submit_tasks(warm)
        await session.wait_tasks(warm)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tasks = [ComputeTask(function=gate.wait) for _ in range(n)]
        await session.submit_tasks(tasks)
        per_task = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        gate.set()
        await session.wait_tasks(tasks)
    return per_task


async def rhapsody_py_memory(n: int) -> float:
    import threading

    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    gate = threading.Event()
    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tasks = [ComputeTask(function=gate.wait) for _ in range(n)]
        await session.submit_tasks(tasks)
        await asyncio.sleep(0)
        per_task = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        gate.set()
        await session.wait_tasks(tasks)
    return per_task


def run_one(contender: str, kind: str, n: int) -> dict[str, Any]:
    if kind == "memory":
        fn = session_memory if contender == "session" else rhapsody_py_memory
        return {"bytes_per_task": asyncio.run(fn(n))}
    if contender != "raw":  # one-time import and plugin discovery are not per-task costs
        from rhapsody.backends import ConcurrentExecutionBackend  # noqa: F401
    if contender == "raw":
        raws = {"function": raw_functions, "process-function": raw_process_functions}
        coro = raws.get(kind, raw_executables)(n)
    elif contender == "session":
        coro = session_run(n, kind)
    elif contender == "session-spawners":  # every start in a spawner thread, none on the loop
        from rhapsody.backends.concurrent import process_watch

        process_watch.SLOW_START, process_watch.SLOW_FOR = -1.0, 1e9
        coro = session_run(n, kind)
    else:
        coro = rhapsody_py_run(n, kind)
    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(coro)
    if _TIMED_FROM:
        start, cpu = _TIMED_FROM[-1]
    # CPU of this (driving) process and its threads, per task: the many-core ceiling is 1 / it
    return {
        "seconds": time.perf_counter() - start,
        "cpu_per_task_us": (time.process_time() - cpu) / n * 1e6,
    }


# -- orchestration ---------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        _, _, contender, kind, n = sys.argv
        print(json.dumps(run_one(contender, kind, int(n))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 100000])
    parser.add_argument("--exe-size", type=int, default=2000)
    parser.add_argument(
        "--process-size", type=int, default=5000, help="functions on a process pool (0: none)"
    )
    parser.add_argument("--memory-size", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rhapsody-py-python",
        default=None,
        help="python of a virtualenv with rhapsody-py==0.6.0 (omit to skip it)",
    )
    parser.add_argument(
        "--rhapsody-py-max",
        type=int,
        default=100000,
        help="largest function batch given to rhapsody-py (it is slow)",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    ours = sys.executable
    theirs = args.rhapsody_py_python
    report = Report()
    add = report.add

    def rate(python: str, contender: str, kind: str, n: int, repeat: int) -> float:
        return median_rate(python, __file__, contender, kind, n, repeat, args.timeout)

    def run(python: str, contender: str, kind: str, n: int, repeat: int) -> dict[str, Any]:
        return median_run(python, __file__, contender, kind, n, repeat, args.timeout)

    def side_by_side(kind: str, label: str, raw_name: str, n: int) -> None:
        """Ours vs the raw engine (and rhapsody-py) on ``n`` tasks of ``kind``: adds the rows."""
        raw_run = run(ours, "raw", kind, n, args.repeat)
        ses_run = run(ours, "session", kind, n, args.repeat)
        raw, ses = n / raw_run["seconds"], n / ses_run["seconds"]
        add(f"{label}: raw {raw_name}", f"{raw:,.0f}/s")
        add(f"{label}: Session", f"{ses:,.0f}/s = **{ses / raw:.2f}x raw**")
        add(
            f"{label}: driving-process CPU per task, Session vs raw",
            f"{ses_run['cpu_per_task_us']:.1f} vs {raw_run['cpu_per_task_us']:.1f} µs",
        )
        if kind == "executable":  # the loop-start trade-off (docs/concurrent-backend.md)
            spawned = run(ours, "session-spawners", kind, n, args.repeat)
            add(
                f"{label}: Session, every start in a spawner thread",
                f"{n / spawned['seconds']:,.0f}/s = {n / spawned['seconds'] / raw:.2f}x raw, "
                f"{spawned['cpu_per_task_us']:.1f} µs CPU/task",
            )
        if theirs and (kind != "function" or n <= args.rhapsody_py_max):
            rpy = rate(theirs, "rhapsody-py", kind, n, 1)
            add(
                f"{label}: rhapsody-py 0.6.0",
                f"{rpy:,.0f}/s = {rpy / raw:.2f}x raw (Session = {ses / rpy:.1f}x rhapsody-py)",
            )

    for n in args.sizes:
        side_by_side("function", f"functions, {n} tasks", "run_in_executor", n)
    if args.process_size:
        n = args.process_size
        label = f"functions on a {POOL_WORKERS}-process pool, {n} tasks"
        side_by_side("process-function", label, "run_in_executor", n)
    if args.exe_size:  # 0: functions only
        n = args.exe_size
        side_by_side("executable", f"executables, {n} x {EXE}", "create_subprocess_exec", n)
    m = args.memory_size
    if m:
        mem = measure(ours, __file__, "session", "memory", m, args.timeout)["bytes_per_task"]
        add(f"traced memory per in-flight task ({m} tasks): Session", f"{mem:,.0f} B")
        if theirs:
            mem = measure(theirs, __file__, "rhapsody-py", "memory", m, args.timeout)[
                "bytes_per_task"
            ]
            add(f"traced memory per in-flight task ({m} tasks): rhapsody-py 0.6.0", f"{mem:,.0f} B")
    print(report.table())


if __name__ == "__main__":
    main()
