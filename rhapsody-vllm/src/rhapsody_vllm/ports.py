"""Free TCP ports for replicas: one HTTP port and one ``VLLM_PORT`` base each, all distinct."""

from __future__ import annotations

import socket

# vLLM opens internal sockets at VLLM_PORT, VLLM_PORT+1, ...: leave room between replicas.
INTERNAL_SPAN = 16


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str, taken: set[int], span: int = 1) -> int:
    """A port (and the ``span - 1`` after it) free on ``host`` and not in ``taken``; it joins
    ``taken`` so that replicas started side by side never share one."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        block = range(port, port + span)
        if port + span < 65536 and not taken.intersection(block):
            if all(_free(host, p) for p in block[1:]):
                taken.update(block)
                return port
    raise OSError(f"no block of {span} free TCP ports found on {host}")
