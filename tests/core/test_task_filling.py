"""A new task's slots, filled by rhapsody.api.task_filling: the same task attrs' own
``__attrs_init__`` makes, of its own class whatever happens during the fill."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import AITask, ComputeTask, TaskState, TaskValidationError
from rhapsody.api.task_filling import filler


def f(x: int = 0) -> int:
    return x


def slots_of(task: Any) -> dict[str, Any]:
    return {a.name: getattr(task, a.name) for a in attrs.fields(type(task))}


def by_attrs(cls: type, **fields: Any) -> Any:
    """The same fields through attrs' own generated init (the reference)."""
    task = object.__new__(cls)
    cls.__attrs_init__(task, **fields)  # type: ignore[attr-defined]
    return task


compute_fields = st.fixed_dictionaries(
    {"function": st.just(f)},
    optional={
        "uid": st.from_regex(r"[a-z][a-z0-9._-]{0,12}", fullmatch=True),
        "backend": st.sampled_from(["concurrent", "dask"]),
        "timeout": st.floats(min_value=0.01, max_value=1e6),
        "args": st.lists(st.integers(), max_size=3).map(tuple),
        "kwargs": st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
        "capture_stdio": st.booleans(),
        "ranks": st.integers(1, 8),
        "cores_per_rank": st.integers(1, 8),
    },
)


@given(compute_fields)
def test_a_compute_task_is_what_attrs_would_make(fields: dict[str, Any]) -> None:
    ours, theirs = ComputeTask(**fields), by_attrs(ComputeTask, **fields)
    assert type(ours) is ComputeTask
    mine, reference = slots_of(ours), slots_of(theirs)
    if "uid" not in fields:  # each made its own from the counter
        assert mine.pop("uid") != reference.pop("uid")
    assert mine == reference


@given(
    st.text(min_size=1, max_size=20).filter(str.strip),  # a prompt that says something
    st.floats(min_value=0, max_value=2),
    st.integers(1, 1000),
)
def test_an_inference_task_is_what_attrs_would_make(
    prompt: str, temperature: float, max_tokens: int
) -> None:
    fields = {"prompt": prompt, "temperature": temperature, "max_tokens": max_tokens}
    ours, theirs = AITask(**fields), by_attrs(AITask, **fields)
    assert type(ours) is AITask
    mine, reference = slots_of(ours), slots_of(theirs)
    del mine["uid"], reference["uid"]
    assert mine == reference


def test_defaults_results_and_required_fields() -> None:
    task = ComputeTask(executable="/bin/true")
    assert task.state is TaskState.NEW and task.return_value is None and task.host is None
    assert task.arguments == () and task.kwargs == {} and task.uid.startswith("task.")
    with pytest.raises(TypeError, match="prompt"):  # AITask's prompt has no default
        filler(AITask)(object.__new__(AITask))


def test_a_failing_fill_leaves_no_half_made_task_of_another_class() -> None:
    # __attrs_post_init__ raises (neither executable nor function): the error is the task's own
    with pytest.raises(TaskValidationError, match="executable"):
        ComputeTask()

    calls = []

    def failing() -> str:
        calls.append(1)
        raise RuntimeError("factory failed")

    @attrs.define(kw_only=True, eq=False, repr=False, init=False)
    class Picky(ComputeTask):
        label: str = attrs.field(factory=failing)

    task = object.__new__(Picky)
    with pytest.raises(RuntimeError, match="factory failed"):
        filler(Picky)(task, function=f)
    assert calls and type(task) is Picky  # its class restored, past the failure


def test_subclasses_of_users_fill_like_attrs_does() -> None:
    class Plain(ComputeTask):  # no attrs of its own
        pass

    @attrs.define(kw_only=True, eq=False, repr=False, init=False)
    class Tagged(ComputeTask):
        tag: str = "x"
        step: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    plain = Plain(function=f, args=(1,))
    assert type(plain) is Plain and plain.args == (1,) and plain.state is TaskState.NEW
    tagged = Tagged(function=f, tag="y", step=3)
    assert type(tagged) is Tagged and (tagged.tag, tagged.step) == ("y", 3)
    # an attrs validator of the subclass's: attrs' own init, which runs it
    assert filler(Tagged) is Tagged.__attrs_init__
    with pytest.raises(ValueError, match="step"):
        Tagged(function=f, step=-1)


def test_a_filled_task_assigns_validates_pickles_and_copies() -> None:
    task = ComputeTask(function=f, args=(2,), backend="concurrent")
    with pytest.raises(TaskValidationError, match="timeout"):
        task.timeout = -1  # the class's own __setattr__ again, after the fill
    task.timeout = 5
    again = pickle.loads(pickle.dumps(task))
    assert type(again) is ComputeTask and slots_of(again).items() >= {"args": (2,)}.items()
    assert again.timeout == 5 and again.uid == task.uid
