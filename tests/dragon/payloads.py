"""Functions the tests run on Dragon processes (pickled by value: workers need not import them)."""

from __future__ import annotations

import asyncio
import os
import signal
import time


def square(x: int = 3) -> int:
    return x * x


async def async_square(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def boom(message: str = "bad input") -> None:
    raise ValueError(message)


def sleep_forever(pid_file: str) -> None:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)


def die_hard() -> None:
    os._exit(3)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def where_am_i() -> tuple[int, int, str | None]:
    from dragon.native.machine import current

    return os.getpid(), current().h_uid, os.environ.get("CUDA_VISIBLE_DEVICES")


def chatty(x: int) -> int:
    print(f"out {x}")
    import sys

    print(f"err {x}", file=sys.stderr)
    return x


def rank_info(tag: str) -> tuple[str, int]:
    return tag, os.getpid()


def fail_on_odd_pid() -> int:
    return os.getpid()


def shout(word: str) -> str:
    print(f"shout {word}", flush=True)
    return word


def placement_report(seconds: float = 0.0) -> dict:
    """What a placed rank saw: its rank variables, GPUs, CPU affinity, and when it ran."""
    start = time.time()
    time.sleep(seconds)
    env = os.environ
    return {
        "rank": env.get("RANK"),
        "world": env.get("WORLD_SIZE"),
        "local": env.get("LOCAL_RANK"),
        "cuda": env.get("CUDA_VISIBLE_DEVICES"),
        "omp": env.get("OMP_NUM_THREADS"),
        "cpus": sorted(os.sched_getaffinity(0)),
        "start": start,
        "end": time.time(),
    }
