"""rhapsody-py 0.6.0's side of bench_telemetry.py (run by its own virtualenv's python)::

python bench_telemetry_rhapsody_py.py on|off|on-memory N
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
import tracemalloc

DIR = tempfile.mkdtemp(prefix="rpy-telemetry-")


def noop() -> None:
    return None


class Drain(logging.Handler):
    seen = False

    def emit(self, record: logging.LogRecord) -> None:
        if "did not drain" in record.getMessage():
            Drain.seen = True


async def run(kind: str, n: int) -> dict:
    from rhapsody.api import ComputeTask, Session
    from rhapsody.backends import ConcurrentExecutionBackend

    logging.getLogger().addHandler(Drain())
    backend = await ConcurrentExecutionBackend()
    session = Session(backends=[backend])
    if kind.startswith("on"):
        await session.start_telemetry(checkpoint_path=DIR, resource_poll_interval=1.0)
    tasks = [ComputeTask(function=noop) for _ in range(n)]
    memory = kind.endswith("memory")
    if memory:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if memory else 0
    start = time.perf_counter()
    async with session:
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        traced = (tracemalloc.get_traced_memory()[0] - before) / n if memory else 0.0
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes_per_task": traced, "drain_warning": Drain.seen}


if __name__ == "__main__":
    result = asyncio.run(run(sys.argv[1], int(sys.argv[2])))
    shutil.rmtree(DIR, ignore_errors=True)
    print(json.dumps(result))
