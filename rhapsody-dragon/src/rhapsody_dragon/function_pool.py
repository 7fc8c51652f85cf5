"""The function pool: long-lived Dragon worker processes that run function tasks in chunks.

Measured under ``dragon`` on 2 cores: a Dragon process costs ~7-10 ms to start and one queue
message ~0.5 ms, so functions go to a pool, in chunks, and results come back in batches
(``worker_side._Outbox``). Each worker has its own input queue, so the pool knows which calls
each worker holds and runs them in order: when a worker dies, the call it had announced as
running fails, calls it never reached run elsewhere, and when it died too soon after a start
to have announced it, the calls in doubt are re-run one at a time, alone on a worker, so that
only the one that kills its worker fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import cloudpickle  # type: ignore[import-untyped]

from rhapsody.api import BackendError, ComputeTask
from rhapsody.api.errors import task_label
from rhapsody.api.states import TERMINAL_STATES
from rhapsody.api.task_fields import EMPTY_MAPPING
from rhapsody.backends.exit_status import describe_exit
from rhapsody.backends.result_fields import set_result

from .global_services import destroy_queue, new_queue, start_process
from .killing import kill_owner
from .reaper import Reaper
from .runtime import hostname_of
from .worker_side import MARK_BACKEND, MARK_OWNER, marked_pids, pool_worker

log = logging.getLogger(__name__)

CHUNK_MAX = 256
CHUNKS_PER_WORKER = 2  # one running, one waiting: the worker never idles between chunks
MAX_START_FAILURES = 3
_GRACE = 1.0  # seconds a worker gets to stop on SIGTERM before SIGKILL

# (ok, return value or exception, traceback, stdout, stderr); or a BackendError when the worker died
CallOutcome = tuple[bool, Any, str | None, str | None, str | None]
Deliver = Callable[[ComputeTask, "CallOutcome | BackendError"], None]


@attrs.define(eq=False)
class Worker:
    wid: int
    inq: Any
    owner: str
    puid: int = 0
    node: Any = None
    ready: bool = False
    dead: bool = False
    suspect: bool = False  # runs one call in doubt, alone
    reserved: int = 0  # chunks being pickled for it
    running: str | None = None  # the call it announced it is in
    inflight: deque[ComputeTask] = attrs.Factory(deque)
    chunk_ends: deque[str] = attrs.Factory(deque)


class FunctionPool:
    def __init__(
        self,
        size: int,
        token: str,
        outq_blob: bytes,
        reaper: Reaper,
        hostnames: list[str],
        local_node: Any,
        deliver: Deliver,
        running: Callable[[ComputeTask], None],
    ) -> None:
        self.size = size
        self._token, self._outq_blob, self._reaper = token, outq_blob, reaper
        self._hostnames, self._local_node = hostnames, local_node
        self._deliver, self._running = deliver, running
        self._cond = threading.Condition()
        self._workers: dict[int, Worker] = {}
        self._by_puid: dict[int, Worker] = {}
        self._pending: deque[ComputeTask] = deque()
        self._suspects: deque[ComputeTask] = deque()
        self._canceled: set[str] = set()
        # modules of functions the workers cannot import -> what a worker said
        self._unimportable: dict[str, str] = {}
        self._next_wid = 0
        self._start_failures = 0
        self._stopping = False
        self.broken: str | None = None
        self._thread = threading.Thread(
            target=self._dispatch_loop, name="rhapsody-dragon-dispatch", daemon=True
        )

    # -- workers ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (blocking: call from a thread)."""
        for _ in range(self.size):
            self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        from dragon.infrastructure.policy import Policy
        from dragon.native.process import Process

        with self._cond:
            wid = self._next_wid
            self._next_wid += 1
        policy = None
        if len(self._hostnames) > 1:  # spread over the allocation's nodes
            host = self._hostnames[wid % len(self._hostnames)]
            policy = Policy(placement=Policy.Placement.HOST_NAME, host_name=host)
        worker = Worker(wid, new_queue(CHUNKS_PER_WORKER + 2), f"{self._token}-worker{wid}")
        process = Process(
            pool_worker,
            (worker.inq, self._outq_blob, wid),
            env={MARK_BACKEND: self._token, MARK_OWNER: worker.owner},
            policy=policy,
        )
        worker.puid, worker.node = start_process(process)
        with self._cond:
            self._workers[wid] = worker
            self._by_puid[worker.puid] = worker
        self._reaper.watch([worker.puid], long_lived=True)

    def owns(self, puid: int) -> bool:
        return puid in self._by_puid

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, tasks: list[ComputeTask]) -> None:
        doomed: list[ComputeTask] = []
        with self._cond:
            broken = self.broken
            if broken is None:
                if self._unimportable:  # (rare: no look per task otherwise)
                    runnable: list[ComputeTask] = []
                    for task in tasks:
                        unimportable = _module_of(task) in self._unimportable
                        (doomed if unimportable else runnable).append(task)
                    tasks = runnable
                self._pending.extend(tasks)
                self._cond.notify()
        if broken is not None:
            doomed = tasks
        for task in doomed:
            self._deliver(task, self._unpicklable(task))

    def _dispatch_loop(self) -> None:
        try:
            self._dispatch()
        except Exception as exc:  # no call may wait for a dispatcher that is gone
            log.exception("the Dragon function pool's dispatcher failed")
            self._break(
                f"the Dragon function pool's dispatcher failed: {type(exc).__name__}: {exc}"
            )

    def _break(self, reason: str) -> None:
        """Nothing more can be sent to the workers: fail what waits, and what comes later."""
        with self._cond:
            if self.broken is None:
                self.broken = reason
            orphans = [*self._pending, *self._suspects]
            self._pending.clear()
            self._suspects.clear()
        for task in orphans:
            self._deliver(task, BackendError(f"{task_label(task.uid)}: {reason}"))

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (work := self._plan()):
                    self._cond.wait()
                if self._stopping:
                    return
            for i, (worker, tasks) in enumerate(work):
                try:
                    self._send(worker, tasks)
                except BaseException:
                    # the chunks planned after it were taken off the queue but never sent: back
                    # to it, so that whoever handles the failure sees them (none left waiting)
                    with self._cond:
                        for other, unsent in work[i + 1 :]:
                            other.reserved -= 1
                            self._pending.extendleft(reversed(unsent))
                    raise

    def _take(self, source: deque[ComputeTask], n: int) -> list[ComputeTask]:
        taken: list[ComputeTask] = []
        canceled = self._canceled
        while source and len(taken) < n:
            task = source.popleft()
            if task.state in TERMINAL_STATES or task.uid in canceled:
                canceled.discard(task.uid)
                continue
            taken.append(task)
        return taken

    def _plan(self) -> list[tuple[Worker, list[ComputeTask]]]:
        """Which calls go to which worker now (under the lock)."""
        ready = [w for w in self._workers.values() if w.ready and not w.dead]
        work: list[tuple[Worker, list[ComputeTask]]] = []
        for worker in ready:
            if not self._suspects:
                break
            if not worker.inflight and not worker.reserved:
                tasks = self._take(self._suspects, 1)
                if tasks:
                    worker.suspect, worker.reserved = True, 1
                    work.append((worker, tasks))
        if self._pending and ready:
            size = max(1, min(CHUNK_MAX, -(-len(self._pending) // (2 * len(ready)))))
            for worker in ready:
                if worker.suspect or len(worker.chunk_ends) + worker.reserved >= CHUNKS_PER_WORKER:
                    continue
                tasks = self._take(self._pending, size)
                if not tasks:
                    break
                worker.reserved += 1
                work.append((worker, tasks))
        return work

    def _send(self, worker: Worker, tasks: list[ComputeTask]) -> None:
        blob, tasks = self._pickle(tasks)
        with self._cond:
            worker.reserved -= 1
            if not tasks:
                worker.suspect = False
                self._cond.notify()
                return
            if worker.dead:
                self._pending.extendleft(reversed(tasks))
                self._cond.notify()
                return
            worker.inflight.extend(tasks)
            worker.chunk_ends.append(tasks[-1].uid)
        try:
            worker.inq.put(([t.uid for t in tasks], blob))
        except BaseException:
            with (
                self._cond
            ):  # never sent: back to the queue, unless the worker's death settled them
                if tasks[-1].uid in worker.chunk_ends:
                    worker.chunk_ends.remove(tasks[-1].uid)
                unsent = [task for task in tasks if task in worker.inflight]
                for task in unsent:
                    worker.inflight.remove(task)
                self._pending.extendleft(reversed(unsent))
            raise

    def _pickle(self, tasks: list[ComputeTask]) -> tuple[bytes, list[ComputeTask]]:
        """One pickle per chunk (a function shared by the chunk is pickled once); a call that
        does not pickle fails alone."""
        try:
            return cloudpickle.dumps([_call(t) for t in tasks]), tasks
        except Exception:  # noqa: BLE001 - find the culprit below
            pass
        good = []
        for task in tasks:
            try:
                cloudpickle.dumps(_call(task))
            except Exception as exc:  # noqa: BLE001
                error = TypeError(
                    f"{task_label(task.uid)}: its function or arguments cannot be pickled: {exc}"
                )
                self._deliver(task, (False, error, None, None, None))
            else:
                good.append(task)
        return cloudpickle.dumps([_call(t) for t in good]), good

    # -- what comes back --------------------------------------------------------------------------

    def on_message(self, message: tuple[Any, ...]) -> None:
        kind, wid = message[0], message[1]
        with self._cond:
            worker = self._workers.get(wid)
            if worker is None:
                return
            if kind == "ready":
                worker.ready = True
                self._start_failures = 0
                self._cond.notify()
                return
        if kind == "res":
            self._on_results(worker, message[2], message[3])
        elif kind == "bad_chunk":
            self._on_bad_chunk(worker, message[2], message[3], message[4])

    def _resolve(self, worker: Worker, uid: str) -> ComputeTask | None:
        """Take call ``uid`` off the worker's list (under the lock)."""
        inflight = worker.inflight
        task: ComputeTask | None
        if inflight and inflight[0].uid == uid:
            task = inflight.popleft()
        else:  # not expected: results come in order
            task = next((t for t in inflight if t.uid == uid), None)
            if task is None:
                return None
            inflight.remove(task)
        if worker.chunk_ends and worker.chunk_ends[0] == uid:
            worker.chunk_ends.popleft()
            self._cond.notify()
        if worker.running == uid:
            worker.running = None
        if worker.suspect and not inflight:
            worker.suspect = False
            self._cond.notify()
        return task

    def _on_results(
        self, worker: Worker, items: list[tuple[Any, ...]], running: str | None
    ) -> None:
        done = []
        with self._cond:
            for item in items:
                task = self._resolve(worker, item[0])
                if task is not None:
                    done.append((task, item))
            started = None
            if running is not None:
                worker.running = running
                started = next((t for t in worker.inflight if t.uid == running), None)
        host, label = hostname_of(worker.node), f"worker {worker.wid} (puid {worker.puid})"
        for task, (_, ok, blob, text, out, err) in done:
            set_result(task, "host", host)
            set_result(task, "worker", label)
            ok, value = _unpickle(blob, ok)
            self._deliver(task, (ok, value, text, out, err))
        if started is not None:
            self._running(started)

    def _on_bad_chunk(
        self, worker: Worker, uids: list[str], text: str, missing: str | None
    ) -> None:
        with self._cond:
            tasks = [t for uid in uids if (t := self._resolve(worker, uid)) is not None]
            unimportable = self._unimportable
            swept: list[ComputeTask] = []
            if missing:  # a module the workers cannot import: the calls of its functions all fail
                for module in {_module_of(t) for t in tasks}:
                    if module and (module == missing or module.startswith(missing + ".")):
                        unimportable[module] = text
                        swept += self._take_calls_of(module)
            failed = [t for t in tasks if _module_of(t) in unimportable] + swept
            rest = [t for t in tasks if _module_of(t) not in unimportable]
            if len(tasks) > 1 and rest:  # find which other call does not unpickle: one at a time
                self._suspects.extend(rest)
                self._cond.notify()
                rest = []
        for task in failed:
            self._deliver(task, self._unpicklable(task))
        for task in rest:  # a chunk of one call: that one
            self._deliver(task, self._unpicklable(task, text))

    def _take_calls_of(self, module: str) -> list[ComputeTask]:
        """(Under the lock) the waiting calls of ``module``'s functions, off their queues."""
        taken: list[ComputeTask] = []
        for waiting in (self._pending, self._suspects):
            alike = [t for t in waiting if _module_of(t) == module and self._live(t)]
            if alike:  # (the others, canceled ones too, stay where they were)
                gone = {id(t) for t in alike}
                kept = [t for t in waiting if id(t) not in gone]
                waiting.clear()
                waiting.extend(kept)
                taken += alike
        return taken

    def _unpicklable(self, task: ComputeTask, text: str = "") -> BackendError:
        """Why ``task`` cannot run: its function's module cannot be imported by the workers,
        the pool is broken, or (``text``) what the worker said unpickling it."""
        label, module = task_label(task.uid), _module_of(task)
        said = self._unimportable.get(module) if module else None
        if said is not None:
            return BackendError(
                f"{label}: a Dragon worker could not unpickle it: the workers cannot import "
                f"its function's module {module!r} (install it where they run, or put it on "
                f"PYTHONPATH before starting `dragon`):\n{said}"
            )
        if self.broken is not None:
            return BackendError(f"{label}: {self.broken}")
        return BackendError(f"{label}: a Dragon worker could not unpickle it:\n{text}")

    def _live(self, task: ComputeTask) -> bool:
        return not task.done and task.uid not in self._canceled

    def on_death(self, puid: int, code: int | None) -> None:
        """A worker exited: settle the calls it held and replace it."""
        with self._cond:
            worker = self._by_puid.pop(puid, None)
            if worker is None:
                return
            worker.dead = True
            del self._workers[worker.wid]
            culprit, again, doubt = _settle(worker, list(worker.inflight))
            worker.inflight.clear()
            live = self._live
            culprit = culprit if culprit is not None and live(culprit) else None
            again, doubt = [t for t in again if live(t)], [t for t in doubt if live(t)]
            self._pending.extendleft(reversed(again))
            self._suspects.extend(doubt)
            if not worker.ready:
                self._start_failures += 1
            stopping = self._stopping
            if self._start_failures >= MAX_START_FAILURES and self.broken is None:
                self.broken = f"the Dragon function pool cannot start workers (exit code {code})"
            broken = self.broken
            self._cond.notify()
        if culprit is not None:
            how = describe_exit(code)
            self._deliver(
                culprit,
                BackendError(
                    f"{task_label(culprit.uid)}: the Dragon worker process running it {how}"
                ),
            )
        if broken is not None:
            self._break(broken)
        elif not stopping:
            try:
                self._spawn()
            except Exception as exc:  # noqa: BLE001
                log.error("could not start a Dragon worker to replace one that died: %s", exc)

    # -- canceling and stopping -------------------------------------------------------------------

    def cancel(self, tasks: list[ComputeTask]) -> None:
        """Forget ``tasks``; kill the workers running them (they are replaced)."""
        victims = []
        with self._cond:
            for task in tasks:
                self._canceled.add(task.uid)
                for worker in self._workers.values():
                    if worker.inflight and worker.inflight[0] is task and not worker.dead:
                        victims.append(worker)
        for worker in victims:
            kill_owner(worker.owner, [worker.puid], [worker.node], self._local_node, _GRACE)

    def stop(self) -> bool:
        """Stop the dispatcher and every worker (blocking: call from a thread); True if every
        worker left on its own (none had to be killed)."""
        with self._cond:
            self._stopping = True
            workers = list(self._workers.values())
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(10)
        for worker in workers:  # idle workers leave on None; running calls get _GRACE below
            try:
                worker.inq.put(None, timeout=1)
            except Exception as exc:  # noqa: BLE001 - its queue is full: it gets killed
                log.debug("could not ask a worker to stop: %s", exc)
        deadline = time.monotonic() + _GRACE
        while time.monotonic() < deadline and any(
            marked_pids(w.owner) for w in workers if w.node == self._local_node
        ):
            time.sleep(0.02)
        # A worker that had to be killed may have died inside its queue's get(), holding the
        # channel's lock: destroying that channel then spins in Dragon's local services for
        # ever (seen in CI), and with them every later Dragon request. Only the queues of
        # workers that left on their own are destroyed; the others go with the runtime.
        left = {w.puid for w in workers if w.node == self._local_node and not marked_pids(w.owner)}
        for worker in workers:
            kill_owner(worker.owner, [worker.puid], [worker.node], self._local_node, _GRACE)
        for worker in workers:
            if worker.puid in left:
                destroy_queue(worker.inq)
        return len(left) == len(workers)


def _module_of(task: ComputeTask) -> str | None:
    return getattr(task.function, "__module__", None)


def _call(task: ComputeTask) -> tuple[Any, ...]:
    kwargs = task.kwargs
    # the usual empty mapping: no copy (one dict() of it still costs a keys() call, per task)
    plain = {} if kwargs is EMPTY_MAPPING else dict(kwargs)
    return (task.function, tuple(task.args), plain, task.capture_stdio)


def _unpickle(blob: bytes, ok: bool) -> tuple[bool, Any]:
    try:
        return ok, cloudpickle.loads(blob)
    except Exception as exc:  # noqa: BLE001 - e.g. a class the caller cannot import
        what = "return value" if ok else "exception"
        return False, RuntimeError(f"the task's {what} could not be unpickled here: {exc}")


def _settle(
    worker: Worker, held: list[ComputeTask]
) -> tuple[ComputeTask | None, list[ComputeTask], list[ComputeTask]]:
    """(the call that killed the worker, calls never started, calls in doubt)."""
    if not held:
        return None, [], []
    if worker.running is not None and held[0].uid == worker.running:
        return held[0], held[1:], []
    if worker.suspect or len(held) == 1:
        return held[0], held[1:], []
    return None, [], held
