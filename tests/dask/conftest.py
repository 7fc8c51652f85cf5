"""Real Dask clusters for the tests: a LocalCluster, and scheduler + worker processes started
with the ``dask`` command on loopback (the path a user takes when outgrowing one machine)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """A synchronous LocalCluster: 2 single-threaded worker processes offering GPU=1 each."""
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        resources={"GPU": 1},
    )
    yield cluster
    cluster.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessCluster:
    """``dask scheduler`` and ``dask worker`` as separate processes."""

    def __init__(self, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        # Workers import the test module by name, as a user's workers import theirs.
        root = str(Path(__file__).resolve().parents[2])
        self.env = {**os.environ, "PYTHONPATH": root, **(env or {})}
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        self.worker = subprocess.Popen(
            [
                DASK,
                "worker",
                self.address,
                "--nworkers",
                str(workers),
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--resources",
                "CPU_SLOT=1",
                # without a scheduler, the workers give up and exit cleanly after 5 s
                "--death-timeout",
                "5",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=60)

    def kill_scheduler(self) -> None:
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def stop(self) -> None:
        # SIGTERM to the leaders only: they stop their children and their resource tracker
        # cleans up (a signal to the whole group would kill the tracker first and leave
        # semaphores in /dev/shm); the group is SIGKILLed only if that does not work.
        for proc in (self.worker, self.scheduler):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in (self.worker, self.scheduler):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def process_cluster() -> Iterator[ProcessCluster]:
    cluster = ProcessCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def fresh_process_cluster() -> Iterator[ProcessCluster]:
    cluster = ProcessCluster(workers=1)
    yield cluster
    cluster.stop()
