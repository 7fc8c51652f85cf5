"""rhapsody-py 0.6.0's Dragon backend (built on Dragon's ``Batch``) on the workloads of
``bench_dragon.py``. Dragon hosts one runtime at a time, so this runs as its own ``dragon``
invocation, from a virtualenv with ``rhapsody-py==0.6.0`` and ``dragonhpc==0.15.0``:

    dragon /path/to/venv/bin/python benchmarks/bench_dragon_rhapsody_py.py [--functions N]

Each workload has a time limit (rhapsody-py is slow here): the rate counts the tasks that
finished within it.
"""

from __future__ import annotations

import argparse
import asyncio
import time


def noop(x):
    return x


async def run(kind: str, n: int, limit: float) -> float:
    # rhapsody-py 0.6.0's documented usage.
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import DragonExecutionBackend

    backend = await DragonExecutionBackend()
    async with Session(backends=[backend]) as session:
        t = time.perf_counter()
        if kind == "function":
            tasks = [ComputeTask(function=noop, args=(i,)) for i in range(n)]
        else:
            tasks = [ComputeTask(executable="/bin/true") for _ in range(n)]
        await session.submit_tasks(tasks)
        done = 0
        try:
            for task in asyncio.as_completed([asyncio.ensure_future(_wait(f)) for f in tasks]):
                await asyncio.wait_for(task, max(0.01, limit - (time.perf_counter() - t)))
                done += 1
        except TimeoutError:
            pass
        return done / (time.perf_counter() - t)


async def _wait(task):
    return await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=200)
    parser.add_argument("--executables", type=int, default=50)
    parser.add_argument("--limit", type=float, default=60.0)
    args = parser.parse_args()
    f = asyncio.run(run("function", args.functions, args.limit))
    print(f"rhapsody-py 0.6.0 Dragon backend: functions {f:,.1f}/s", flush=True)
    e = asyncio.run(run("executable", args.executables, args.limit))
    print(f"rhapsody-py 0.6.0 Dragon backend: executables {e:,.1f}/s", flush=True)


if __name__ == "__main__":
    main()
