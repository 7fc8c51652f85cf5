"""vLLM test fixtures: a tiny random-weight model made here (nothing can be downloaded), one
real vLLM server per test run (started by the backend under test), and a stand-in server for
tests of the backend's own fault handling."""

from __future__ import annotations

import glob
import os
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from rhapsody_vllm import VllmInferenceBackend, VllmModelConfig

from ..conftest import child_pids, wait_until
from .tiny_model import make

STUB = str(Path(__file__).with_name("stub_server.py"))
# What vLLM needs on this CPU-only machine, offline.
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make(tmp_path_factory.mktemp("models") / "tiny-llama"))


def real_config(model: str, **kwargs: object) -> VllmModelConfig:
    return VllmModelConfig(
        model=model, served_name="tiny", max_model_len=256, env=VLLM_ENV, **kwargs
    )


def stub_config(*flags: str, model: str = "stub-model") -> VllmModelConfig:
    return VllmModelConfig(model=model, server_command=(sys.executable, STUB), extra_args=flags)


def shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


def sockets_in(directory: str) -> set[str]:
    return {n for n in os.listdir(directory) if stat.S_ISSOCK(os.lstat(f"{directory}/{n}").st_mode)}


def stray_sockets() -> set[str]:
    """Unix sockets named like vLLM's IPC sockets (a uuid4) in the temporary directory."""
    return {n for n in sockets_in(tempfile.gettempdir()) if len(n) == 36 and n.count("-") == 4}


def vllm_log_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "rhapsody-vllm-*")))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def served(tiny_model: str) -> AsyncIterator[VllmInferenceBackend]:
    """The test run's one real vLLM server, managed by the backend under test."""
    before, dirs, segments, sockets = child_pids(), vllm_log_dirs(), shm(), stray_sockets()
    backend = VllmInferenceBackend(
        name="vllm_test", model=real_config(tiny_model), max_restarts=1, startup_timeout=300
    )
    await backend
    yield backend
    await backend.shutdown()
    assert wait_until(lambda: not (child_pids() - before)), "vLLM server processes left behind"
    assert vllm_log_dirs() == dirs, "log directory left behind"
    # Even the servers the tests killed with SIGKILL leave no shared memory behind.
    assert shm() <= segments, f"shared memory left behind: {shm() - segments}"
    # vLLM's own IPC sockets (in /tmp by default, never removed) live in the backend's directory.
    assert stray_sockets() <= sockets, f"sockets left behind: {stray_sockets() - sockets}"


@pytest.fixture
def nothing_left() -> Iterator[None]:
    """Fail a test that leaves server processes or log directories behind."""
    before, dirs = child_pids(), vllm_log_dirs()
    yield
    assert wait_until(lambda: not (child_pids() - before)), f"left: {child_pids() - before}"
    assert vllm_log_dirs() == dirs


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session(served: VllmInferenceBackend) -> AsyncIterator[object]:
    """One Session for the real-server tests: a concurrent backend and the vLLM backend."""
    from rhapsody.api import Session
    from rhapsody.backends import ConcurrentExecutionBackend

    async with Session(backends=[ConcurrentExecutionBackend(name="hpc_cluster"), served]) as s:
        yield s
