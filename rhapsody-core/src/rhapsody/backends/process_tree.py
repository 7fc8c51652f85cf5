"""Stopping the processes a task started: the process, its descendants and its process group.

One implementation for every backend (psutil). A process that already exited may have left
children behind: they are found through its process group (every task process leads its own
group), or through an environment mark for backends that tag their processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

import psutil


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _group_members(pgid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
    return found


def kill_tree(pid: int, *, group: bool = True, grace: float = 0.0) -> None:
    """Stop process ``pid``, every descendant of it and (``group``) its process group.

    With ``grace`` > 0 they get SIGTERM and that many seconds to exit before SIGKILL.
    Processes that are already gone are skipped silently.
    """
    procs = {p.pid: p for p in _descendants(pid)}
    if grace > 0:
        _signal_all(procs.values(), signal.SIGTERM)
        if group:
            kill_group(pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(list(procs.values()), timeout=grace)
        procs = {p.pid: p for p in alive}
        for child in list(procs.values()):  # started meanwhile
            with contextlib.suppress(psutil.Error):
                for grandchild in child.children(recursive=True):
                    procs.setdefault(grandchild.pid, grandchild)
    _signal_all(procs.values(), signal.SIGKILL)
    if group:
        kill_group(pid)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal process group ``pgid``; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_all(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(sig)


def marked_processes(name: str, value: str) -> list[psutil.Process]:
    """Live processes on this node whose environment has ``name=value`` (not this process).

    Environment marks are inherited by everything a process starts, so they find a task's
    processes even after the parent that started them is gone.
    """
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def kill_marked(name: str, value: str, grace: float = 0.0) -> int:
    """Stop every process on this node marked ``name=value``; how many were signalled.

    With ``grace``, SIGTERM first and SIGKILL what is left after ``grace`` seconds.
    """
    procs = marked_processes(name, value)
    if grace > 0 and procs:
        _signal_all(procs, signal.SIGTERM)
        _, procs = psutil.wait_procs(procs, timeout=grace)
    killed = 0
    for _ in range(3):  # a process may fork while we look
        if not procs:
            break
        _signal_all(procs, signal.SIGKILL)
        killed += len(procs)
        procs = marked_processes(name, value)
    return killed
