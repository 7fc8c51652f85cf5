"""The ``rhapsody`` console script, run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

RHAPSODY = shutil.which("rhapsody", path=str(Path(sys.executable).parent)) or "rhapsody"


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RHAPSODY, *args], capture_output=True, text=True, timeout=120, **kwargs)


def test_backends_lists_distribution_and_availability():
    out = run("backends")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    assert "rhapsody-core" in lines["concurrent"] and "available" in lines["concurrent"]
    assert "rhapsody-example-plugin 1.0.0" in lines["inline"]
    assert "unavailable: ModuleNotFoundError" in lines["example_broken"]


def test_demo_runs_and_summarises(tmp_path):
    out = run("demo", "--tasks", "20", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "executable  FAILED  1" in out.stdout and "function    FAILED  1" in out.stdout
    assert "executable  DONE    10" in out.stdout and "function    DONE    10" in out.stdout
    assert "22 tasks" in out.stdout and "ValueError: this task fails on purpose" in out.stdout
    assert "[" not in out.stderr  # no progress bar when nobody watches a terminal
    assert list(tmp_path.iterdir()) == []  # and nothing left behind


def test_demo_shows_progress_on_a_terminal(tmp_path):
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [RHAPSODY, "demo", "--tasks", "8"],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"] 10/10" in shown and b"#" * 30 in shown


def test_bad_arguments():
    out = run("demo", "--tasks", "-1")
    assert out.returncode == 2 and "--tasks: expected an integer >= 0, got -1" in out.stderr
    assert run("nonsense").returncode == 2
