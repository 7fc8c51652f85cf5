"""Tasks are data: pickle, deepcopy, JSON (to_dict/from_dict) round trips, before and after
they ran; extra fields; dict-style access; NumPy numbers."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhapsody.api import (
    AITask,
    BaseTask,
    ComputeTask,
    Session,
    TaskExecutionError,
    TaskState,
    TaskValidationError,
)
from rhapsody.backends import ConcurrentExecutionBackend


def add(a, b=0):
    return a + b


async def async_add(a, b=0):
    return a + b


# -- strategies ---------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
# names one letter from a field would be refused as typos: keep extras clearly different
extra_fields = st.dictionaries(
    st.from_regex(r"x_[a-z]{1,6}", fullmatch=True), json_values, max_size=3
)
uids = st.from_regex(r"[a-z][a-z0-9.\-]{0,12}", fullmatch=True)
timeouts = st.none() | st.floats(min_value=0.001, max_value=1e6)

compute_tasks = st.one_of(
    st.builds(
        lambda uid, exe, arguments, timeout, extra: ComputeTask(
            executable=exe, arguments=arguments, uid=uid, timeout=timeout, **extra
        ),
        uids,
        st.sampled_from(["/bin/echo", "/bin/true", "relative/tool"]),
        st.lists(texts, max_size=4),
        timeouts,
        extra_fields,
    ),
    st.builds(
        lambda uid, fn, args, kwargs, extra: ComputeTask(
            function=fn, args=args, kwargs=kwargs, uid=uid, **extra
        ),
        uids,
        st.sampled_from([add, async_add, print, lambda a, b=0: a - b]),
        st.lists(json_values, max_size=3).map(tuple),
        st.dictionaries(names, json_values, max_size=2),
        extra_fields,
    ),
)
ai_tasks = st.builds(
    lambda uid, prompt, temperature, max_tokens, extra: AITask(
        prompt=prompt, uid=uid, temperature=temperature, max_tokens=max_tokens, **extra
    ),
    uids,
    texts.filter(str.strip) | st.lists(texts.filter(str.strip), min_size=1, max_size=3),
    st.none() | st.floats(min_value=0, max_value=2),
    st.none() | st.integers(min_value=1, max_value=4096),
    extra_fields,
)
results = st.fixed_dictionaries(
    {
        "state": st.sampled_from([TaskState.DONE, TaskState.FAILED, TaskState.CANCELED]),
        "return_value": json_values,
        "stdout": st.none() | texts,
        "stderr": st.none() | texts,
        "exit_code": st.none() | st.integers(-15, 255),
        "exception": st.none()
        | st.builds(ValueError, texts)
        | st.builds(lambda uid: TaskExecutionError(uid, "oops", 3), uids),
    }
)


def ran(task: BaseTask, outcome: dict) -> BaseTask:
    """``task`` as a backend leaves it."""
    for key, value in outcome.items():
        setattr(task, key, value)
    return task


def same(a: BaseTask, b: BaseTask) -> bool:
    """Equal descriptions and results (compared in their JSON-safe form)."""
    return type(a) is type(b) and a.to_dict() == b.to_dict()


# -- round trips --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.one_of(compute_tasks, ai_tasks), st.none() | results)
def test_pickle_round_trip(task, outcome):
    if outcome is not None:
        ran(task, outcome)
    back = pickle.loads(pickle.dumps(task))
    assert same(back, task) and back.uid == task.uid and back.extra == task.extra
    assert back.future is None


@settings(max_examples=60, deadline=None)
@given(st.one_of(compute_tasks, ai_tasks), st.none() | results)
def test_deepcopy_round_trip(task, outcome):
    if outcome is not None:
        ran(task, outcome)
    clone = copy.deepcopy(task)
    assert same(clone, task) and clone is not task
    if task.extra:
        clone["x_new"] = 1
        assert "x_new" not in task  # the copy's extra fields are its own
    shallow = copy.copy(task)
    assert same(shallow, task)


@settings(max_examples=60, deadline=None)
@given(st.one_of(compute_tasks, ai_tasks), st.none() | results)
def test_json_round_trip(task, outcome):
    if outcome is not None:
        ran(task, outcome)
    text = json.dumps(task.to_dict(), allow_nan=False)
    back = BaseTask.from_dict(json.loads(text))
    assert same(back, task) and back.state is task.state
    if task.exception is not None:
        assert type(back.exception) is type(task.exception)
        assert str(back.exception) == str(task.exception)


@settings(max_examples=40, deadline=None)
@given(st.one_of(compute_tasks, ai_tasks))
def test_plain_dict_round_trip(task):
    back = type(task).from_dict(task.to_dict(json_safe=False))
    assert same(back, task)
    assert dict(back) == task.to_dict(json_safe=False) | {"state": task.state}


def test_functions_travel_by_reference_or_by_value():
    by_name = ComputeTask(function=add, args=(1, 2)).to_dict()["function"]
    assert by_name == {"__function__": f"{__name__}:add"}
    local = ComputeTask(function=lambda: 42).to_dict()["function"]
    assert set(local) == {"__pickle__"}
    assert (
        BaseTask.from_dict(
            json.loads(json.dumps(ComputeTask(function=lambda: 42).to_dict()))
        ).function()
        == 42
    )


async def test_a_task_that_ran_round_trips_and_runs_again(tmp_path):
    async with Session(backends=[await ConcurrentExecutionBackend()], work_dir=tmp_path) as session:
        tasks = [
            ComputeTask(function=add, args=(2, 3), note="fn"),
            ComputeTask(executable="/bin/sh", arguments=["-c", "echo x; exit 2"]),
            ComputeTask(function=async_add, args=(1,)),
        ]
        await session.submit_tasks(tasks)
        await session.wait_tasks(tasks)
        for task in tasks:
            assert same(pickle.loads(pickle.dumps(task)), task)
            assert same(copy.deepcopy(task), task)
            restored = BaseTask.from_dict(json.loads(json.dumps(task.to_dict())))
            assert same(restored, task)
        # a restored task is a new task: submitted again, it runs from scratch
        again = [BaseTask.from_dict(t.to_dict()) for t in tasks]
        with pytest.raises(Exception, match="duplicate task uid"):
            await session.submit_tasks(again[:1])
        fresh = [type(t).from_dict({**t.to_dict(), "uid": t.uid + ".again"}) for t in tasks]
        assert fresh[0].state is TaskState.DONE and fresh[0].return_value == 5
        await session.submit_tasks(fresh)
        await session.wait_tasks(fresh)
    assert [t.state for t in fresh] == [TaskState.DONE, TaskState.FAILED, TaskState.DONE]
    assert fresh[1].stdout == "x\n" and fresh[0]["note"] == "fn"


def test_unpicklable_results_are_replaced_not_fatal():
    task = ComputeTask(function=add)
    task.return_value = (x for x in range(3))  # a generator does not pickle
    back = pickle.loads(pickle.dumps(task))
    assert "generator" in back.return_value


# -- extra fields and dict access ---------------------------------------------------------------


def test_extra_fields_are_kept_and_cost_nothing_when_unused():
    plain = ComputeTask(executable="/bin/true")
    assert plain._extra is None and plain.extra == {}
    task = ComputeTask(executable="/bin/true", priority="high", retry_count=3)
    assert task["priority"] == "high" and task.get("retry_count") == 3 and "priority" in task
    task["owner"] = "ada"
    task.update({"retry_count": 4}, stage=2)
    task.update(timeout=5)  # a real field: validated
    assert task.extra == {"priority": "high", "retry_count": 4, "owner": "ada", "stage": 2}
    assert task.timeout == 5
    assert task.setdefault("stage", 9) == 2 and task.setdefault("fresh", 1) == 1
    del task["fresh"]
    assert "fresh" not in task
    with pytest.raises(KeyError):
        del task["uid"]
    with pytest.raises(TaskValidationError, match="timeout"):
        task["timeout"] = -1
    with pytest.raises(TaskValidationError, match="written by the backend"):
        task["state"] = "DONE"


@pytest.mark.parametrize(
    ("key", "close"),
    [("argumnts", "arguments"), ("exectuable", "executable"), ("timout", "timeout")],
)
def test_a_near_miss_of_a_field_is_a_typo_not_an_extra(key, close):
    with pytest.raises(TaskValidationError, match=f"did you mean '{close}'") as info:
        ComputeTask(executable="/bin/true", **{key: 1})
    assert info.value.field == key


def test_private_and_non_identifier_extras_are_refused():
    with pytest.raises(TaskValidationError, match="_secret"):
        ComputeTask(executable="/bin/true", _secret=1)
    task = ComputeTask(executable="/bin/true")
    with pytest.raises(TaskValidationError, match="identifier"):
        task["not a name"] = 1


def test_positional_arguments_in_rhapsody_py_order():
    task = ComputeTask("/bin/echo", None, ["hi"], None, None, "u.1")
    assert (task.executable, task.arguments, task.uid) == ("/bin/echo", ["hi"], "u.1")
    ai = AITask("hello", "my-model", None, "be brief", 0.5)
    assert (ai.prompt, ai.model, ai.system_prompt, ai.temperature) == (
        "hello",
        "my-model",
        "be brief",
        0.5,
    )
    with pytest.raises(TaskValidationError, match="positional"):
        ComputeTask(*range(10))
    with pytest.raises(TaskValidationError, match="by position and by name"):
        ComputeTask("/bin/echo", executable="/bin/true")


def test_rhapsody_py_none_means_default():
    task = ComputeTask(
        executable="/bin/true", arguments=None, input_files=None, uid=None, kwargs=None
    )
    assert task.arguments == () and task.input_files == () and task.uid.startswith("task.")
    # a rhapsody-py task dict carries every result key, None until it ran
    described = {
        "uid": "rp.1",
        "backend": None,
        "state": None,
        "stdout": None,
        "stderr": None,
        "exit_code": None,
        "return_value": None,
        "response": None,
        "exception": None,
        "executable": "/bin/true",
        "function": None,
        "arguments": [],
        "args": (),
        "kwargs": {},
        "input_files": None,
        "output_files": None,
        "capture_stdio": False,
        "task_type": "ComputeTask",
    }
    task = ComputeTask.from_dict(described)
    assert task.uid == "rp.1" and task.state is TaskState.NEW and task.extra == {}


# -- NumPy numbers ------------------------------------------------------------------------------


@given(
    st.floats(min_value=0.001, max_value=1e6),
    st.floats(min_value=0, max_value=2),
    st.integers(min_value=1, max_value=30000),  # fits every integer type below
    st.sampled_from([np.float64, np.float32, np.float16]),
    st.sampled_from([np.int64, np.int32, np.uint16]),
)
def test_numpy_numbers_are_accepted_as_python_ones(timeout, temperature, count, ftype, itype):
    with np.errstate(over="ignore"):
        expected_timeout = float(ftype(timeout))
    if not (expected_timeout > 0 and math.isfinite(expected_timeout)):
        return  # rounded to 0 or inf by the narrower type: rightly refused, not this property
    task = AITask(
        prompt="p",
        timeout=ftype(timeout),
        temperature=ftype(temperature) if float(ftype(temperature)) <= 2 else None,
        max_tokens=itype(count),
        top_k=itype(count),
    )
    assert type(task.timeout) is float and task.timeout == expected_timeout
    assert type(task.max_tokens) is int and task.max_tokens == int(itype(count))
    assert task.temperature is None or type(task.temperature) is float
    json.dumps(task.to_dict())


@pytest.mark.parametrize("value", [True, np.bool_(True), "5", np.float64("nan"), np.float64(-1)])
def test_bools_and_bad_numbers_are_still_refused(value):
    with pytest.raises(TaskValidationError, match="timeout"):
        ComputeTask(executable="/bin/true", timeout=value)


def test_a_float_where_an_integer_is_meant_is_refused():
    with pytest.raises(TaskValidationError, match="max_tokens"):
        AITask(prompt="p", max_tokens=np.float64(5))


async def test_numpy_numbers_configure_backends_too():
    backend = ConcurrentExecutionBackend(max_processes=np.int64(3))
    assert backend._max_processes == 3 and type(backend._max_processes) is int
    with pytest.raises(TaskValidationError.__mro__[1]):  # RhapsodyError
        ConcurrentExecutionBackend(max_processes=np.bool_(True))
    async with Session(backends=[await backend]) as session:
        task = ComputeTask(function=add, args=(np.int64(2), np.float32(0.5)))
        await session.submit_tasks([task])
        await session.wait_tasks([task], timeout=np.float64(30))
    assert task.return_value == 2.5


def test_the_default_empty_mapping_behaves_as_an_empty_dict() -> None:
    import copy
    import pickle

    from rhapsody.api.task_fields import EMPTY_MAPPING

    task = ComputeTask(function=print)
    kwargs = task.kwargs
    assert kwargs is EMPTY_MAPPING is task.task_backend_specific_kwargs
    assert dict(kwargs) == {**kwargs} == {} and not kwargs and len(kwargs) == 0
    assert kwargs.keys() == {}.keys() and list(kwargs.items()) == list(kwargs.values()) == []
    assert "x" not in kwargs and kwargs.get("x", 1) == 1 and kwargs == {}
    assert pickle.loads(pickle.dumps(kwargs)) is kwargs is copy.deepcopy(kwargs)
    with pytest.raises(KeyError):
        kwargs["x"]
