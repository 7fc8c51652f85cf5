"""Shared fixtures: a fresh plugin registry per test, hypothesis settings, leak checks."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Shared 2-core machines: no per-example deadline, a moderate number of examples.
settings.register_profile(
    "ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


def child_pids() -> set[int]:
    """Live (non-zombie) direct children of this process."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z" and not _is_helper(entry):
            found.add(int(entry))
    return found


def _is_helper(pid: str) -> bool:
    # multiprocessing's resource tracker is a per-interpreter singleton that lives until we exit.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"multiprocessing.resource_tracker" in f.read()
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def discovery_imports(
    modules: tuple[str, ...], env: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """In a fresh interpreter: which of ``modules`` ``rhapsody.discover_backends()`` imported,
    and the names of the available backends it found (``env``: extra environment)."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys, rhapsody\n"
        "found = rhapsody.discover_backends()\n"
        f"print(json.dumps([sorted(m for m in {modules!r} if m in sys.modules),\n"
        "    sorted(n for n, i in found.items() if i.available)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    imported, available = json.loads(out.stdout.strip().splitlines()[-1])
    return imported, available


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    from rhapsody.plugins import reset_plugin_host

    reset_plugin_host()
    yield
    reset_plugin_host()


@pytest.fixture
def no_stray_children() -> Iterator[None]:
    """Fail the test if it leaves child processes running."""
    before = child_pids()
    yield
    assert wait_until(lambda: not (child_pids() - before)), (
        f"stray child processes: {child_pids() - before}"
    )


@pytest.fixture
def work_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def peak_use(intervals) -> float:
    """The largest sum of amounts over ``(start, end, amount)`` intervals overlapping in time
    (an end sorts before a start at the same instant)."""
    events = sorted([(s, a) for s, _, a in intervals] + [(e, -a) for _, e, a in intervals])
    use = peak = 0.0
    for _, amount in events:
        use += amount
        peak = max(peak, use)
    return peak
