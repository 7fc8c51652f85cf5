"""Shared plumbing of the side-by-side benchmarks: one measurement per fresh interpreter."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any


def measure(
    python: str, script: str, contender: str, kind: str, n: int, timeout: float
) -> dict[str, Any]:
    """Run ``script one CONTENDER KIND N`` under ``python``; its last stdout line is JSON."""
    env = dict(os.environ)
    if contender == "rhapsody-py":  # keep our checkout off its path
        env.pop("PYTHONPATH", None)
    # in a directory of its own, removed after: what a run leaves in its working directory
    # (rhapsody-py makes a session directory there) does not pile up
    with tempfile.TemporaryDirectory(prefix="rhapsody-bench-") as cwd:
        out = subprocess.run(
            [python, os.path.abspath(script), "one", contender, kind, str(n)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{contender}/{kind}/{n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_run(
    python: str, script: str, contender: str, kind: str, n: int, repeat: int, timeout: float
) -> dict[str, Any]:
    """The run with the median time of ``repeat`` (its other figures, CPU per task, with it)."""
    runs = [measure(python, script, contender, kind, n, timeout) for _ in range(repeat)]
    runs.sort(key=lambda r: float(r["seconds"]))
    return runs[len(runs) // 2]


def median_rate(
    python: str, script: str, contender: str, kind: str, n: int, repeat: int, timeout: float
) -> float:
    runs = [measure(python, script, contender, kind, n, timeout)["seconds"] for _ in range(repeat)]
    return statistics.median(n / s for s in runs)


class Report:
    """Rows printed as they come (stderr) and as a markdown table at the end (stdout)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))
        print(f"{label}: {value}", file=sys.stderr, flush=True)

    def table(self) -> str:
        lines = ["| measurement | result |", "| --- | --- |"]
        lines += [f"| {label} | {value} |" for label, value in self.rows]
        return "\n".join(lines)
