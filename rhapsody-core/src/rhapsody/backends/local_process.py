"""Running one executable task's process on this node, the same way on every backend.

* no shell unless asked (``shell=True`` runs the command line through ``/bin/sh``);
* the process leads a session and process group of its own: a kill reaches its children;
* output goes to files, not pipes: a pipe's write end inherited by another process (a forked
  pool worker, a background child) would keep the task from ever seeing its output end;
* when it exits, whatever it left running in its group is stopped before it is reaped.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Any

from .process_tree import kill_group, kill_tree


def command_line(executable: str, arguments: Sequence[str], shell: bool) -> Any:
    """argv for ``Popen``, or one command line for the shell."""
    if shell:  # the user asked for shell semantics ($VARS, pipes)
        return " ".join([executable, *arguments])
    return [executable, *arguments]


@functools.cache
def _devnull() -> int:
    """One read-only /dev/null for every child's stdin, opened once (``subprocess.DEVNULL``
    opens and closes one per process: two system calls, each a GIL hand-over)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def start(
    command: Any,
    *,
    shell: bool,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdout: int | IO[bytes],
    stderr: int | IO[bytes],
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, output to the two open files (or
    descriptors).

    ``env`` is added to this process's environment.
    """
    return subprocess.Popen(
        command,
        stdin=_devnull(),
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env={**os.environ, **env} if env is not None else None,
        shell=shell,
        # A session of its own (setsid): measured 1.5x faster to spawn from launcher threads
        # than process_group=0; and it makes the process group ours to kill.
        start_new_session=True,
    )


def wait_for(process: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    """:func:`wait`, for at most ``timeout`` seconds: None if it is still running then."""
    if timeout is None:
        return wait(process)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    kill_group(process.pid)
    return process.returncode


def wait(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` to exit, stop what it left in its group, reap it; its exit code.

    Waiting without reaping (WNOWAIT) keeps its pid -- the group's id -- from being reused
    while its group is killed.
    """
    pid = process.pid
    while True:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            break
        except InterruptedError:
            continue
        except ChildProcessError:  # reaped elsewhere
            break
    kill_group(pid)
    return process.wait()


def reap_exited(process: subprocess.Popen[bytes]) -> int:
    """:func:`wait` for a process known to have exited (its pidfd said so): unreaped, its pid
    cannot be reused, so its group is stopped and it is reaped without waiting first."""
    kill_group(process.pid)
    return process.wait()


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``, its descendants and its process group (unless it was reaped)."""
    if process.returncode is None:
        kill_tree(process.pid, group=True)


def output_fd() -> int:
    """An anonymous file for a process's output, as a descriptor: in memory (memfd) where the OS
    has it -- like the pipe it replaces, without a pipe's inherited write end -- else an
    unlinked temp file. Descriptors, not file objects: a file object costs several system calls
    and a buffer per task, and the process only needs the descriptor."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        try:
            fd: int = memfd_create("rhapsody-output", os.MFD_CLOEXEC)
            return fd
        except OSError:
            pass
    fd, path = tempfile.mkstemp(prefix="rhapsody-output-")
    os.unlink(path)
    return fd


def read_fd(fd: int, size: int | None = None) -> str:
    """All that was written to the file ``fd`` (from its start; its first ``size`` bytes where
    the caller already asked its size), as text."""
    if size is None:
        size = os.fstat(fd).st_size
    if not size:  # most tasks' stderr, and many a stdout: no read at all
        return ""
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def output_file() -> IO[bytes]:
    """:func:`output_fd` as a file object (for code that holds several in an ExitStack)."""
    return open(output_fd(), "w+b")


def read_back(f: IO[bytes]) -> str:
    """All that was written to ``f``, as text."""
    f.flush()
    return read_fd(f.fileno())
