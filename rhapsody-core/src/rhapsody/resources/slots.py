""":class:`SlotScheduler`: places the ranks of tasks on free cores and GPUs, never more than the
nodes have, first come first served with bounded backfill.

A task whose request does not fit now waits in submission order. While the first waiting task
(the head) cannot start, tasks behind it that fit may start on the idle cores (backfill), but
at most ``backfill`` of them: after that nothing new starts until the head has, so a wide task
is never starved by a stream of narrow ones. Pure bookkeeping (no threads, no processes): the
backend calls :meth:`submit`, :meth:`release` and :meth:`discard`, from any thread.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, NamedTuple

from .inventory import NodeResources
from .request import GPU_UNITS, ResourceRequest

BACKFILL_WINDOW = 64
_SUBMIT_CHUNK = 256  # how far behind the head backfill looks for a task that fits

Placed = list[tuple[Any, list["RankSlot"]]]


class RankSlot(NamedTuple):
    """Where one rank runs: its node, the CPU ids it is pinned to and the GPUs it sees."""

    node: int  # index of the node in the scheduler's nodes
    slots: tuple[int, ...]  # indices into the node's cores (what is released)
    cpus: tuple[int, ...]  # CPU ids, for the rank's affinity
    gpus: tuple[int, ...]  # indices into the node's GPUs
    gpu_ids: tuple[str, ...]  # what CUDA_VISIBLE_DEVICES lists
    gpu_units: int  # thousandths of each of its GPUs it holds
    memory: int  # bytes held (0: not accounted)


class _YieldingLock:
    """A lock whose waiters yield the GIL instead of sleeping on the lock.

    Its holders are short Python sections; a thread parked on a contended ``threading.Lock``
    must, once woken, also win the GIL back, which with many worker threads turns into a
    convoy (measured: ~10% of releases contended at 8 threads, 1.6x slower overall). Yielding
    lets the holder finish and the waiter retry at once.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        acquire = self._lock.acquire
        while not acquire(False):
            time.sleep(0)

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class SlotScheduler:
    """Free cores, GPU shares and memory of ``nodes``, and the tasks waiting for them.

    ``spans_nodes``: the ranks of one job may be placed on several nodes (else one node holds
    the whole job). ``backfill``: how many tasks may start ahead of a waiting head (default:
    the cores of the largest node).
    """

    def __init__(
        self,
        nodes: Sequence[NodeResources],
        *,
        spans_nodes: bool = False,
        backfill: int | None = None,
    ) -> None:
        self.nodes = tuple(nodes)
        self.spans_nodes = spans_nodes
        self.backfill = (
            max((len(n.cores) for n in self.nodes), default=1) if backfill is None else backfill
        )
        self._free = [list(range(len(n.cores))) for n in self.nodes]
        self._gpu_free = [[GPU_UNITS] * len(n.gpus) for n in self.nodes]
        self._memory = [n.memory for n in self.nodes]
        self._waiting: deque[tuple[Any, ResourceRequest]] = deque()
        self._simple: dict[tuple[int, ...], RankSlot] = {}
        self._bypassed = 0  # tasks started ahead of the current head
        self._lock = _YieldingLock()
        self.cores_in_use = 0
        self.peak_cores = 0
        self._total_cores = sum(len(n.cores) for n in self.nodes)

    @property
    def waiting(self) -> int:
        """How many tasks wait for their resources."""
        return len(self._waiting)

    def free_cores(self) -> int:
        """Cores not held by any rank, on all nodes."""
        with self._lock:
            return sum(len(f) for f in self._free)

    def _free_any(self) -> bool:
        return self.cores_in_use < self._total_cores  # every rank needs at least one core

    # -- the backend's calls ----------------------------------------------------------------------

    def submit(self, item: Hashable, request: ResourceRequest) -> list[RankSlot] | None:
        """Place ``item`` now (its rank slots) or queue it (None: it comes back from a later
        :meth:`release` or :meth:`discard`)."""
        placed = self.submit_many(((item, request),))
        return placed[0][1] if placed else None

    def submit_many(self, requests: Sequence[tuple[Any, ResourceRequest]]) -> Placed:
        """:meth:`submit` for many items; returns those placed now."""
        placed: Placed = []
        for start in range(0, len(requests), _SUBMIT_CHUNK):  # short holds of the lock
            with self._lock:
                self._submit(requests[start : start + _SUBMIT_CHUNK], placed)
        return placed

    def _submit(self, requests: Sequence[tuple[Any, ResourceRequest]], placed: Placed) -> None:
        waiting = self._waiting
        for item, request in requests:
            if not waiting:
                slots = self._place(request)
                if slots is not None:
                    placed.append((item, slots))
                    continue
                self._bypassed = 0  # it becomes the head
            elif self._bypassed < self.backfill and self._free_any():
                slots = self._place(request)  # backfill: it fits beside the waiting head
                if slots is not None:
                    self._bypassed += 1
                    placed.append((item, slots))
                    continue
            waiting.append((item, request))

    def release(self, slots: Sequence[RankSlot]) -> Placed:
        """Give back the slots of a finished task; returns the waiting tasks that start now."""
        lock = self._lock._lock
        if not lock.acquire(False):  # the common, uncontended case without a call
            self._lock.__enter__()
        try:
            waiting = self._waiting
            if waiting and len(slots) == 1:
                # The head wants just what was freed (one rank, the same cores, nothing
                # else): it gets that very slot; nothing to free and place again.
                slot = slots[0]
                item, request = waiting[0]
                if (
                    not slot.gpus
                    and not slot.memory
                    and request.ranks == 1
                    and request.cores_per_rank == len(slot.slots)
                    and not request.gpus_per_rank
                    and not request.mem_per_rank
                ):
                    waiting.popleft()
                    self._bypassed = 0
                    started: Placed = [(item, [slot])]
                    if waiting and self.cores_in_use < self._total_cores:
                        started += self._schedule()
                    return started
            for slot in slots:
                self._free_slot(slot)
            return self._schedule() if waiting else []
        finally:
            lock.release()

    def discard(self, items: Iterable[Hashable]) -> Placed:
        """Forget those of ``items`` that wait (canceled): one pass over the queue however many
        there are. Returns the waiting tasks that start now."""
        gone = {id(item) for item in items}  # the caller holds the items: ids stay unique
        with self._lock:
            waiting = self._waiting
            if not waiting or not gone:
                return []
            head = waiting[0][0]
            kept = [entry for entry in waiting if id(entry[0]) not in gone]
            if len(kept) == len(waiting):
                return []
            waiting.clear()
            waiting.extend(kept)
            if id(head) in gone:
                self._bypassed = 0
            return self._schedule()

    def drain(self) -> list[Any]:
        """Remove and return every waiting item (shutdown)."""
        with self._lock:
            items = [item for item, _ in self._waiting]
            self._waiting.clear()
            return items

    # -- scheduling -------------------------------------------------------------------------------

    def _schedule(self) -> Placed:
        started: Placed = []
        waiting = self._waiting
        total = self._total_cores
        while waiting and self.cores_in_use < total:
            item, request = waiting[0]
            placed = self._place(request)
            if placed is None:
                break
            waiting.popleft()
            self._bypassed = 0
            started.append((item, placed))
        if waiting and self._bypassed < self.backfill and self._free_any():
            self._backfill(started)
        return started

    def _backfill(self, started: Placed) -> None:
        waiting = self._waiting
        window = list(itertools.islice(waiting, 1, BACKFILL_WINDOW + 1))
        kept: list[tuple[Any, ResourceRequest]] = []
        refused: set[ResourceRequest] = set()  # equal requests fail alike: try each once
        for entry in window:
            request = entry[1]
            if self._bypassed >= self.backfill or request in refused:
                kept.append(entry)
                continue
            placed = self._place(request)
            if placed is None:
                refused.add(request)
                kept.append(entry)
            else:
                self._bypassed += 1
                started.append((entry[0], placed))
        if len(kept) == len(window):
            return
        head = waiting.popleft()
        for _ in window:
            waiting.popleft()
        waiting.extendleft(reversed(kept))
        waiting.appendleft(head)

    def _place(self, request: ResourceRequest) -> list[RankSlot] | None:
        if request.ranks == 1 and not request.gpus_per_rank and not request.mem_per_rank:
            return self._place_cores(request.cores_per_rank)
        if self.spans_nodes:
            nodes: Sequence[int] = range(len(self.nodes))
            return self._place_ranks(request, nodes, spread=True)
        need = request.cores
        for n, free in enumerate(self._free):
            if len(free) >= need:
                placed = self._place_ranks(request, (n,), spread=False)
                if placed is not None:
                    return placed
        return None

    def _place_cores(self, cores: int) -> list[RankSlot] | None:
        """The common case, kept short: one rank that needs only cores."""
        for n, free in enumerate(self._free):
            if len(free) >= cores:
                key = (n, *free[:cores])
                del free[:cores]
                self.cores_in_use += cores
                if self.cores_in_use > self.peak_cores:
                    self.peak_cores = self.cores_in_use
                slot = self._simple.get(key)
                if slot is None:
                    slots = key[1:]
                    cpus = self.nodes[n].cores
                    slot = RankSlot(n, slots, tuple(cpus[s] for s in slots), (), (), 0, 0)
                    if len(self._simple) < 65536:
                        self._simple[key] = slot  # the same cores again: the same slot
                return [slot]
        return None

    def _place_ranks(
        self, request: ResourceRequest, nodes: Sequence[int], *, spread: bool
    ) -> list[RankSlot] | None:
        placed: list[RankSlot] = []
        for _ in range(request.ranks):
            for n in nodes:
                slot = self._take(n, request)
                if slot is not None:
                    placed.append(slot)
                    break
            else:  # no node has room for this rank: undo the job's ranks placed so far
                for slot in placed:
                    self._free_slot(slot)
                return None
        return placed

    def _take(self, n: int, request: ResourceRequest) -> RankSlot | None:
        free, cpr = self._free[n], request.cores_per_rank
        if len(free) < cpr:
            return None
        memory = request.mem_per_rank or 0
        left = self._memory[n]
        if memory and left is not None and left < memory:
            return None
        units = request.gpu_units
        gpus: tuple[int, ...] = ()
        if units:
            gpus = self._take_gpus(n, units)
            if not gpus:
                return None
        if memory and left is not None:
            self._memory[n] = left - memory
        slots = tuple(free[:cpr])
        del free[:cpr]
        node = self.nodes[n]
        self.cores_in_use += cpr
        if self.cores_in_use > self.peak_cores:
            self.peak_cores = self.cores_in_use
        return RankSlot(
            n,
            slots,
            tuple(node.cores[s] for s in slots),
            gpus,
            tuple(node.gpus[g] for g in gpus),
            min(units, GPU_UNITS),
            memory,
        )

    def _take_gpus(self, n: int, units: int) -> tuple[int, ...]:
        free = self._gpu_free[n]
        if units < GPU_UNITS:  # a share: the fullest GPU that still has room, to pack shares
            best = -1
            for g, left in enumerate(free):
                if left >= units and (best < 0 or left < free[best]):
                    best = g
            if best < 0:
                return ()
            free[best] -= units
            return (best,)
        count = units // GPU_UNITS
        idle = [g for g, left in enumerate(free) if left == GPU_UNITS][:count]
        if len(idle) < count:
            return ()
        for g in idle:
            free[g] = 0
        return tuple(idle)

    def _free_slot(self, slot: RankSlot) -> None:
        n = slot.node
        free = self._free[n]
        for s in slot.slots:
            bisect.insort(free, s)
        self.cores_in_use -= len(slot.slots)
        for g in slot.gpus:
            self._gpu_free[n][g] += slot.gpu_units
        if slot.memory and self._memory[n] is not None:
            self._memory[n] += slot.memory  # type: ignore[operator]
