"""Putting a task's captured output where the task API says it goes.

Capture files live in the session's task directory, named from the task uid (uids are checked
to be one safe file-name component, see :mod:`rhapsody.api.validators`). They are created
exclusively: an existing file -- from an earlier run of a session with the same uid, or anything
else -- is never overwritten; the next free name (``{uid}.1.stdout`` ...) is used instead.
"""

from __future__ import annotations

import errno
import os

from ..api.errors import BackendError, task_label
from ..api.task import ComputeTask
from .result_fields import set_result

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


def capture_paths(task_dir: str, uid: str) -> tuple[str, str]:
    """Create ``{task_dir}/{uid}.stdout`` and ``.stderr`` (or the first free ``{uid}.N.*``
    pair), empty, and return their paths. Nothing outside ``task_dir`` is ever touched."""
    if os.sep in uid or uid in (".", ".."):  # uids are validated; this is a second lock
        raise BackendError(f"task uid {uid!r} cannot name a file")
    for n in range(1000):
        stem = os.path.join(task_dir, uid if n == 0 else f"{uid}.{n}")
        out, err = stem + ".stdout", stem + ".stderr"
        try:
            os.close(os.open(out, _FLAGS, 0o644))
        except FileExistsError:
            continue
        try:
            os.close(os.open(err, _FLAGS, 0o644))
        except FileExistsError:
            os.remove(out)
            continue
        return out, err
    raise BackendError(
        f"{task_label(uid)}: no free capture file name in {task_dir}",
    ) from OSError(errno.EEXIST, "exists")


def store_output(task: ComputeTask, out: str | None, err: str | None, task_dir: str | None) -> None:
    """Text on ``task.stdout``/``task.stderr``; with ``capture_stdio``, written to
    ``{task_dir}/{uid}.stdout`` / ``.stderr`` (see :func:`capture_paths`) and the paths stored
    instead."""
    if task.capture_stdio and task_dir is not None:
        paths = capture_paths(task_dir, task.uid)
        for path, text in zip(paths, (out, err), strict=True):
            with open(path, "w") as f:
                f.write(text or "")
        task.stdout, task.stderr = paths
    else:
        set_result(task, "stdout", out)
        set_result(task, "stderr", err)
