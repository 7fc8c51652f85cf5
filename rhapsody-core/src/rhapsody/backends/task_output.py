"""Putting a task's captured output where the task API says it goes."""

from __future__ import annotations

import os

from ..api.task import ComputeTask


def store_output(task: ComputeTask, out: str | None, err: str | None, task_dir: str | None) -> None:
    """Text on ``task.stdout``/``task.stderr``; with ``capture_stdio``, written to
    ``{task_dir}/{uid}.stdout`` / ``.stderr`` and the paths stored instead."""
    if task.capture_stdio and task_dir is not None:
        base = os.path.join(task_dir, task.uid)
        for suffix, text in ((".stdout", out), (".stderr", err)):
            with open(base + suffix, "w") as f:
                f.write(text or "")
        task.stdout, task.stderr = base + ".stdout", base + ".stderr"
    else:
        task.stdout, task.stderr = out, err
