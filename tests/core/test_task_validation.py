"""Task construction: valid tasks build, invalid ones raise TaskValidationError naming the field."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhapsody.api import AITask, ComputeTask, TaskState, TaskValidationError, task_from_dict


def f() -> int:
    return 1


def test_executable_task_defaults():
    t = ComputeTask(executable="/bin/echo", arguments=["hi"])
    assert t.uid.startswith("task.") and t.state is TaskState.NEW
    assert t.arguments == ["hi"] and t.function is None and t.backend is None
    assert t["uid"] == t.uid and t.get("nope", 3) == 3 and "executable" in t


def test_uids_are_unique_and_ordered():
    uids = [ComputeTask(function=f).uid for _ in range(1000)]
    assert len(set(uids)) == 1000
    assert uids == sorted(uids)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "executable"),
        ({"executable": "x", "function": f}, "executable"),
        ({"function": f, "arguments": ["a"]}, "arguments"),
        ({"executable": "x", "args": (1,)}, "args"),
        ({"function": f, "timeout": -1}, "timeout"),
        ({"function": f, "timeout": 0}, "timeout"),
        ({"function": f, "timeout": "5"}, "timeout"),
        ({"function": f, "timeout": math.nan}, "timeout"),
        ({"function": 3}, "function"),
        ({"executable": 3}, "executable"),
        ({"executable": ""}, "executable"),
        ({"executable": "x", "arguments": "a b"}, "arguments"),
        ({"executable": "x", "arguments": [1]}, "arguments"),
        ({"function": f, "kwargs": [1]}, "kwargs"),
        ({"function": f, "args": 5}, "args"),
        ({"function": f, "capture_stdio": "yes"}, "capture_stdio"),
        ({"function": f, "uid": ""}, "uid"),
        ({"function": f, "backend": 5}, "backend"),
        ({"function": f, "task_backend_specific_kwargs": []}, "task_backend_specific_kwargs"),
        ({"function": f, "input_files": "a.txt"}, "input_files"),
    ],
)
def test_compute_task_rejects(kwargs, field):
    with pytest.raises(TaskValidationError) as err:
        ComputeTask(**kwargs)
    assert err.value.field == field
    assert field in str(err.value) and "expected" in str(err.value) and "got" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": ["ok", ""]}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "hi", "temperature": -0.1}, "temperature"),
        ({"prompt": "hi", "temperature": 2.5}, "temperature"),
        ({"prompt": "hi", "top_p": 0}, "top_p"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p"),
        ({"prompt": "hi", "top_k": 0}, "top_k"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 1.5}, "max_tokens"),
        ({"prompt": "hi", "stop_sequences": "stop"}, "stop_sequences"),
        ({"prompt": "hi", "model": ""}, "model"),
    ],
)
def test_ai_task_rejects(kwargs, field):
    with pytest.raises(TaskValidationError) as err:
        AITask(**kwargs)
    assert err.value.field == field and repr(err.value.got) in str(err.value)


def test_ai_task_valid():
    t = AITask(
        prompt=["a", "b"],
        temperature=0.0,
        top_p=1.0,
        top_k=-1,
        max_tokens=8,
        stop_sequences=["\n"],
        system_prompt="be brief",
        model="m",
    )
    assert t.response is None and t.prompt == ["a", "b"]


def test_assignment_is_validated():
    t = ComputeTask(function=f)
    with pytest.raises(TaskValidationError):
        t.timeout = -3
    t.timeout = 2.5
    assert t.timeout == 2.5


def test_from_dict():
    t = task_from_dict({"executable": "/bin/true", "uid": "u1"})
    assert isinstance(t, ComputeTask) and t.uid == "u1"
    assert isinstance(task_from_dict({"prompt": "hi"}), AITask)
    # Unknown keys are extra fields (as in rhapsody-py), but a near-miss of a field is a typo.
    assert task_from_dict({"executable": "/bin/true", "exe_args": []})["exe_args"] == []
    with pytest.raises(TaskValidationError, match="did you mean 'arguments'") as err:
        task_from_dict({"executable": "/bin/true", "argument": []})
    assert err.value.field == "argument"
    with pytest.raises(TaskValidationError):
        task_from_dict({"type": "quantum", "executable": "x"})


def test_repr_is_short():
    r = repr(ComputeTask(executable="/bin/echo", uid="x"))
    assert r == "ComputeTask(uid='x', state=NEW, executable='/bin/echo')"


timeouts = st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=2))


@given(timeout=timeouts)
def test_timeout_property(timeout):
    valid = timeout is None or (
        type(timeout) in (int, float) and math.isfinite(timeout) and timeout > 0
    )
    if valid:
        assert ComputeTask(function=f, timeout=timeout).timeout == timeout
    else:
        with pytest.raises(TaskValidationError) as err:
            ComputeTask(function=f, timeout=timeout)
        assert err.value.field == "timeout"


@given(
    temperature=st.one_of(st.none(), st.floats(-1, 3), st.integers(-1, 3)),
    top_p=st.one_of(st.none(), st.floats(-0.5, 1.5)),
    max_tokens=st.one_of(st.none(), st.integers(-3, 10)),
)
def test_sampling_property(temperature, top_p, max_tokens):
    ok = (
        (temperature is None or 0 <= temperature <= 2)
        and (top_p is None or 0 < top_p <= 1)
        and (max_tokens is None or max_tokens >= 1)
    )
    try:
        AITask(prompt="p", temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    except TaskValidationError as err:
        assert not ok
        assert err.field in {"temperature", "top_p", "max_tokens"}
    else:
        assert ok


@given(
    executable=st.one_of(st.none(), st.just("/bin/true"), st.integers()),
    function=st.one_of(st.none(), st.just(f), st.integers()),
)
def test_exactly_one_of_executable_or_function(executable, function):
    good_exe = isinstance(executable, str)
    good_fn = callable(function)
    ok = (good_exe and function is None) or (good_fn and executable is None)
    try:
        ComputeTask(executable=executable, function=function)
    except TaskValidationError as err:
        assert not ok
        assert err.field in {"executable", "function"}
    else:
        assert ok
