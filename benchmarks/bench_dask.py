"""Side-by-side benchmark on Dask: Session + DaskExecutionBackend vs the raw Dask client vs
rhapsody-py 0.6.0, each on its own ``LocalCluster(n_workers=W, threads_per_worker=1)``, W the
CPUs this process may use unless ``--workers`` says otherwise (the same command means the same on
2 cores and on 128).

    python benchmarks/bench_dask.py --size 10000 [--repeat 3] [--workers W]
        [--rhapsody-py-python PATH]

Cluster start-up is outside the timed region; task construction, submission and collecting
every result are inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Report, median_rate, median_run

EXE = "/bin/true"
WORKERS_VARIABLE = "BENCH_DASK_WORKERS"  # how the parent tells each measured run


def worker_count() -> int:
    return int(os.environ.get(WORKERS_VARIABLE) or len(os.sched_getaffinity(0)))


def noop(i: int) -> int:
    return i


def run_true(_: int) -> int:
    return subprocess.run([EXE], capture_output=True).returncode


async def run(contender: str, kind: str, n: int) -> tuple[float, float]:
    """Seconds for ``n`` tasks, and this (driving) process's CPU seconds meanwhile (its
    scheduler, in-process for every contender, included)."""
    from distributed import Client, LocalCluster

    async with LocalCluster(
        n_workers=worker_count(),
        threads_per_worker=1,
        asynchronous=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        if contender == "raw":
            async with Client(cluster, asynchronous=True) as client:
                await client.gather(client.map(noop, range(10), pure=False))  # warm up
                start, cpu = time.perf_counter(), time.process_time()
                fn = noop if kind == "function" else run_true
                results = await client.gather(client.map(fn, range(n), pure=False))
                assert len(results) == n
                return time.perf_counter() - start, time.process_time() - cpu
        from rhapsody.api import ComputeTask, Session

        if contender == "session":
            from rhapsody.backends.execution import DaskExecutionBackend
        else:
            from rhapsody.backends.execution.dask_parallel import DaskExecutionBackend
        backend = await DaskExecutionBackend(cluster=cluster)
        async with Session(backends=[backend]) as session:
            warm = [ComputeTask(function=noop, args=(i,)) for i in range(10)]
            await session.submit_tasks(warm)
            await session.wait_tasks(warm)
            start, cpu = time.perf_counter(), time.process_time()
            if kind == "function":
                tasks = [ComputeTask(function=noop, args=(i,)) for i in range(n)]
            else:
                tasks = [ComputeTask(executable=EXE) for _ in range(n)]
            await session.submit_tasks(tasks)
            await session.wait_tasks(tasks)
            elapsed, used = time.perf_counter() - start, time.process_time() - cpu
            failed = [t for t in tasks if t["state"] != "DONE"]
            assert not failed, failed[:3]
            return elapsed, used


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        _, _, contender, kind, n = sys.argv
        seconds, cpu = asyncio.run(run(contender, kind, int(n)))
        print(json.dumps({"seconds": seconds, "cpu_per_task_us": cpu / int(n) * 1e6}))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rhapsody-py-python", default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workers", type=int, default=None, help="default: the CPUs available")
    parser.add_argument(
        "--kinds", nargs="+", default=["function", "executable"], choices=["function", "executable"]
    )
    args = parser.parse_args()
    os.environ[WORKERS_VARIABLE] = str(args.workers or worker_count())
    print(f"{os.environ[WORKERS_VARIABLE]} single-threaded Dask workers")
    report, n = Report(), args.size
    for kind in args.kinds:
        what = "no-op functions" if kind == "function" else f"{EXE} executables"
        raw_run = median_run(sys.executable, __file__, "raw", kind, n, args.repeat, args.timeout)
        ses_run = median_run(
            sys.executable, __file__, "session", kind, n, args.repeat, args.timeout
        )
        raw, ses = n / raw_run["seconds"], n / ses_run["seconds"]
        report.add(f"{n} {what}: raw client.map + gather", f"{raw:,.0f}/s")
        report.add(
            f"{n} {what}: Session + DaskExecutionBackend",
            f"{ses:,.0f}/s = **{ses / raw:.2f}x raw**",
        )
        report.add(
            f"{n} {what}: driving-process CPU per task (scheduler included), Session vs raw",
            f"{ses_run['cpu_per_task_us']:.0f} vs {raw_run['cpu_per_task_us']:.0f} µs",
        )
        if args.rhapsody_py_python:
            rpy = median_rate(
                args.rhapsody_py_python, __file__, "rhapsody-py", kind, n, 1, args.timeout
            )
            report.add(f"{n} {what}: rhapsody-py 0.6.0", f"{rpy:,.0f}/s = {rpy / raw:.2f}x raw")
    print(report.table())


if __name__ == "__main__":
    main()
