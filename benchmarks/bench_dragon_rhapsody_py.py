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
        done, _ = await asyncio.wait([asyncio.ensure_future(x) for x in tasks], timeout=limit)
        return len(done) / (time.perf_counter() - t)


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
