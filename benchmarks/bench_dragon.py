"""Dragon backend vs raw Dragon primitives, side by side in one run. Start with the launcher:

    dragon benchmarks/bench_dragon.py [--functions N] [--executables M]

Functions: our Session on DragonExecutionBackendV3 vs Dragon's ``multiprocessing.Pool``:
``apply_async`` per call (one handle per call, as a Session task), ``imap_unordered`` with
chunksize 64 (bulk, each result as it comes) and ``map`` (bulk, one list at the end).
Ours are awaited with ``session.wait_tasks`` and, as a second figure, with
``asyncio.gather(*tasks)`` (which wraps each task in an asyncio Task: ~30 µs each here).
Executables: vs ``dragon.native.process.Process`` of /bin/true, started one after the other and
joined. Rounds alternate raw and ours (task construction inside our timed region); medians
and the median of paired ratios are reported. Ratios > 1 mean we are faster.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from typing import Any

import dragon  # noqa: F401 - registers the "dragon" start method


def noop(x):
    return x


Figures = tuple[float, float]  # (tasks per second, driving-process CPU µs per task)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(ours: bool) -> float:
    """CPU seconds of this (driving) process's threads that serve one contender: ours are the
    main thread and the backend's ``rhapsody-*`` threads; the raw Pool's are every other one.
    Both sides' helper threads live in this process the whole run (Dragon's Pool keeps its
    result and task handler threads, which wait in Dragon queues, busy), so process-wide CPU
    would charge each side with the other's idle threads."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    total = 0.0
    for tid in os.listdir("/proc/self/task"):
        name = names.get(int(tid), "")
        if (
            (name == "MainThread" or name.startswith("rhapsody-"))
            if ours
            else not name.startswith("rhapsody-")
        ):
            try:
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _figures(n: int, t: float, c: float, ours: bool = False) -> Figures:
    """Rate, and the CPU the contender's threads of this (driving) process spent per task."""
    return n / (time.perf_counter() - t), (_cpu(ours) - c) / n * 1e6


def raw_apply(pool: Any, k: int) -> Figures:
    """One call, one handle: what a Session task is (submitted alone, awaited alone)."""
    t, c = time.perf_counter(), _cpu(False)
    handles = [pool.apply_async(noop, (i,)) for i in range(k)]
    for handle in handles:
        handle.get()
    return _figures(k, t, c)


def raw_imap(pool: Any, n: int) -> Figures:
    t, c = time.perf_counter(), _cpu(False)
    for _ in pool.imap_unordered(noop, range(n), chunksize=64):
        pass
    return _figures(n, t, c)


def raw_map(pool: Any, n: int) -> Figures:
    t, c = time.perf_counter(), _cpu(False)
    pool.map(noop, range(n))
    return _figures(n, t, c)


def raw_processes(m: int) -> Figures:
    from dragon.native.process import Process

    t, c = time.perf_counter(), _cpu(False)
    procs = []
    for _ in range(m):
        p = Process(target="/bin/true")
        p.start()
        procs.append(p)
    for p in procs:
        p.join()
    return _figures(m, t, c)


async def ours_functions(session: Any, n: int, gather: bool = False) -> Figures:
    """Tasks awaited with ``session.wait_tasks`` (the bulk wait), or each awaited through
    ``asyncio.gather(*tasks)``, which wraps every task in an asyncio Task of its own."""
    from rhapsody.api import ComputeTask

    t, c = time.perf_counter(), _cpu(True)
    tasks = [ComputeTask(function=noop, args=(i,)) for i in range(n)]
    await session.submit_tasks(tasks)
    if gather:
        await asyncio.gather(*tasks)
    else:
        await session.wait_tasks(tasks)
    return _figures(n, t, c, ours=True)


async def ours_executables(session: Any, m: int) -> Figures:
    from rhapsody.api import ComputeTask

    t, c = time.perf_counter(), _cpu(True)
    tasks = [ComputeTask(executable="/bin/true") for _ in range(m)]
    await session.submit_tasks(tasks)
    await session.wait_tasks(tasks)
    return _figures(m, t, c, ours=True)


async def rounds(args: argparse.Namespace, workers: int) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {}

    def add(key: str, figures: Figures) -> None:
        rate, cpu = figures
        got.setdefault(key, []).append(rate)
        got.setdefault(f"{key}_cpu", []).append(cpu)
        print(f"  {key}: {rate:,.0f}/s, {cpu:.1f} µs CPU/task", file=sys.stderr, flush=True)

    pool = mp.Pool(workers)
    try:
        await _rounds_on(pool, args, workers, add)
    except BaseException:
        pool.terminate()  # its result thread would keep the interpreter from exiting
        raise
    pool.close()
    pool.join()
    return got


async def _rounds_on(pool: Any, args: argparse.Namespace, workers: int, add: Any) -> None:
    from null_backend import NullBackend

    from rhapsody.api import Session
    from rhapsody.backends import DragonExecutionBackendV3

    pool.map(noop, range(100))
    backend = await DragonExecutionBackendV3(num_workers=workers)
    nothing = Session(backends=[await NullBackend()])  # the ceiling of any per-task backend
    async with Session(backends=[backend]) as session, nothing:
        await ours_functions(session, 100)  # warm-up
        await ours_functions(nothing, 100)
        add("apply", raw_apply(pool, min(args.functions, 2000)))
        for round_no in range(args.repeat):  # alternating, so that noise hits both
            add("imap", raw_imap(pool, args.functions))
            add("map", raw_map(pool, args.functions))
            add("ours_f", await ours_functions(session, args.functions))
            add("ours_g", await ours_functions(session, args.functions, gather=True))
            add("ceiling", await ours_functions(nothing, args.functions))
            # whichever runs second pays for the first's exits still being cleaned up by
            # Dragon: the order alternates from round to round
            if round_no % 2:
                add("ours_e", await ours_executables(session, args.executables))
                add("proc", raw_processes(args.executables))
            else:
                add("proc", raw_processes(args.executables))
                add("ours_e", await ours_executables(session, args.executables))


def paired(ours: list[float], raw: list[float]) -> float:
    return statistics.median(o / r for o, r in zip(ours, raw, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=20000)
    parser.add_argument("--executables", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    mp.set_start_method("dragon")
    workers = len(os.sched_getaffinity(0))
    got = asyncio.run(rounds(args, workers))
    med = {k: statistics.median(v) for k, v in got.items()}
    f = med["ours_f"]
    print(f"functions ({args.functions}, {workers} workers, median of {args.repeat} rounds):")
    print(f"  ours (Session + DragonExecutionBackendV3, wait_tasks)  {f:,.0f}/s")
    g = med["ours_g"]
    print(f"  ours, awaited with asyncio.gather(*tasks)  {g:,.0f}/s  ({g / med['imap']:.2f}x imap)")
    a, i, m = med["apply"], med["imap"], med["map"]
    c = med["ceiling"]
    print(
        f"  the session alone, on a backend that runs nothing (benchmarks/null_backend.py): "
        f"{c:,.0f}/s = {c / i:.2f}x imap (paired {paired(got['ceiling'], got['imap']):.2f}x), "
        f"{med['ceiling_cpu']:.1f} µs CPU/task: no per-task backend can go faster"
    )
    print(f"  raw Pool.apply_async per call         {a:,.0f}/s  ratio {f / a:.1f}x")
    print(
        f"  raw Pool.imap_unordered(chunksize=64) {i:,.0f}/s  ratio {f / i:.2f}x"
        f"  (paired {paired(got['ours_f'], got['imap']):.2f}x)"
    )
    print(
        f"  raw Pool.map                          {m:,.0f}/s  ratio {f / m:.3f}x"
        f"  (paired {paired(got['ours_f'], got['map']):.3f}x)"
    )
    print(
        "  driving-process CPU per task (µs): ours {:.1f} (with gather {:.1f}), imap {:.1f}, "
        "map {:.1f}, apply_async {:.1f}".format(
            med["ours_f_cpu"],
            med["ours_g_cpu"],
            med["imap_cpu"],
            med["map_cpu"],
            med["apply_cpu"],
        )
    )
    e, p = med["ours_e"], med["proc"]
    print(f"executables ({args.executables} x /bin/true, median of {args.repeat} rounds):")
    print(
        f"  ours {e:,.0f}/s, raw Process {p:,.0f}/s, ratio {e / p:.2f}x"
        f"  (paired {paired(got['ours_e'], got['proc']):.2f}x)"
    )
    print(
        "  driving-process CPU per task (µs): ours {:.1f}, raw Process {:.1f}".format(
            med["ours_e_cpu"], med["proc_cpu"]
        )
    )


if __name__ == "__main__":
    main()
