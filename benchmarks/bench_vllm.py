"""AITasks through Session + VllmInferenceBackend vs a plain async HTTP client, same vLLM server.

One vLLM server (started by the backend, so both contenders talk to the very same replica):

- **throughput**: N completions requests at concurrency C -- the raw side is aiohttp with a
  semaphore of C, ours is N AITasks with ``max_in_flight=C``; rounds alternate raw/ours;
- **latency**: requests one at a time (nothing else in flight), alternating raw and ours; the
  added latency is the median of ours minus the median of raw;
- **driving-process CPU per request** in the throughput rounds (``time.process_time()`` of this
  process: the vLLM server is a process of its own), ours vs the raw client's.

Run with the Python that has vLLM (``rhapsody-vllm[cpu]`` and ``torch==2.13.0`` on this machine):
    python benchmarks/bench_vllm.py --model DIR   # DIR: a model; without it, a tiny one is made
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

import aiohttp

from rhapsody.api import AITask, Session
from rhapsody_vllm import VllmInferenceBackend, VllmModelConfig
from rhapsody_vllm.http_client import KEEPALIVE_SECONDS

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}


Figures = tuple[float, float]  # (requests per second, CPU µs of this process per request)


def _figures(n: int, t: float, c: float) -> Figures:
    return n / (time.perf_counter() - t), (time.process_time() - c) / n * 1e6


async def raw_round(http: aiohttp.ClientSession, url: str, n: int, c: int, tokens: int) -> Figures:
    gate = asyncio.Semaphore(c)

    async def one(i: int) -> None:
        async with gate:
            body = {"model": "tiny", "prompt": f"Hello {i}", "max_tokens": tokens}
            async with http.post(f"{url}/completions", json=body) as resp:
                data = await resp.json()
                assert resp.status == 200 and data["choices"], data

    t, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return _figures(n, t, cpu)


async def ours_round(session: Session, n: int, tokens: int) -> Figures:
    t, cpu = time.perf_counter(), time.process_time()
    tasks = [AITask(prompt=f"Hello {i}", max_tokens=tokens) for i in range(n)]
    await session.submit_tasks(tasks)
    await session.wait_tasks(tasks)
    figures = _figures(n, t, cpu)
    assert all(t.response is not None for t in tasks), [t.exception for t in tasks][:3]
    return figures


async def raw_one(http: aiohttp.ClientSession, url: str, tokens: int) -> float:
    t = time.perf_counter()
    body = {"model": "tiny", "prompt": "Hello", "max_tokens": tokens}
    async with http.post(f"{url}/completions", json=body) as resp:
        await resp.json()
    return time.perf_counter() - t


async def ours_one(session: Session, tokens: int) -> float:
    t = time.perf_counter()
    task = AITask(prompt="Hello", max_tokens=tokens)
    await session.submit_tasks([task])
    await task
    return time.perf_counter() - t


async def main(args: argparse.Namespace) -> None:
    config = VllmModelConfig(model=args.model, served_name="tiny", max_model_len=256, env=ENV)
    backend = VllmInferenceBackend(name="bench", model=config, max_in_flight=args.concurrency)
    async with Session(backends=[backend]) as session:
        url = backend.endpoints[0]
        # idle connections closed before the server closes them (its uvicorn: after 5 s), as
        # the backend's are: else a round that follows a slow one of ours fails at random with
        # "Server disconnected" on a connection the server was closing as the request left
        connector = aiohttp.TCPConnector(
            limit=args.concurrency + 16, keepalive_timeout=KEEPALIVE_SECONDS
        )
        async with aiohttp.ClientSession(connector=connector) as http:
            await raw_round(http, url, 64, args.concurrency, args.tokens)  # warm-up, both paths
            await ours_round(session, 64, args.tokens)
            raw, ours, raw_cpu, ours_cpu = [], [], [], []
            for _ in range(args.repeat):
                rate, cpu = await raw_round(http, url, args.n, args.concurrency, args.tokens)
                raw.append(rate)
                raw_cpu.append(cpu)
                rate, cpu = await ours_round(session, args.n, args.tokens)
                ours.append(rate)
                ours_cpu.append(cpu)
            raw_lat, ours_lat = [], []
            for _ in range(args.latency_n):
                raw_lat.append(await raw_one(http, url, args.latency_tokens))
                ours_lat.append(await ours_one(session, args.latency_tokens))
    r, o = statistics.median(raw), statistics.median(ours)
    rl, ol = statistics.median(raw_lat), statistics.median(ours_lat)
    print(f"throughput, {args.n} requests x {args.tokens} tokens at concurrency {args.concurrency}")
    print(f"  raw aiohttp client       {r:8.1f} req/s   (rounds: {[round(x) for x in raw]})")
    print(f"  Session + vLLM backend   {o:8.1f} req/s   (rounds: {[round(x) for x in ours]})")
    pairs = statistics.median(b / a for a, b in zip(raw, ours, strict=True))
    print(f"  ratio of medians         {o / r:.3f}x")
    print(f"  median of paired ratios  {pairs:.3f}x   (the server's own dips hit both sides)")
    rc, oc = statistics.median(raw_cpu), statistics.median(ours_cpu)
    print(f"  driving-process CPU per request: raw {rc:.0f} µs, ours {oc:.0f} µs ({oc / rc:.2f}x)")
    print(f"latency, {args.latency_n} sequential requests x {args.latency_tokens} token(s)")
    print(f"  raw median {rl * 1e3:.2f} ms, ours median {ol * 1e3:.2f} ms")
    print(f"  added median latency     {(ol - rl) * 1e3:+.2f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="model path (default: a tiny random Llama made here)")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--latency-n", type=int, default=200)
    p.add_argument("--latency-tokens", type=int, default=1)
    args = p.parse_args()
    if args.model is None:
        sys.path.insert(0, os.path.join(HERE, "..", "tests", "vllm"))
        from tiny_model import make

        args.model = str(make(os.path.join(tempfile.mkdtemp(prefix="bench-vllm-"), "tiny")))
    asyncio.run(main(args))
