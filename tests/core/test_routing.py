"""Routing: explicit names, unknown names fail before submission, implicit compatible routing,
and routing policies as plugins."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import AITask, ComputeTask, Session, SessionError
from rhapsody.plugins import hookimpl, register, unregister

from .fakes import ManualBackend, ManualInferenceBackend


def f() -> None:
    pass


async def test_explicit_and_implicit_routing():
    a, b = ManualBackend("a"), ManualBackend("b")
    ai = ManualInferenceBackend("llm")
    async with Session(backends=[ai, a, b]) as session:
        t1 = ComputeTask(function=f, backend="b")
        t2 = ComputeTask(function=f)
        t3 = AITask(prompt="hi")
        await session.submit_tasks([t1, t2, t3])
        assert (t1.backend, t2.backend, t3.backend) == ("b", "a", "llm")
        assert b.submitted == [t1] and a.submitted == [t2] and ai.submitted == [t3]


async def test_unknown_backend_submits_nothing():
    a = ManualBackend("a")
    async with Session(backends=[a]) as session:
        good = [ComputeTask(function=f) for _ in range(5)]
        bad = ComputeTask(function=f, backend="nope")
        with pytest.raises(SessionError, match="'nope' is not in this session.*\\['a'\\]"):
            await session.submit_tasks([*good, bad])
        assert a.submitted == [] and session.tasks == {}
        assert all(t.future is None for t in good)
        await session.submit_tasks(good)  # the good ones can still go
        assert a.submitted == good


async def test_no_compatible_backend():
    async with Session(backends=[ManualBackend("a")]) as session:
        with pytest.raises(SessionError, match="no backend in this session accepts a AITask"):
            await session.submit_tasks([AITask(prompt="hi")])
        with pytest.raises(SessionError, match="cannot run a AITask"):
            await session.submit_tasks([AITask(prompt="hi", backend="a")])


async def test_routing_plugin_least_loaded():
    class LeastLoaded:
        @hookimpl
        def rhapsody_route_task(self, backends):
            return min(backends, key=lambda b: len(b.submitted)).name

    register(LeastLoaded(), name="least-loaded")
    try:
        a, b = ManualBackend("a"), ManualBackend("b")
        async with Session(backends=[a, b]) as session:
            for _ in range(6):
                await session.submit_tasks([ComputeTask(function=f)])
            assert len(a.submitted) == 3 and len(b.submitted) == 3
    finally:
        unregister("least-loaded")


async def test_routing_plugin_bad_answer():
    class Bad:
        @hookimpl
        def rhapsody_route_task(self):
            return "ghost"

    register(Bad(), name="bad-router")
    try:
        async with Session(backends=[ManualBackend("a")]) as session:
            with pytest.raises(SessionError, match="routing hook chose 'ghost'"):
                await session.submit_tasks([ComputeTask(function=f)])
    finally:
        unregister("bad-router")


@given(
    kinds=st.lists(st.sampled_from(["exec", "ai"]), min_size=1, max_size=4),
    tasks=st.lists(
        st.tuples(st.sampled_from(["compute", "ai"]), st.one_of(st.none(), st.integers(0, 5))),
        min_size=1,
        max_size=10,
    ),
)
def test_routing_property(kinds, tasks):
    """Each task lands on its named backend, or the first compatible one; otherwise the whole
    batch is refused and nothing is submitted."""

    async def scenario():
        backends = [
            ManualBackend(f"b{i}") if k == "exec" else ManualInferenceBackend(f"b{i}")
            for i, k in enumerate(kinds)
        ]
        batch, expected = [], []
        for kind, target in tasks:
            name = f"b{target}" if target is not None else None
            task = (
                ComputeTask(function=f, backend=name)
                if kind == "compute"
                else AITask(prompt="p", backend=name)
            )
            want_kind = "exec" if kind == "compute" else "ai"
            if name is not None:
                ok = target < len(kinds) and kinds[target] == want_kind
                expected.append(name if ok else None)
            else:
                first = next((f"b{i}" for i, k in enumerate(kinds) if k == want_kind), None)
                expected.append(first)
            batch.append(task)
        async with Session(backends=backends) as session:
            if None in expected:
                with pytest.raises(SessionError):
                    await session.submit_tasks(batch)
                assert all(not b.submitted for b in backends)
            else:
                await session.submit_tasks(batch)
                assert [t.backend for t in batch] == expected
                for b in backends:
                    assert b.submitted == [t for t in batch if t.backend == b.name]

    asyncio.run(scenario())
