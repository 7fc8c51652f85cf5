"""Tasks that run as their own Dragon processes: executables, and functions with templates.

Each process is a ``dragon.native.process.Process`` started with the task's template, so its
``policy`` (host placement, GPU affinity) applies to it; Dragon's ``Batch`` would run it on a
pool worker placed once at start-up. A job (``process_templates``) is one process per rank, each
with its own template. Starting a process is one round trip to Dragon's global services, so a
few threads start them side by side, and processes waiting together are started in one
request (a Dragon group of up to :data:`GROUP_PROCESSES`), destroyed once they all exited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import cloudpickle  # type: ignore[import-untyped]

from rhapsody.api import ComputeTask
from rhapsody.backends.task_output import capture_paths

from .global_services import destroy_group, exited, fits_in_group, start_group, start_process
from .killing import kill_owner
from .reaper import Reaper
from .runtime import hostname_of
from .templates import Template, resolve_streams, wants_pipe
from .worker_side import MARK_BACKEND, MARK_OWNER, process_function

log = logging.getLogger(__name__)

LAUNCH_THREADS = 4
# Processes waiting together start together, this many in one request at most.
GROUP_PROCESSES = 64

# What the launcher hands back for a finished task: (task, outcome); see backend._complete.
Deliver = Callable[[ComputeTask, "JobOutcome | None"], None]


@attrs.define(eq=False)
class Job:
    """The processes of one task and what came back from them."""

    task: ComputeTask
    plan: list[Template]
    owner: str
    puids: list[int] = attrs.Factory(list)
    nodes: set[Any] = attrs.Factory(set)
    codes: dict[int, int | None] = attrs.Factory(dict)  # rank -> exit code
    results: dict[int, tuple[bool, bytes, str | None]] = attrs.Factory(dict)  # functions
    files: list[tuple[str | None, str | None]] = attrs.Factory(list)  # rank -> (out, err)
    ended: bool = False
    error: str | None = None  # why it could not start
    first_failed: int | None = None  # the rank that failed first (the others may be killed)


@attrs.frozen
class JobOutcome:
    """Everything the backend needs to complete a task that ran as Dragon processes."""

    is_function: bool
    codes: list[int | None]
    results: dict[int, tuple[bool, bytes, str | None]]
    stdout: list[str]
    stderr: list[str]
    error: str | None
    capture_files: tuple[str, str] | None
    first_failed: int | None = None


class ProcessLauncher:
    def __init__(
        self,
        token: str,
        outq_blob: bytes,
        reaper: Reaper,
        out_dir: str,
        task_dir: Callable[[], str],
        local_node: Any,
        deliver: Deliver,
        running: Callable[[ComputeTask], None],
    ) -> None:
        self._token, self._outq_blob, self._reaper = token, outq_blob, reaper
        self._out_dir, self._task_dir, self._local_node = out_dir, task_dir, local_node
        self._deliver, self._running = deliver, running
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._captures: dict[str, tuple[str, str]] = {}
        self._by_puid: dict[int, tuple[Job, int]] = {}
        self._groups: dict[int, set[int]] = {}  # group id -> its processes not seen exiting
        self._group_of: dict[int, int] = {}  # puid -> group id
        # jobs to start; the id of a group to destroy; None: stop
        self._launches: queue.SimpleQueue[Job | int | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(
                target=self._launch_loop, name=f"rhapsody-dragon-launch-{i}", daemon=True
            )
            for i in range(LAUNCH_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: ComputeTask, plan: list[Template]) -> None:
        job = Job(task, plan, f"{self._token}-{task.uid}")
        with self._lock:
            self._jobs[task.uid] = job
        self._launches.put(job)

    def owns(self, task: ComputeTask) -> bool:
        """Whether ``task`` runs as processes of this launcher (not on the function pool)."""
        return task.uid in self._jobs

    # -- starting ---------------------------------------------------------------------------------

    def _launch_loop(self) -> None:
        while (item := self._launches.get()) is not None:
            if isinstance(item, int):  # a group whose processes all exited
                self._destroy_group(item)
                continue
            jobs = self._take_more(item)
            try:
                if len(jobs) > 1:
                    self._start_group(jobs)
                else:
                    self._launch(jobs[0])
            except Exception as exc:  # a bug of ours: no task of the batch is left waiting
                log.exception("dragon: starting %d task(s) failed", len(jobs))
                for job in jobs:
                    if self.owns(job.task) and not job.puids and not job.ended:
                        self._refused(job, f"{type(exc).__name__}: {exc}")

    def _take_more(self, job: Job) -> list[Job]:
        """``job`` and those queued behind it, up to :data:`GROUP_PROCESSES` processes."""
        jobs, count = [job], len(job.plan)
        while count < GROUP_PROCESSES:
            try:
                item = self._launches.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stopping: left for whichever thread takes it next
                self._launches.put(None)
                break
            if isinstance(item, int):
                self._destroy_group(item)
                continue
            jobs.append(item)
            count += len(item.plan)
        return jobs

    def _launch(self, job: Job, plan: list[dict[str, Any]] | None = None) -> None:
        """Start ``job``'s processes one by one (``plan``: made already)."""
        if job.task.done or job.ended:
            self._drop(job)
            return
        from dragon.native.process import Process

        try:
            for rank, arguments in enumerate(plan or self._plan_processes(job)):
                puid, node = start_process(Process(**arguments))
                self._record(job, rank, puid, node)
        except Exception as exc:  # noqa: BLE001 - Dragon refused: the task fails, not the backend
            self._refused(job, f"{type(exc).__name__}: {exc}")
            return
        self._launched(job)

    def _start_group(self, jobs: list[Job]) -> None:
        """Start the processes of several jobs in one request (a Dragon group)."""
        from dragon.native.process import ProcessTemplate

        ready: list[tuple[Job, list[dict[str, Any]]]] = []
        alone: list[tuple[Job, list[dict[str, Any]]]] = []  # too large for a group's request
        templates: list[Any] = []
        for job in jobs:
            if job.task.done or job.ended:
                self._drop(job)
                continue
            try:
                plan = self._plan_processes(job)
                mine = [ProcessTemplate(**arguments) for arguments in plan]
            except Exception as exc:  # noqa: BLE001 - as in _launch
                self._refused(job, f"{type(exc).__name__}: {exc}")
                continue
            if all(map(fits_in_group, mine)):
                ready.append((job, plan))
                templates += mine
            else:
                alone.append((job, plan))
        for job, plan in alone:
            self._launch(job, plan)
        if not templates:
            return
        try:
            g_uid, started = start_group(templates)
        except Exception as exc:  # noqa: BLE001 - the request as a whole: each job on its own,
            # so that an error is told to its own task
            log.debug("dragon: a group of %d processes did not start (%s)", len(ready), exc)
            for job, plan in ready:
                self._launch(job, plan)
            return
        with self._lock:  # before any is watched: an exit may be seen right after
            members = {result[0] for result in started if not isinstance(result, str)}
            if members:
                self._groups[g_uid] = members
                self._group_of.update(dict.fromkeys(members, g_uid))
        if not members:
            self._destroy_group(g_uid)
        results = iter(started)
        for job, plan in ready:
            mine = [next(results) for _ in plan]
            for rank, result in enumerate(mine):
                if not isinstance(result, str):
                    self._record(job, rank, *result)
            errors = [result for result in mine if isinstance(result, str)]
            if errors:
                self._refused(job, errors[0])
            else:
                self._launched(job)

    def _plan_processes(self, job: Job) -> list[dict[str, Any]]:
        """The arguments of each rank's ``Process`` (or ``ProcessTemplate``); sets ``job.files``."""
        task = job.task
        is_function = task.function is not None
        blob = (
            cloudpickle.dumps((task.function, tuple(task.args), dict(task.kwargs)))
            if is_function
            else None
        )
        capture = self._capture_paths(task) if task.capture_stdio else None
        target: Any
        args: Any
        plan, files = [], []
        for rank, template in enumerate(job.plan):
            if is_function:
                target, args = process_function, (self._outq_blob, task.uid, rank, blob)
                out = err = None
            else:
                target, args = self._command(task)
                out, err = self._output_paths(task, rank)
            if capture is not None:
                out, err = capture
            elif out is None and wants_pipe(template):  # a function's output, asked for
                out, err = self._output_paths(task, rank)
            stdin, stdout, stderr = resolve_streams(template, out, err)
            files.append((out if stdout == out else None, err if stderr == err else None))
            env = {
                **(template.get("env") or {}),
                MARK_BACKEND: self._token,
                MARK_OWNER: job.owner,
            }
            plan.append(
                {
                    "target": target,
                    "args": args,
                    "cwd": os.fspath(template.get("cwd") or os.getcwd()),
                    "env": env,
                    "stdin": stdin,
                    "stdout": stdout,
                    "stderr": stderr,
                    "policy": template.get("policy"),
                    "options": template.get("options"),
                }
            )
        job.files = files
        return plan

    def _record(self, job: Job, rank: int, puid: int, node: Any) -> None:
        with self._lock:
            job.puids.append(puid)
            job.nodes.add(node)
            self._by_puid[puid] = (job, rank)
        self._reaper.watch([puid])

    def _leave_group(self, puid: int) -> int | None:
        """Under the lock: ``puid`` is gone; its group's id if that was its last process."""
        g_uid = self._group_of.pop(puid, None)
        if g_uid is None:
            return None
        left = self._groups.get(g_uid)
        if left is None:
            return None
        left.discard(puid)
        return None if left else g_uid

    def _destroy_group(self, g_uid: int) -> None:
        with self._lock:
            self._groups.pop(g_uid, None)
        destroy_group(g_uid)

    def _refused(self, job: Job, why: str) -> None:
        job.error = f"Dragon could not start it: {why}"
        self._abort(job)

    def _launched(self, job: Job) -> None:
        self._running(job.task)
        if job.task.done:  # canceled while starting
            self.kill(job)

    def _command(self, task: ComputeTask) -> tuple[str, list[str]]:
        argv = [os.fspath(task.executable), *map(os.fspath, task.arguments)]  # type: ignore[arg-type]
        if task.task_backend_specific_kwargs.get("shell"):
            return "/bin/sh", ["-c", " ".join(argv)]
        if os.sep not in argv[0] and not _on_path(argv[0]):
            # Dragon would otherwise try the working directory and fail obscurely
            raise FileNotFoundError(f"executable {argv[0]!r} not found on PATH")
        return argv[0], argv[1:]

    def _output_paths(self, task: ComputeTask, rank: int) -> tuple[str, str]:
        base = os.path.join(self._out_dir, f"{task.uid}.{rank}")
        return base + ".out", base + ".err"

    def _capture_paths(self, task: ComputeTask) -> tuple[str, str]:
        # created empty (never over an existing file); every rank appends to them
        paths = capture_paths(self._task_dir(), task.uid)
        with self._lock:
            self._captures[task.uid] = paths
        return paths

    # -- results ----------------------------------------------------------------------------------

    def on_result(self, uid: str, rank: int, ok: bool, blob: bytes, text: str | None) -> None:
        with self._lock:
            job = self._jobs.get(uid)
            if job is not None:
                job.results[rank] = (ok, blob, text)

    def on_exit(self, puid: int, code: int | None) -> bool:
        """A process exited; False if it is not one of ours."""
        failed = finished = False
        with self._lock:
            # (also for the started ranks of a job that could not start: see _abort)
            finished_group = self._leave_group(puid)
            found = self._by_puid.pop(puid, None)
            if found is not None:
                job, rank = found
                job.codes[rank] = code
                if code != 0 and job.first_failed is None:
                    job.first_failed = rank
                finished = len(job.codes) == len(job.plan)
                failed = code != 0 and not finished and not job.ended
        if finished_group is not None:  # destroyed by a launcher thread, off the reader's path
            self._launches.put(finished_group)
        if found is None:
            return False
        if failed:  # one rank failed: stop the others rather than let them wait for it
            job.ended = True
            self.kill(job)
        if finished:
            self._finish(job)
        return True

    def _finish(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.task.uid, None)
        job.ended = True
        task = job.task
        task.host = ",".join(sorted({hostname_of(node) for node in job.nodes})) or None
        task.worker = (
            f"puid {job.puids[0]}" if len(job.puids) == 1 else f"{len(job.puids)} processes"
        )
        outs, errs = [], []
        if not task.capture_stdio:
            for out, err in job.files:
                outs.append(_read_and_remove(out))
                errs.append(_read_and_remove(err))
        with self._lock:
            capture = self._captures.pop(task.uid, None)
        outcome = JobOutcome(
            is_function=task.function is not None,
            codes=[job.codes.get(r) for r in range(len(job.plan))],
            results=dict(job.results),
            stdout=outs,
            stderr=errs,
            error=job.error,
            capture_files=capture,
            first_failed=job.first_failed,
        )
        self._deliver(task, outcome)

    def _abort(self, job: Job) -> None:
        """A job that could not start: stop the ranks that did and fail it."""
        job.ended = True
        self.kill(job)
        with self._lock:
            for puid in job.puids:
                self._by_puid.pop(puid, None)
                if puid not in self._group_of:
                    self._reaper.forget(puid)
                # a group's: still watched, so that its group is destroyed only once global
                # services saw it exit (a group destroyed while a killed member was still
                # exiting ended the whole Dragon runtime now and then)
        for rank in range(len(job.plan)):
            job.codes.setdefault(rank, None)
        self._finish(job)

    def _drop(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.task.uid, None)
        self._deliver(job.task, None)  # it never started: the backend frees what it held

    # -- stopping ---------------------------------------------------------------------------------

    def cancel(self, task: ComputeTask) -> None:
        with self._lock:
            job = self._jobs.get(task.uid)
        if job is not None:
            job.ended = True  # a launcher thread that has not started it yet drops it
            if job.puids:
                self.kill(job)

    def kill(self, job: Job) -> None:
        with self._lock:
            puids, nodes = list(job.puids), set(job.nodes)
        # a function process may be sending its result: give it a moment (see kill_marked)
        grace = 0.5 if job.task.function is not None else 0.0
        kill_owner(job.owner, puids, nodes, self._local_node, grace)

    def stop(self) -> bool:
        """Kill every job's processes and stop the launch threads; True if no function process
        (one that writes to the result queue) had to be killed."""
        for _ in self._threads:
            self._launches.put(None)
        for thread in self._threads:
            thread.join(30)
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.ended = True
            self.kill(job)
        self._destroy_groups_once_exited()
        return not any(job.puids and job.task.function is not None for job in jobs)

    def _destroy_groups_once_exited(self, timeout: float = 10.0) -> None:
        """Destroy the groups left at shutdown once global services saw every one of their
        (killed) processes exit: destroying a group while a member was still exiting ended the
        whole Dragon runtime now and then (dragonhpc 0.15). A group still not gone after
        ``timeout`` seconds is left to the runtime."""
        with self._lock:
            groups = {g_uid: set(left) for g_uid, left in self._groups.items()}
        waiting = set().union(*groups.values()) if groups else set()
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            waiting -= {puid for puid, _ in exited(list(waiting))}
            if waiting:
                time.sleep(0.05)
        for g_uid, members in groups.items():
            if members & waiting:
                log.warning("dragon: group %s left to the runtime: its processes still run", g_uid)
            else:
                self._destroy_group(g_uid)


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def _read_and_remove(path: str | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    with contextlib.suppress(OSError):
        os.remove(path)
    return text
