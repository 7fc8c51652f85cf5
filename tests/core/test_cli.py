"""The ``rhapsody`` console script, run as a user runs it."""

from __future__ import annotations

import importlib.util
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


def test_backends_names_what_is_missing_and_what_needs_the_launcher():
    out = run("backends", env={**os.environ, "RHAPSODY_BLOCK_PLUGINS": "dask"})
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    assert "dragon_alias" not in out.stdout
    if importlib.util.find_spec("rhapsody_dragon"):  # installed here: says what it needs
        assert "dragon (also dragon_v3)" in out.stdout
        assert (
            "needs the Dragon runtime: run your script with `dragon script.py`" in lines["dragon"]
        )
    else:
        assert "not installed: pip install 'rhapsody-core[dragon]'" in lines["dragon"]
    if importlib.util.find_spec("rhapsody_dask"):
        assert "RHAPSODY_BLOCK_PLUGINS" in lines["dask"]
    else:
        assert "not installed: pip install 'rhapsody-core[dask]'" in lines["dask"]
    assert out.stderr == ""  # the broken example plugin is a row, not a warning too


def test_backends_lists_first_party_backends_that_are_not_installed():
    out = run("backends", env={**os.environ, "RHAPSODY_LOAD_PLUGINS": "concurrent"})
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    installed = importlib.util.find_spec("rhapsody_vllm") is not None  # a dev environment
    expected = (
        "installed, not loaded" if installed else "not installed: pip install 'rhapsody-core[vllm]'"
    )
    assert expected in lines["vllm"] and expected in lines["dragon_vllm"]
    assert "rhapsody-vllm" in lines["dragon_vllm"] and "inference" in lines["vllm"]


def test_no_arguments_and_help_show_plain_help():
    bare = run()
    assert bare.returncode == 0 and "usage: rhapsody" in bare.stdout and "backends" in bare.stdout
    assert bare.stderr == ""
    helped = run("--help")
    assert helped.returncode == 0 and "``" not in helped.stdout and ":mod:" not in helped.stdout
    assert "rhapsody demo --tasks 100" in helped.stdout


def test_demo_runs_and_summarises(tmp_path):
    out = run("demo", "--tasks", "22", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "executable  FAILED  1" in out.stdout and "function    FAILED  1" in out.stdout
    assert "executable  DONE    10" in out.stdout and "function    DONE    10" in out.stdout
    assert "22 tasks" in out.stdout and "ValueError: this task fails on purpose" in out.stdout
    assert "exited with code 3; stderr: oops" in out.stdout and "| oops" not in out.stdout
    assert "task task." not in out.stdout
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
    assert b"] 8/8" in shown and b"#" * 30 in shown
    assert b"/s  " in shown and (b"ETA " in shown or b"in " in shown)


def test_demo_with_no_tasks_runs_nothing(tmp_path):
    out = run("demo", "--tasks", "0", cwd=tmp_path)
    assert out.returncode == 0 and "nothing to run" in out.stdout and "FAILED" not in out.stdout


def test_progress_line_has_rate_and_eta():
    from rhapsody.api import ComputeTask, TaskState
    from rhapsody.telemetry.progress import SessionProgress, format_seconds

    bar = SessionProgress(True)
    bar._started -= 2.0  # two seconds in
    task = ComputeTask(executable="/bin/true")
    bar.on_changes([task] * 152, [TaskState.SUBMITTED] * 100 + [TaskState.RUNNING] * 52)
    bar.on_changes([task] * 50, [TaskState.DONE] * 49 + [TaskState.FAILED])
    line = bar.line()
    assert "50/100 done 49 failed 1 canceled 0 running 2" in line, line
    assert "/s" in line and "ETA 2" in line
    assert format_seconds(185) == "3m05s" and format_seconds(0.25) == "0.2s"


def test_bad_arguments():
    out = run("demo", "--tasks", "-1")
    assert out.returncode == 2 and "--tasks: expected an integer >= 0, got -1" in out.stderr
    assert run("nonsense").returncode == 2
