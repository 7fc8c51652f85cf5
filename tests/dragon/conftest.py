"""Tests of rhapsody-dragon. They run under Dragon's launcher, one runtime for the whole run:

    dragon $(which pytest) tests/dragon

Outside the launcher they fail at once (that is a setup error, not something to skip).
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import AsyncIterator, Iterator

import cloudpickle
import pytest

from rhapsody.api import Session
from rhapsody_dragon.worker_side import MARK_BACKEND, marked_pids

from ..conftest import pid_alive, wait_until
from . import payloads

cloudpickle.register_pickle_by_value(payloads)


def pytest_configure(config: pytest.Config) -> None:
    if "DRAGON_MY_PUID" not in os.environ:
        raise pytest.UsageError(
            "tests/dragon must run under the Dragon runtime: dragon $(which pytest) tests/dragon"
        )


def dragon_sees_gpus() -> bool:
    """Whether Dragon finds GPUs on any node of this runtime (a GPU node: its policies then
    place on the real devices, whatever inventory a test gives the backend)."""
    from dragon.native.machine import Node, System

    return any(Node(h).gpus for h in System().nodes)


def backend_processes() -> list[int]:
    """Live processes started by any rhapsody Dragon backend on this node."""
    return [pid for pid in _marked() if pid_alive(pid)]


def _marked() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if any(v.startswith(MARK_BACKEND.encode() + b"=") for v in f.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def backend_directories() -> set[str]:
    """The backends' own output directories (``{tmp}/rhapsody-{12 hex digits}-*``)."""
    pattern = os.path.join(tempfile.gettempdir(), "rhapsody-" + "[0-9a-f]" * 12 + "-*")
    return set(glob.glob(pattern))


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Every test ends with no process of any backend left on the node, and no directory."""
    directories = backend_directories()
    yield
    assert wait_until(lambda: not backend_processes(), timeout=15), (
        f"processes left behind: {backend_processes()}"
    )
    assert backend_directories() <= directories, "a backend's directory was left behind"


@pytest.fixture
async def dragon() -> AsyncIterator[object]:
    from rhapsody.backends import DragonExecutionBackendV3

    backend = await DragonExecutionBackendV3(num_workers=2, name="dragon")
    try:
        yield backend
    finally:
        await backend.shutdown()


@pytest.fixture
async def session(dragon, tmp_path) -> AsyncIterator[Session]:
    async with Session(backends=[dragon], work_dir=tmp_path) as s:
        yield s


def owner_pids(backend, task) -> list[int]:
    """Live processes of ``task`` (marked with its owner) on this node."""
    return [p for p in marked_pids(f"{backend._token}-{task.uid}") if pid_alive(p)]
