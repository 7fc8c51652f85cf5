"""The slot scheduler's logic, on simulated time: never more cores, GPU shares or memory than the
nodes have, every task starts, a wide task is never starved, and mixed batches pack tightly."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.resources import NodeResources, ResourceRequest, SlotScheduler
from rhapsody.resources.request import GPU_UNITS


def node(cores: int, gpus: int = 0, memory: int | None = None, name: str = "n0") -> NodeResources:
    return NodeResources(name, tuple(range(cores)), tuple(str(g) for g in range(gpus)), memory)


class Audit:
    """Checks every placement against what is in use, rank by rank."""

    def __init__(self, nodes: list[NodeResources]) -> None:
        self.nodes = nodes
        self.cores = [set() for _ in nodes]
        self.gpu_units = [[0] * len(n.gpus) for n in nodes]
        self.whole = [set() for _ in nodes]
        self.memory = [0 for _ in nodes]
        self.peak = 0

    def take(self, request: ResourceRequest, slots) -> None:
        assert len(slots) == request.ranks
        for slot in slots:
            n = slot.node
            assert len(slot.slots) == request.cores_per_rank
            assert not (self.cores[n] & set(slot.slots)), "a core handed out twice"
            self.cores[n] |= set(slot.slots)
            units = request.gpu_units
            expected = 0 if not units else (1 if units < GPU_UNITS else units // GPU_UNITS)
            assert len(slot.gpus) == expected
            for g in slot.gpus:
                assert g not in self.whole[n], "a GPU of its own shared"
                self.gpu_units[n][g] += slot.gpu_units
                assert self.gpu_units[n][g] <= GPU_UNITS, "a GPU oversubscribed"
                if units >= GPU_UNITS:
                    self.whole[n].add(g)
            self.memory[n] += slot.memory
            if self.nodes[n].memory is not None:
                assert self.memory[n] <= self.nodes[n].memory
        self.peak = max(self.peak, sum(len(c) for c in self.cores))

    def give(self, slots) -> None:
        for slot in slots:
            n = slot.node
            self.cores[n] -= set(slot.slots)
            for g in slot.gpus:
                self.gpu_units[n][g] -= slot.gpu_units
                self.whole[n].discard(g)
            self.memory[n] -= slot.memory


def simulate(nodes, jobs, *, spans_nodes=False, backfill=None):
    """Submit ``jobs`` ((request, duration) pairs) at time 0; returns (makespan, audit, starts)."""
    scheduler = SlotScheduler(nodes, spans_nodes=spans_nodes, backfill=backfill)
    audit = Audit(list(nodes))
    running: list[tuple[float, int, list]] = []
    starts: dict[int, float] = {}
    order: list[int] = []  # the order tasks started in

    def start(i, slots, t):
        audit.take(jobs[i][0], slots)
        starts[i] = t
        order.append(i)
        heapq.heappush(running, (t + jobs[i][1], i, slots))

    for i, (request, _) in enumerate(jobs):
        slots = scheduler.submit(i, request)
        if slots is not None:
            start(i, slots, 0.0)
    now = 0.0
    while running:
        now, i, slots = heapq.heappop(running)
        audit.give(slots)
        for j, placed in scheduler.release(slots):
            start(j, placed, now)
    assert len(starts) == len(jobs), "a task never started"
    assert scheduler.waiting == 0 and scheduler.cores_in_use == 0
    return now, audit, order, scheduler


requests = st.builds(
    ResourceRequest,
    ranks=st.integers(1, 3),
    cores_per_rank=st.integers(1, 4),
    gpus_per_rank=st.sampled_from([0, 0, 0.25, 0.5, 1, 2]),
    mem_per_rank=st.sampled_from([None, 1 << 30, 3 << 30]),
)


@settings(max_examples=150, deadline=None)
@given(
    jobs=st.lists(st.tuples(requests, st.floats(0.1, 5.0)), min_size=1, max_size=60),
    spans=st.booleans(),
    backfill=st.sampled_from([None, 0, 1, 5]),
)
def test_never_oversubscribed_and_every_task_starts(jobs, spans, backfill):
    nodes = [node(8, gpus=4, memory=16 << 30), node(6, gpus=2, memory=8 << 30, name="n1")]
    from rhapsody.api import ResourceError
    from rhapsody.resources import check_request

    runnable = []
    for request, duration in jobs:
        try:
            check_request("sim", "t", request, nodes, spans_nodes=spans)
        except ResourceError:
            continue
        runnable.append((request, duration))
    _, audit, _, scheduler = simulate(nodes, runnable, spans_nodes=spans, backfill=backfill)
    assert audit.peak <= 14 and scheduler.peak_cores <= 14


@settings(max_examples=100, deadline=None)
@given(
    narrow=st.lists(st.floats(0.1, 2.0), min_size=5, max_size=80),
    position=st.integers(0, 4),
    backfill=st.integers(0, 6),
)
def test_a_wide_task_is_never_starved(narrow, position, backfill):
    """At most ``backfill`` tasks submitted after the wide one start before it."""
    jobs = [(ResourceRequest(cores_per_rank=1), d) for d in narrow]
    jobs.insert(position, (ResourceRequest(cores_per_rank=8), 1.0))
    wide = position
    _, _, order, _ = simulate([node(8)], jobs, backfill=backfill)
    overtook = [i for i in order[: order.index(wide)] if i > wide]
    assert len(overtook) <= backfill


def test_narrow_tasks_fill_idle_cores_while_a_wide_one_waits():
    jobs = [(ResourceRequest(cores_per_rank=6), 10.0), (ResourceRequest(cores_per_rank=4), 1.0)]
    jobs += [(ResourceRequest(), 1.0)] * 4
    _, _, order, _ = simulate([node(8)], jobs)
    # the 4-core task waits for the 6-core one; two 1-core tasks use the two idle cores
    assert order[:3] == [0, 2, 3]


def lower_bound(jobs, cores):
    return max(sum(r.cores * d for r, d in jobs) / cores, max(d for _, d in jobs))


def test_a_mixed_batch_packs_within_15_percent_of_the_lower_bound():
    import random

    rng = random.Random(7)
    jobs = [
        (ResourceRequest(cores_per_rank=rng.choice([1, 2, 4])), rng.uniform(0.5, 3.0))
        for _ in range(300)
    ]
    makespan, audit, _, _ = simulate([node(8)], jobs)
    assert audit.peak <= 8
    assert makespan <= 1.15 * lower_bound(jobs, 8)


def test_gpu_shares_pack_onto_one_gpu_and_whole_gpus_are_never_shared():
    scheduler = SlotScheduler([node(8, gpus=2)])
    a = scheduler.submit("a", ResourceRequest(gpus_per_rank=0.5))
    b = scheduler.submit("b", ResourceRequest(gpus_per_rank=0.5))
    assert a[0].gpu_ids == b[0].gpu_ids == ("0",)
    c = scheduler.submit("c", ResourceRequest(gpus_per_rank=1))
    assert c[0].gpu_ids == ("1",)
    assert scheduler.submit("d", ResourceRequest(gpus_per_rank=1)) is None
    assert scheduler.release(a) == []  # gpu 0 still half used by b
    started = scheduler.release(b)
    assert [(item, slots[0].gpu_ids) for item, slots in started] == [("d", ("0",))]


def test_ranks_spread_over_nodes_only_when_the_backend_allows_it():
    nodes = [node(2, name="a"), node(2, name="b")]
    request = ResourceRequest(ranks=4)
    assert SlotScheduler(nodes).submit("x", request) is None
    placed = SlotScheduler(nodes, spans_nodes=True).submit("x", request)
    assert sorted(s.node for s in placed) == [0, 0, 1, 1]


def test_discarding_the_waiting_head_lets_the_next_start():
    scheduler = SlotScheduler([node(4)])
    first = scheduler.submit("busy", ResourceRequest(cores_per_rank=3))
    assert first is not None
    assert scheduler.submit("wide", ResourceRequest(cores_per_rank=4)) is None
    assert scheduler.submit("two", ResourceRequest(cores_per_rank=2)) is None  # only 1 free
    assert scheduler.discard(["wide"]) == []
    started = scheduler.release(first)
    assert [item for item, _ in started] == ["two"]
    assert scheduler.drain() == []


@pytest.mark.parametrize("cores", [1, 3])
def test_equal_requests_start_in_submission_order(cores):
    jobs = [(ResourceRequest(cores_per_rank=cores), 1.0) for _ in range(20)]
    _, _, order, _ = simulate([node(3)], jobs)
    assert order == list(range(20))
