"""Resource requests: what scheduling costs, and how tightly a mixed batch packs.

Each measurement runs in a fresh interpreter (``python bench_resources.py one ...``). Usage::

    python benchmarks/bench_resources.py [--cost-size 100000] [--tasks 300] [--cores 8]
        [--rhapsody-py-python PATH] [--repeat 3]

* cost: no-op function tasks with an explicit ``cores_per_rank=1`` vs the same tasks without a
  request, on the concurrent backend (rate ratio, and the driving process's CPU per task);
* packing: ``--tasks`` sleep executables of 1, 2 and 4 cores with known durations (seeded) on
  ``--cores`` cores: the makespan against the lower bound (total core-seconds / cores, or the
  longest task) and the peak of cores in use (from each task's start and end), for our Session,
  a plain ``ThreadPoolExecutor`` with one thread per core, Dask (a LocalCluster worker with
  ``--cores`` threads declaring ``CPU=--cores``, tasks submitted with ``resources={"CPU": c}``)
  and rhapsody-py 0.6 (which has no resource request: it runs the batch as it comes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Report, median_run

SEED = 12


def batch(n: int) -> list[tuple[int, float]]:
    rng = random.Random(SEED)
    return [(rng.choice([1, 2, 4]), round(rng.uniform(0.1, 0.3), 3)) for _ in range(n)]


def lower_bound(jobs: list[tuple[int, float]], cores: int) -> float:
    return max(sum(c * d for c, d in jobs) / cores, max(d for _, d in jobs))


def peak_use(intervals: list[tuple[float, float, int]]) -> int:
    events = sorted([(s, a) for s, _, a in intervals] + [(e, -a) for _, e, a in intervals])
    use = peak = 0
    for _, amount in events:
        use += amount
        peak = max(peak, use)
    return peak


def noop() -> None:
    return None


def sleep_exe(seconds: float) -> tuple[float, float]:
    start = time.time()
    subprocess.run(["sleep", str(seconds)], check=True)
    return start, time.time()


# -- contenders ------------------------------------------------------------------------------------


async def session_cost(n: int, requested: bool) -> None:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    async with Session([ConcurrentExecutionBackend()]) as session:
        if requested:
            tasks = [ComputeTask(function=noop, cores_per_rank=1) for _ in range(n)]
        else:
            tasks = [ComputeTask(function=noop) for _ in range(n)]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        assert all(t.state == "DONE" for t in tasks)


async def session_pack(jobs: list[tuple[int, float]], cores: int) -> tuple[list[Any], float]:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    async with Session([ConcurrentExecutionBackend(cores=cores)]) as session:
        tasks = [
            ComputeTask(executable="sleep", arguments=[str(d)], cores_per_rank=c) for c, d in jobs
        ]
        start = time.perf_counter()
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        seconds = time.perf_counter() - start
        assert all(t.state == "DONE" for t in tasks)
        spans = [(t.started_at, t.ended_at, c) for t, (c, _) in zip(tasks, jobs, strict=True)]
        return spans, seconds


def tpe_pack(jobs: list[tuple[int, float]], cores: int) -> tuple[list[Any], float]:
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        spans = list(pool.map(sleep_exe, [d for _, d in jobs]))
    seconds = time.perf_counter() - start
    return [(s, e, c) for (s, e), (c, _) in zip(spans, jobs, strict=True)], seconds


def dask_pack(jobs: list[tuple[int, float]], cores: int) -> tuple[list[Any], float]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=cores,
            resources={"CPU": cores},
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.submit(sleep_exe, 0.0, pure=False).result()  # warm: the worker has started
        start = time.perf_counter()
        futures = [client.submit(sleep_exe, d, resources={"CPU": c}, pure=False) for c, d in jobs]
        spans = client.gather(futures)
        seconds = time.perf_counter() - start
    return [(s, e, c) for (s, e), (c, _) in zip(spans, jobs, strict=True)], seconds


async def rhapsody_py_pack(jobs: list[tuple[int, float]], cores: int) -> tuple[list[Any], float]:
    # rhapsody-py has no resource request: the batch runs as it comes. Its tasks carry no
    # start/end times, so only the makespan is recorded.
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    backend = await ConcurrentExecutionBackend()
    async with Session(backends=[backend]) as session:
        tasks = [ComputeTask(executable="sleep", arguments=[str(d)]) for _, d in jobs]
        start = time.perf_counter()
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        return [], time.perf_counter() - start


def run_one(contender: str, kind: str, n: int) -> dict[str, Any]:
    if kind in ("plain", "requested"):
        from rhapsody.backends import ConcurrentExecutionBackend  # noqa: F401 - not per task

        start, cpu = time.perf_counter(), time.process_time()
        asyncio.run(session_cost(n, kind == "requested"))
        return {
            "seconds": time.perf_counter() - start,
            "cpu_per_task_us": (time.process_time() - cpu) / n * 1e6,
        }
    cores = int(os.environ.get("BENCH_CORES", "8"))
    jobs = batch(n)
    if contender == "session":
        spans, seconds = asyncio.run(session_pack(jobs, cores))
    elif contender == "tpe":
        spans, seconds = tpe_pack(jobs, cores)
    elif contender == "dask":
        spans, seconds = dask_pack(jobs, cores)
    else:
        spans, seconds = asyncio.run(rhapsody_py_pack(jobs, cores))
    peak = peak_use(spans) if spans else None
    return {"seconds": seconds, "peak": peak, "bound": lower_bound(jobs, cores)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        _, _, contender, kind, n = sys.argv
        print(json.dumps(run_one(contender, kind, int(n))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-size", type=int, default=100000)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rhapsody-py-python", default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    os.environ["BENCH_CORES"] = str(args.cores)
    ours, report = sys.executable, Report()

    def run(python: str, contender: str, kind: str, n: int) -> dict[str, Any]:
        return median_run(python, __file__, contender, kind, n, args.repeat, args.timeout)

    n = args.cost_size
    if n:
        plain, requested = run(ours, "session", "plain", n), run(ours, "session", "requested", n)
        ratio = plain["seconds"] / requested["seconds"]
        report.add(
            f"{n:,} no-op functions, cores_per_rank=1 vs no request",
            f"**{ratio:.2f}x** the rate; driving-process CPU {requested['cpu_per_task_us']:.1f} "
            f"vs {plain['cpu_per_task_us']:.1f} µs/task",
        )
    contenders = [(ours, "session"), (ours, "tpe"), (ours, "dask")] if args.tasks else []
    if args.rhapsody_py_python and args.tasks:
        contenders.append((args.rhapsody_py_python, "rhapsody-py"))
    for python, contender in contenders:
        result = run(python, contender, "pack", args.tasks)
        report.add(
            f"{args.tasks} sleep executables of 1/2/4 cores on {args.cores} cores: {contender}",
            f"makespan **{result['seconds'] / result['bound']:.3f}x** the lower bound; peak "
            f"{result['peak'] if result['peak'] is not None else 'unknown (not recorded)'} "
            "cores in use",
        )
    print(report.table())


if __name__ == "__main__":
    main()
