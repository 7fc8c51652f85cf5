"""Dragon backend vs raw Dragon primitives, side by side in one run. Start with the launcher:

    dragon benchmarks/bench_dragon.py [--functions N] [--executables M]

Functions: our Session on DragonExecutionBackendV3 vs Dragon's ``multiprocessing.Pool``:
``apply_async`` per call (one handle per call, as a Session task), ``imap_unordered`` with
chunksize 64 (bulk, each result as it comes) and ``map`` (bulk, one list at the end).
Executables: vs ``dragon.native.process.Process`` of /bin/true, started one after the other and
joined. Ratios > 1 mean we are faster.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time

import dragon  # noqa: F401 - registers the "dragon" start method


def noop(x):
    return x


def raw_pool(n: int, workers: int) -> tuple[float, float, float]:
    pool = mp.Pool(workers)
    pool.map(noop, range(100))
    # One call, one handle: what a Session task is (submitted alone, awaited alone).
    t = time.perf_counter()
    handles = [pool.apply_async(noop, (i,)) for i in range(n)]
    for handle in handles:
        handle.get()
    applied = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in pool.imap_unordered(noop, range(n), chunksize=64):
        pass
    imap = n / (time.perf_counter() - t)
    t = time.perf_counter()
    pool.map(noop, range(n))
    mapped = n / (time.perf_counter() - t)
    pool.close()
    pool.join()
    return applied, imap, mapped


def raw_processes(m: int) -> float:
    from dragon.native.process import Process

    t = time.perf_counter()
    procs = []
    for _ in range(m):
        p = Process(target="/bin/true")
        p.start()
        procs.append(p)
    for p in procs:
        p.join()
    return m / (time.perf_counter() - t)


async def ours(n: int, m: int, workers: int) -> tuple[float, float]:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import DragonExecutionBackendV3

    backend = await DragonExecutionBackendV3(num_workers=workers)
    async with Session(backends=[backend]) as session:
        warm = [ComputeTask(function=noop, args=(i,)) for i in range(100)]
        await session.submit_tasks(warm)
        await asyncio.gather(*warm)
        tasks = [ComputeTask(function=noop, args=(i,)) for i in range(n)]
        t = time.perf_counter()
        await session.submit_tasks(tasks)
        await asyncio.gather(*tasks)
        functions = n / (time.perf_counter() - t)
        tasks = [ComputeTask(executable="/bin/true") for _ in range(m)]
        t = time.perf_counter()
        await session.submit_tasks(tasks)
        await asyncio.gather(*tasks)
        executables = m / (time.perf_counter() - t)
    return functions, executables


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=20000)
    parser.add_argument("--executables", type=int, default=200)
    args = parser.parse_args()
    mp.set_start_method("dragon")
    workers = len(os.sched_getaffinity(0))
    applied, imap, mapped = raw_pool(args.functions, workers)
    proc = raw_processes(args.executables)
    f, e = asyncio.run(ours(args.functions, args.executables, workers))
    print(f"functions ({args.functions}, {workers} workers): ours {f:,.0f}/s")
    print(f"  raw Pool.apply_async per call {applied:,.0f}/s  ratio {f / applied:.2f}x")
    print(f"  raw Pool.imap_unordered(chunksize=64) {imap:,.0f}/s  ratio {f / imap:.2f}x")
    print(f"  raw Pool.map {mapped:,.0f}/s  ratio {f / mapped:.3f}x")
    print(
        f"executables ({args.executables}): ours {e:,.0f}/s, raw Process {proc:,.0f}/s, "
        f"ratio {e / proc:.2f}x"
    )


if __name__ == "__main__":
    main()
