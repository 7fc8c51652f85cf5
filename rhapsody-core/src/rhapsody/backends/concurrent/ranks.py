"""Running an executable task that asked for resources: one process per rank, each pinned to
the cores and shown the GPUs the slot scheduler gave it, from a launcher thread.

Each rank's environment carries ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and
``LOCAL_WORLD_SIZE`` (the conventions of torch.distributed and most launchers),
``OMP_NUM_THREADS`` (its cores, unless the task sets it) and ``CUDA_VISIBLE_DEVICES`` (exactly its
GPUs; empty when it asked for none on a node that has some). The job fails as soon as one rank
fails; the other ranks are stopped.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
from collections.abc import Callable, Sequence
from typing import IO

from ...api.clock import now
from ...api.errors import TaskExecutionError
from ...api.states import TaskState
from ...api.task import ComputeTask
from ...resources.environment import rank_environment
from ...resources.slots import RankSlot
from .. import where
from ..exit_status import describe_exit
from ..local_process import kill, output_file, read_back, start, wait
from ..task_output import capture_paths
from ..where import HOST
from .executables import command_of, failed_to_start, missing_outputs
from .options import launcher_of

_RUNNING, _DONE, _FAILED = TaskState.RUNNING, TaskState.DONE, TaskState.FAILED
_ENDED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELED)
_PROCESS_CPUS = (
    frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else frozenset()
)

Jobs = dict[ComputeTask, list[subprocess.Popen[bytes]]]


def run_ranks(
    task: ComputeTask,
    slots: Sequence[RankSlot],
    push: Callable[[ComputeTask, TaskState], None],
    jobs: Jobs,
    task_dir: Callable[[], str],
    closing: Callable[[], bool],
    node_has_gpus: bool,
) -> None:
    """Run every rank of ``task`` to completion in this (launcher) thread, pushing its states."""
    if task.state in _ENDED or closing():
        return
    try:
        with contextlib.ExitStack() as files:
            started = now()
            processes, outputs, paths = _start(task, slots, task_dir, files, node_has_gpus, jobs)
            task.host, task.started_at = HOST, started
            task.worker = (
                where.process(processes[0].pid)
                if len(processes) == 1
                else f"{len(processes)} processes"
            )
            push(task, _RUNNING)
            if task.state in _ENDED or closing():  # canceled while it was starting
                _kill_all(processes)
            try:
                codes, first_failed = _wait_all(processes)
            finally:
                task.ended_at = now()
                jobs.pop(task, None)
            if task.state in _ENDED or closing():  # canceled, timed out or shut down
                return
            _finish(task, push, codes, first_failed, outputs, paths)
    except BaseException as exc:  # noqa: BLE001 - whatever went wrong, the task ends FAILED
        failed_to_start(task, exc, push)


def _start(
    task: ComputeTask,
    slots: Sequence[RankSlot],
    task_dir: Callable[[], str],
    files: contextlib.ExitStack,
    node_has_gpus: bool,
    jobs: Jobs,
) -> tuple[
    list[subprocess.Popen[bytes]], list[tuple[IO[bytes], IO[bytes]]], tuple[str, str] | None
]:
    options = task.task_backend_specific_kwargs
    command, shell, cwd = command_of(task)
    paths = None
    shared: tuple[IO[bytes], IO[bytes]] | None = None
    if task.capture_stdio:  # every rank appends to the task's two files
        paths = capture_paths(task_dir(), task.uid)
        shared = (
            files.enter_context(open(paths[0], "ab")),
            files.enter_context(open(paths[1], "ab")),
        )
    processes: list[subprocess.Popen[bytes]] = []
    jobs[task] = processes  # a cancel from now on reaches the ranks started so far
    outputs: list[tuple[IO[bytes], IO[bytes]]] = []
    launcher = launcher_of(task)
    per_rank_cores = len(slots[0].cpus) if slots else 1
    if launcher is not None:  # one launcher process starts every rank
        argv = command if isinstance(command, list) else ["/bin/sh", "-c", command]
        command, shell = [launcher, "-n", str(len(slots)), *argv], False
        slots = [_whole_job(slots)]
    try:
        for rank, slot in enumerate(slots):
            out, err = shared or (
                files.enter_context(output_file()),
                files.enter_context(output_file()),
            )
            outputs.append((out, err))
            env = rank_environment(options.get("env"), rank, slot, slots, node_has_gpus)
            if launcher is not None:  # the launcher numbers the ranks (PMI_RANK...)
                for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
                    env.pop(name, None)
                if "OMP_NUM_THREADS" not in (options.get("env") or {}):
                    env["OMP_NUM_THREADS"] = str(per_rank_cores)
            _pin_this_thread(slot.cpus)  # the child inherits this thread's CPU affinity
            processes.append(start(command, shell=shell, cwd=cwd, env=env, stdout=out, stderr=err))
    except BaseException:
        _kill_all(processes)
        for process in processes:
            with contextlib.suppress(Exception):
                wait(process)
        jobs.pop(task, None)
        raise
    finally:
        _pin_this_thread(())
    return processes, ([] if shared else outputs), paths


def _whole_job(slots: Sequence[RankSlot]) -> RankSlot:
    """One slot holding every rank's cores and GPUs (what an MPI launcher is given)."""
    first = slots[0]
    return first._replace(
        cpus=tuple(c for s in slots for c in s.cpus),
        gpu_ids=tuple(dict.fromkeys(g for s in slots for g in s.gpu_ids)),
    )


def _pin_this_thread(cpus: Sequence[int]) -> None:
    if _PROCESS_CPUS:
        os.sched_setaffinity(0, set(cpus) if cpus else _PROCESS_CPUS)


def _kill_all(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        kill(process)


def _wait_all(processes: list[subprocess.Popen[bytes]]) -> tuple[list[int], int | None]:
    """Exit codes in rank order, and the rank that failed first (the others are then killed)."""
    if len(processes) == 1:
        code = wait(processes[0])
        return [code], (0 if code != 0 else None)
    codes: dict[int, int] = {}
    first_failed: int | None = None
    pidfds = _pidfds(processes)
    poller = select.poll()
    for fd in pidfds.values():
        poller.register(fd, select.POLLIN)
    try:
        while len(codes) < len(processes):
            ready = [r for r, p in enumerate(processes) if r not in codes and _exited(p)]
            if not ready:
                # wake when a rank exits (pidfd), or poll now and then without pidfds
                poller.poll(None if pidfds else 20)
                continue
            for rank in ready:
                codes[rank] = wait(processes[rank])
                fd = pidfds.pop(rank, -1)
                if fd >= 0:
                    poller.unregister(fd)
                    os.close(fd)
                if codes[rank] != 0 and first_failed is None:
                    first_failed = rank
                    _kill_all(processes)  # one rank failed: the others would wait for it
    finally:
        for fd in pidfds.values():
            os.close(fd)
    return [codes[r] for r in range(len(processes))], first_failed


def _pidfds(processes: list[subprocess.Popen[bytes]]) -> dict[int, int]:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return {}
    fds: dict[int, int] = {}
    try:
        for rank, process in enumerate(processes):
            fds[rank] = pidfd_open(process.pid)
    except OSError:  # an old kernel: poll instead
        for fd in fds.values():
            os.close(fd)
        return {}
    return fds


def _exited(process: subprocess.Popen[bytes]) -> bool:
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return True
    return info is not None


def _finish(
    task: ComputeTask,
    push: Callable[[ComputeTask, TaskState], None],
    codes: list[int],
    first_failed: int | None,
    outputs: list[tuple[IO[bytes], IO[bytes]]],
    paths: tuple[str, str] | None,
) -> None:
    code = codes[first_failed] if first_failed is not None else 0
    task.exit_code = code
    if paths is not None:
        task.stdout, task.stderr = paths
    else:
        outs = [read_back(out) for out, _ in outputs]
        task.stdout = "".join(outs)
        task.stderr = "".join(read_back(err) for _, err in outputs)
        # one rank: its output; a job: each rank's, in rank order (as on the Dragon backend)
        task.return_value = outs[0] if len(outs) == 1 else outs
    if first_failed is not None:
        message = describe_exit(code)
        if len(codes) > 1:
            message = (
                f"rank {first_failed} of {len(codes)}: {message}; the other ranks were stopped"
            )
        error_text = None if paths is not None else task.stderr
        task.exception = TaskExecutionError(task.uid, error_text, code, message=message)
        push(task, _FAILED)
        return
    missing = missing_outputs(task, None, code)
    if missing is not None:
        task.exception = missing
        push(task, _FAILED)
        return
    push(task, _DONE)
