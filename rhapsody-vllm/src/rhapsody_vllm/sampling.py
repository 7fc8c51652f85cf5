"""Telemetry's view of a vLLM service: each replica's load, from its Prometheus ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from rhapsody.telemetry.sampling import ResourceSample

if TYPE_CHECKING:
    from .backend import VllmInferenceBackend

log = logging.getLogger(__name__)

# vLLM's gauge names (the KV-cache one was renamed in vLLM 0.10)
GAUGES = {
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
}


def parse_gauges(text: str) -> dict[str, float]:
    """The gauges above from a Prometheus text exposition, summed over their label sets."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        key = GAUGES.get(name)
        if key is None:
            continue
        try:
            value = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        found[key] = found.get(key, 0.0) + value
    return found


class VllmReplicaSampler:
    """Per replica: requests running and waiting, KV-cache use (in ``attributes``); the sample's
    ``node_id`` is the replica's URL, its host in ``attributes``."""

    def __init__(self, backend: VllmInferenceBackend) -> None:
        self._backend = backend

    async def sample(self) -> Sequence[ResourceSample]:
        http = self._backend._http
        if http is None:
            return []
        roots = [url.removesuffix("/v1") for url in self._backend.endpoints]
        texts = await asyncio.gather(*(self._metrics(http, root) for root in roots))
        samples = []
        for root, text in zip(roots, texts, strict=True):
            if text is None:
                continue
            gauges = parse_gauges(text)
            samples.append(
                ResourceSample(
                    node_id=root,
                    attributes={"host": urlsplit(root).hostname, **gauges},
                )
            )
        return samples

    async def _metrics(self, http: aiohttp.ClientSession, root: str) -> str | None:
        try:
            async with http.get(f"{root}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                return await r.text() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("no metrics from %s: %s", root, exc)
            return None

    def close(self) -> None:
        pass
